"""Figures from runs: what ``binexp report --plot`` and ``binexp plot`` draw.

Data come from each run's ``metrics.json`` and its TensorBoard event files (every
``events.out.tfevents.*`` in ``<run>/``, or under ``<run>/tensorboard/`` for older runs). The x axis of
curves is the epoch (1 = after the first epoch): TensorBoard steps are global steps, mapped
to epochs through Lightning's ``epoch`` scalar (or ``global_step / epochs`` of metrics.json).

Every figure function returns ``(path, series)``: ``series`` maps each drawn line (or panel,
for histograms) to its points, so tests check what was drawn, not just that a PNG exists.

Figures of ``binexp plot``:

* ``quant_error`` — RBNN (arXiv 2009.13055) Fig. 2(b): quantization error per binarized layer
  at the last epoch (or ``--epochs``), one line per measured family, run and epoch; the
  optimal-scale families (``quant_error``, RBNN's ``quant_error_rotated`` ...) on one axis, the
  unscaled ``quant_error_unscaled`` on another (log where values span a decade).
* ``weight_hist`` — RBNN Fig. 5: histograms of ``latent_weight/<layer>``, one row per run, one
  panel per chosen layer, one line per chosen epoch (0 = before training); each row says what
  the method's latent weight is.
* ``alpha`` — ``rbnn_alpha_mean/<layer>`` over epochs; every run in one picture.
* ``angular_bias`` — the angle(x, sign x) in degrees as logged (higher = more bias) of the
  weights (``angular_bias/<layer>``) and, in a second panel on the same y range, of the
  activations (``act_angular_bias/<layer>``); every run in one picture.
* ``flexor_stanh`` / ``flexor_ntap`` — FleXOR (arXiv 2009.04126) Fig. 6/7: accuracy against
  ``quantizer.s_tanh`` / ``quantizer.n_tap`` of a sweep (overrides or the presets' composed
  configs), one line per setting of the other swept keys.

A picture drawn from synthetic data or at smoke scale says so in red along its bottom edge."""

from __future__ import annotations

import bisect
import re
import statistics
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from binexp.errors import BinexpError
from binexp.tb_tags import logged_tag

FIGURES = ("quant_error", "weight_hist", "alpha", "angular_bias", "flexor_stanh", "flexor_ntap")
# figure: (swept key, the paper's symbol for it, title)
SWEEP_FIGURES = {
    "flexor_stanh": ("quantizer.s_tanh", "S_tanh", "FleXOR Fig. 6: accuracy against S_tanh"),
    "flexor_ntap": ("quantizer.n_tap", "N_tap", "FleXOR Fig. 7: accuracy against N_tap"),
}
METRIC_LABELS = {"best_val_acc1": "best val top-1 (%, higher is better)"}


# --- reading runs -------------------------------------------------------------------------


@dataclass
class RunData:
    """One run's TensorBoard scalars and histograms, keyed by tag, on an epoch axis."""

    path: Path
    metrics: dict
    scalars: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    histograms: dict[str, list[tuple[int, object]]] = field(default_factory=dict)
    _epoch_steps: list[int] = field(default_factory=list)
    _epoch_values: list[int] = field(default_factory=list)
    label: str = ""

    def epoch(self, step: int) -> int:
        """Epochs completed when ``step`` was logged (1-based; global step 0 = before training = 0)."""
        if step == 0:
            return 0
        if self._epoch_steps:
            i = bisect.bisect_right(self._epoch_steps, step) - 1
            return self._epoch_values[max(i, 0)] + 1
        gs, ep = self.metrics.get("global_step"), self.metrics.get("epochs")
        if gs and ep:
            return max(1, round(step / (gs / ep)))
        return step

    def series(self, tag: str) -> list[tuple[int, float]]:
        """(epoch, value) of a scalar tag; one value per epoch (the last logged in it)."""
        out: dict[int, float] = {}
        for step, value in self.scalars.get(tag, []):
            out[self.epoch(step)] = value
        return sorted(out.items())

    def layers(self, prefix: str) -> list[str]:
        """Layer names of the tags ``<prefix>/<layer>``, in network order (first logged first)."""
        return [t.split("/", 1)[1] for t in self.scalars if t.startswith(prefix + "/")]


def event_files(run_dir: Path) -> list[Path]:
    """The run's event files: in the run directory (runs before 2026-12: under ``tensorboard/``)."""
    old = sorted((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    return sorted(run_dir.glob("events.out.tfevents.*")) + old


def load_run(run_dir: Path) -> RunData:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from binexp.runs.record import read_record

    try:
        metrics = read_record(run_dir)
    except FileNotFoundError:
        metrics = {}
    except (OSError, BinexpError) as e:
        raise BinexpError(f"plot: {e}; fix: restore it, or remove that run directory") from None
    data = RunData(run_dir, metrics, label=str(metrics.get("name") or run_dir.name))
    for ev in event_files(run_dir):
        acc = EventAccumulator(str(ev), size_guidance={"scalars": 0, "histograms": 0})
        acc.Reload()
        tags = acc.Tags()
        for tag in tags.get("scalars", []):  # by the names binexp logs (``val/acc1``, not TensorBoard's)
            data.scalars.setdefault(logged_tag(tag), []).extend((e.step, e.value) for e in acc.Scalars(tag))
        for tag in tags.get("histograms", []):
            data.histograms.setdefault(tag, []).extend((e.step, e.histogram_value) for e in acc.Histograms(tag))
    for tag in list(data.scalars):
        data.scalars[tag].sort(key=lambda p: p[0])
    pairs = sorted(dict(data.scalars.get("epoch", [])).items())
    data._epoch_steps = [s for s, _ in pairs]
    data._epoch_values = [round(v) for _, v in pairs]
    return data


def run_dirs(root: Path) -> list[Path]:
    """The run directories at or under ``root`` (those with metrics.json or TensorBoard events)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise BinexpError(f"plot: {root} does not exist; fix: pass a run or sweep directory")
    found = {p.parent for p in root.rglob("metrics.json")} | {p.parent for p in root.rglob("tensorboard") if p.is_dir()}
    found |= {p.parent for p in root.rglob("events.out.tfevents.*")}
    return sorted(d for d in found if "tensorboard" not in d.relative_to(root).parts)


# --- drawing helpers ----------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _epoch_axis(ax, epochs=()) -> None:
    """Whole epochs only: the drawn epochs as ticks when few (one epoch would otherwise get
    0.96, 0.98 ...), else integer ticks."""
    from matplotlib.ticker import MaxNLocator

    epochs = sorted(set(epochs))
    if 0 < len(epochs) <= 12:
        ax.set_xticks(epochs)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("epoch")


def data_note(records: list[dict]) -> str:
    """ "" for runs on real data at their recipe's scale; else one line saying the picture comes
    from synthetic data and/or smoke scale (``debug=smoke`` or a cut ``limit_train_batches``)."""
    from binexp.runs.discovery import parse_overrides

    parts = []
    if any(m.get("data") == "synthetic" for m in records):
        parts.append("synthetic data")
    limits = sorted(
        {
            str(v)
            for m in records
            for k, v in parse_overrides(m.get("overrides")).items()
            if k.endswith("limit_train_batches")
        }
    )
    if any((m.get("choices") or {}).get("debug") == "smoke" for m in records):
        parts.append("smoke scale (debug=smoke: a few batches per epoch)")
    elif limits:
        parts.append(f"trainer.limit_train_batches={','.join(limits)}")
    return f"drawn from {' and '.join(parts)}: only the shape means something" if parts else ""


def _legend(ax, n: int) -> None:
    if n:
        ax.legend(fontsize=7 if n <= 12 else 5, ncol=1 if n <= 10 else 2, loc="best")


def _save(fig, path: Path, note: str = "", h_pad: float | None = None) -> Path:
    """Write ``fig``; ``note`` (see :func:`data_note`) goes in red along its bottom edge. Written to
    a temporary file in the same folder, then renamed over ``path``: a ``path`` that is a
    symbolic link is replaced, never written through."""
    import io

    from binexp.safeio import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    lines = textwrap.wrap(note, max(40, int(fig.get_figwidth() * 13))) if note else []
    if lines:  # wrapped to the figure's width, so a narrow picture keeps the whole line
        fig.text(0.5, 0.01, "\n".join(lines), ha="center", va="bottom", fontsize=7.5, color="firebrick")
    bottom = (0.01 + 0.035 * len(lines) * 4.4 / fig.get_figheight()) if lines else 0
    fig.tight_layout(rect=(0, bottom, 1, 1), h_pad=h_pad)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format="png")
    _plt().close(fig)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))
    return path


def short_layer(name: str) -> str:
    """``layer2.1.conv1`` stays; ``net.features.3`` loses ``net.``."""
    return name.removeprefix("net.")


# --- binexp plot figures ------------------------------------------------------------------


def _need(runs: list[RunData], ok, what: str, root: Path) -> list[RunData]:
    good = [r for r in runs if ok(r)]
    if not good:
        raise BinexpError(
            f"plot: no {what} under {root}; fix: pass a run (or sweep) directory whose TensorBoard events have them "
            f"(callbacks.layer_diagnostics on)"
        )
    return good


def layer_curves(
    runs: list[RunData],
    panels: list[tuple[str, str]],
    title: str,
    out: Path,
    root: Path,
    min_span: float = 0.0,
) -> tuple[list[Path], dict]:
    """One picture: one panel per ``(prefix, ylabel)`` that some run logs, all panels on one y
    range, x in epochs. One run: a line per layer. Several runs: per run the mean over its layers
    (a line) and their min–max (a band), so runs compare at a glance. The y axis spans at least
    ``min_span`` (so float noise in a constant, e.g. RBNN's alpha at 1 - 6e-8, is not drawn as a
    fall). Series: ``(run, prefix, layer)`` per layer and, for several runs, ``(run, prefix, "mean")``."""
    plt = _plt()
    prefixes = [p for p, _ in panels]
    runs = _need(
        runs, lambda r: any(r.layers(p) for p in prefixes), " / ".join(f"{p}/<layer> scalars" for p in prefixes), root
    )
    present = [(p, y) for p, y in panels if any(r.layers(p) for r in runs)]
    fig, axes = plt.subplots(
        1, len(present), figsize=(6.6 * len(present) + (1.6 if len(runs) == 1 else 0), 4.4), squeeze=False, sharey=True
    )
    series: dict = {}
    values: list[float] = []
    for ax, (prefix, ylabel) in zip(axes[0], present):
        epochs: set[int] = set()
        for i, run in enumerate(runs):
            layers = run.layers(prefix)
            per_layer = {}
            for layer in layers:
                pts = run.series(f"{prefix}/{layer}")
                series[(run.label, prefix, layer)] = per_layer[layer] = pts
                values += [v for _, v in pts]
                epochs |= {e for e, _ in pts}
            if not per_layer:
                continue
            if len(runs) == 1:
                cmap = plt.get_cmap("viridis")
                for j, (layer, pts) in enumerate(per_layer.items()):
                    ax.plot(
                        [e for e, _ in pts],
                        [v for _, v in pts],
                        "o-",
                        markersize=2.5,
                        linewidth=1.2,
                        color=cmap(j / max(1, len(layers) - 1)),
                        label=short_layer(layer),
                    )
                continue
            by_epoch: dict[int, list[float]] = {}
            for pts in per_layer.values():
                for e, v in pts:
                    by_epoch.setdefault(e, []).append(v)
            es = sorted(by_epoch)
            mean = [statistics.fmean(by_epoch[e]) for e in es]
            series[(run.label, prefix, "mean")] = list(zip(es, mean))
            color = f"C{i % 10}"
            ax.plot(es, mean, "o-", markersize=3, linewidth=1.6, color=color, label=f"{_short(run.label, 40)} (mean)")
            ax.fill_between(
                es,
                [min(by_epoch[e]) for e in es],
                [max(by_epoch[e]) for e in es],
                color=color,
                alpha=0.18,
                linewidth=0,
                label=f"{_short(run.label, 40)} (min–max over {len(per_layer)} layers)",
            )
        _epoch_axis(ax, epochs)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.tick_params(axis="y", labelleft=True)
        if len(runs) == 1:
            n = len(run.layers(prefix))
            ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5), ncol=1 if n <= 20 else 2)
        else:
            ax.legend(fontsize=7, loc="best")
    if values and max(values) - min(values) < min_span:
        mid = (max(values) + min(values)) / 2
        axes[0][0].set_ylim(mid - min_span / 2, mid + min_span / 2)
    fig.suptitle(title if len(runs) > 1 else f"{title} — {_short(runs[0].label)}", fontsize=9)
    return [_save(fig, out / f"{title.split()[0]}.png", data_note([r.metrics for r in runs]))], series


QUANT_ERROR_AXES = (
    (
        "scaled",
        "‖αb − w‖² / ‖w‖², α = mean|w| per channel\n(lower = w closer to its binary vertex)",
        "RBNN Fig. 2(b): at the optimal scale",
    ),
    (
        "unscaled",
        "‖b − w‖² / ‖w‖², no scale\n(lower = w closer to ±1; what Fig. 5 shows)",
        "without a scale (b = sign w)",
    ),
)
FAMILY_STYLE = {"quant_error": "-", "quant_error_mixed": "-", "quant_error_rotated": "--", "quant_error_unrotated": ":"}


def _log_if_decades(ax, values: list[float]) -> None:
    pos = [v for v in values if v > 0]
    if pos and max(pos) / min(pos) >= 10:
        ax.set_yscale("log")


def quant_error(runs: list[RunData], out: Path, root: Path, epochs: list[int] | None = None) -> tuple[list[Path], dict]:
    """RBNN Fig. 2(b): quantization error per layer, one line per family, run and epoch; the
    optimal-scale families (``quant_error``, RBNN's ``_rotated`` / ``_unrotated`` / ``_mixed``)
    on one axis, the unscaled one (``quant_error_unscaled``, which spans decades between
    methods) on its own, log where values span a decade. A run's colour is the same on both."""
    plt = _plt()

    def families(r: RunData) -> list[str]:
        return sorted({t.split("/", 1)[0] for t in r.scalars if re.match(r"quant_error(_\w+)?/", t)})

    runs = _need(runs, families, "quant_error/<layer> scalars", root)
    kinds = [
        k
        for k in ("scaled", "unscaled")
        if any((f == "quant_error_unscaled") == (k == "unscaled") for r in runs for f in families(r))
    ]
    fig, axes = plt.subplots(1, len(kinds), figsize=(7.2 * len(kinds), 4.8), squeeze=False)
    ax_of = dict(zip(kinds, axes[0]))
    series, layer_order = {}, []
    for run in runs:
        for fam in families(run):
            for layer in run.layers(fam):
                if layer not in layer_order:
                    layer_order.append(layer)
    drawn: dict[str, list[float]] = {k: [] for k in kinds}
    for i, run in enumerate(runs):
        for fam in families(run):
            kind = "unscaled" if fam == "quant_error_unscaled" else "scaled"
            layers = run.layers(fam)
            last = max(
                (run.series(f"{fam}/{layer}")[-1][0] for layer in layers if run.series(f"{fam}/{layer}")), default=None
            )
            want = epochs or ([] if last is None else [last])
            for n, ep in enumerate(want):
                pts = []
                for layer in layers:
                    vals = dict(run.series(f"{fam}/{layer}"))
                    if ep in vals:
                        pts.append((layer, vals[ep]))
                if not pts:
                    continue
                label = f"{fam.removeprefix('quant_error').lstrip('_') or 'w'} (epoch {ep})"
                label = label if len(runs) == 1 else f"{_short(run.label, 40)}: {label}"
                series[(run.label, fam, ep)] = pts
                drawn[kind] += [v for _, v in pts]
                ax_of[kind].plot(
                    [layer_order.index(lay) for lay, _ in pts],
                    [v for _, v in pts],
                    marker="o",
                    markersize=3,
                    label=label,
                    color=f"C{i % 10}",
                    alpha=1.0 if n == len(want) - 1 else 0.45,
                    linestyle=FAMILY_STYLE.get(fam, "-."),
                )
    if not series:
        raise BinexpError(f"plot: quant_error: no values at epoch(s) {epochs} under {root}; fix: choose logged epochs")
    for kind, ylabel, title in QUANT_ERROR_AXES:
        if kind not in ax_of:
            continue
        ax = ax_of[kind]
        ax.set_xticks(range(len(layer_order)))
        ax.set_xticklabels([short_layer(lay) for lay in layer_order], rotation=60, ha="right", fontsize=7)
        ax.set_xlabel("binarized layer")
        ax.set_ylabel(ylabel, fontsize=9)
        ax.set_title(title, fontsize=10)
        _log_if_decades(ax, drawn[kind])
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("quantization error per binarized layer (RBNN Fig. 2(b)); w = each method's latent weight", fontsize=9)
    return [_save(fig, out / "quant_error.png", data_note([r.metrics for r in runs]))], series


LATENT_MEANING = {
    "rbnn": "RBNN: w̃, the rotated, mixed, standardised weight (zero mean, unit variance per channel); b = sign w̃",
    "xnor": "XNOR: the raw latent weight w; b = mean|w| · sign w",
    "bireal": "Bi-Real: the raw latent weight w; b = mean|w| · sign w",
    "flexor": "FleXOR: Σ α_i · XOR-decrypted tanh(S_tanh · x_e), the analog weight; b = its sign",
}


def latent_meaning(quantizer: str | None) -> str:
    """What ``latent_weight/<layer>`` holds for a run of ``quantizer`` (the tensor whose sign is
    the binary weight: ``QuantConv2d.latent_weight``)."""
    return LATENT_MEANING.get(str(quantizer), f"{quantizer}: the real tensor whose sign is the binary weight")


def weight_hist(
    runs: list[RunData], out: Path, root: Path, layers: list[str] | None = None, epochs: list[int] | None = None
) -> tuple[list[Path], dict]:
    """RBNN Fig. 5: one row per run, one panel per chosen layer, one histogram per chosen epoch
    (default: before training, epoch 0, where logged, and the last); each row says what that
    method's latent weight is."""
    plt = _plt()
    runs = _need(
        runs,
        lambda r: any(t.startswith("latent_weight/") for t in r.histograms),
        "latent_weight/<layer> histograms",
        root,
    )
    chosen_by_run = []
    for run in runs:
        all_layers = [t.split("/", 1)[1] for t in run.histograms if t.startswith("latent_weight/")]
        if layers:
            unknown = [lay for lay in layers if lay not in all_layers]
            if unknown:
                raise BinexpError(
                    f"plot: weight_hist: no layer {', '.join(unknown)} in {run.path}; "
                    f"choose from: {', '.join(all_layers)}"
                )
            chosen_by_run.append(list(layers))
        else:  # first, middle and last binarized layer
            chosen_by_run.append(list(dict.fromkeys([all_layers[0], all_layers[len(all_layers) // 2], all_layers[-1]])))
    ncol = max(len(c) for c in chosen_by_run)
    fig, axes = plt.subplots(len(runs), ncol, figsize=(4 * ncol, 3.5 * len(runs) + 0.4), squeeze=False)
    series = {}
    for row, (run, chosen) in enumerate(zip(runs, chosen_by_run)):
        for ax, layer in zip(axes[row], chosen):
            by_epoch = {run.epoch(step): h for step, h in run.histograms[f"latent_weight/{layer}"]}
            avail = sorted(by_epoch)
            want = epochs or list(dict.fromkeys([avail[0], avail[-1]]))
            missing = [e for e in want if e not in by_epoch]
            if missing:
                raise BinexpError(f"plot: weight_hist: epoch(s) {missing} not logged for {layer}; choose from: {avail}")
            for ep in want:
                xs, dens = uniform_density(by_epoch[ep])
                series[(run.label, layer, ep)] = list(zip(xs, dens))
                label = "before training" if ep == 0 else f"epoch {ep}"
                ax.plot(xs, dens, drawstyle="steps-mid", linewidth=1.2, label=label)
            ax.set_title(
                f"{_short(run.label, 30)}: {short_layer(layer)}" if len(runs) > 1 else short_layer(layer), fontsize=9
            )
            ax.set_xlabel("latent weight" if run.metrics.get("quantizer") != "rbnn" else "latent weight w̃")
            ax.set_ylabel("density")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        for ax in axes[row][len(chosen) :]:
            ax.axis("off")
        meaning = axes[row][0].annotate(
            latent_meaning(run.metrics.get("quantizer")),
            xy=(0, 1.12),
            xycoords="axes fraction",
            fontsize=8,
            ha="left",
            color="0.25",
        )
        meaning.set_in_layout(False)  # a long line must not squeeze the panels
    fig.suptitle("latent-weight histograms (RBNN Fig. 5)", fontsize=10, y=0.995)
    return [_save(fig, out / "weight_hist.png", data_note([r.metrics for r in runs]), h_pad=2.5)], series


def uniform_density(h, bins: int = 60) -> tuple[list[float], list[float]]:
    """A TensorBoard histogram (exponential buckets, very narrow near 0) re-binned onto
    ``bins`` equal bins between its min and max, each bucket's count spread evenly over its
    width; returns (bin centres, density)."""
    import numpy as np

    counts = np.asarray(h.bucket, dtype=float)
    lo = np.concatenate([[h.min], np.asarray(h.bucket_limit, dtype=float)[:-1]])
    hi = np.asarray(h.bucket_limit, dtype=float)
    lo, hi = np.clip(lo, h.min, h.max), np.clip(hi, h.min, h.max)
    edges = np.linspace(h.min, h.max, bins + 1) if h.max > h.min else np.array([h.min - 0.5, h.max + 0.5])
    out = np.zeros(len(edges) - 1)
    for c, a, b in zip(counts, lo, hi):
        if c == 0:
            continue
        if b <= a:  # a bucket of zero width (all values equal): into the bin that holds it
            out[min(max(np.searchsorted(edges, a, side="right") - 1, 0), len(out) - 1)] += c
            continue
        overlap = np.clip(np.minimum(edges[1:], b) - np.maximum(edges[:-1], a), 0, None)
        out += c * overlap / (b - a)
    width = np.diff(edges)
    total = out.sum()
    dens = out / (total * width) if total > 0 else out
    return ((edges[:-1] + edges[1:]) / 2).tolist(), dens.tolist()


def swept_value(run, key: str):
    """``key``'s value in a run: its override, else its composed config's (a table sweep sets
    S_tanh / N_tap through ``experiment=`` presets, not overrides); None when neither has it."""
    from binexp.analysis import paper as paper_check

    if key in run.overrides:
        return run.overrides[key]
    if "overrides" not in run.metrics:
        return None
    try:
        value = paper_check.composed(run.metrics).get(key)
    except BinexpError:
        return None
    return None if value is None or (isinstance(value, str) and "${" in value) else value


def _as_float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


SETTING_KEYS = ("model.name", "quantizer.n_in", "quantizer.n_out", "quantizer.n_tap", "quantizer.s_tanh")


def sweep_curve(root: Path, figure: str, out: Path, metric: str = "best_val_acc1") -> tuple[list[Path], dict]:
    """``<figure>.png`` of a :data:`SWEEP_FIGURES` entry: accuracy against its swept key (from
    overrides or the presets' composed configs), x labelled by the paper's symbol; one line per
    setting of the other swept keys, seeds folded into mean ± std; the legend names the setting
    (model, N_in, N_out ... common to the line); x on a log axis with a tick at each value when the
    values span a decade."""
    from binexp.runs.discovery import differing_keys, find_runs

    key, symbol, title = SWEEP_FIGURES[figure]
    runs = [
        r for r in find_runs([str(root)]) if r.status == "completed" and isinstance(r.metrics.get(metric), (int, float))
    ]
    value_of: dict[int, float] = {}
    for r in runs:
        value = _as_float(swept_value(r, key))
        if value is not None:
            value_of[id(r)] = value
    runs = [r for r in runs if id(r) in value_of]
    xs = {value_of[id(r)] for r in runs}
    if len(xs) < 2:
        raise BinexpError(
            f"plot: {figure} ({title}) needs a completed sweep over {key} (2+ values) under {root}; "
            f"found {len(xs)}; fix: binexp train -m ... {key}=a,b,c (or the table's presets) and pass its sweep "
            "directory"
        )
    others = [k for k in differing_keys(runs) if k not in (key, "experiment")]
    groups: dict[tuple, dict[float, list[float]]] = {}
    members: dict[tuple, list] = {}
    for r in runs:
        gk = tuple((k, r.overrides.get(k)) for k in others)
        groups.setdefault(gk, {}).setdefault(value_of[id(r)], []).append(float(r.metrics[metric]))
        members.setdefault(gk, []).append(r)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    series = {}
    for gk, pts in sorted(groups.items(), key=lambda kv: str(kv[0])):
        xs_ = sorted(pts)
        ys = [statistics.fmean(pts[x]) for x in xs_]
        es = [statistics.stdev(pts[x]) if len(pts[x]) > 1 else 0.0 for x in xs_]
        label = ", ".join(f"{k.removeprefix('quantizer.')}={v}" for k, v in gk)
        if not label:  # name the setting the line shares
            common = []
            for k in SETTING_KEYS:
                if k == key:
                    continue
                vals = {str(swept_value(r, k)) for r in members[gk]}
                if len(vals) == 1 and "None" not in vals:
                    common.append(f"{k.split('.')[-1]}={vals.pop()}" if k != "model.name" else vals.pop())
            quantizers = {str(r.metrics.get("quantizer")) for r in members[gk]} - {"None"}
            label = ", ".join([*sorted(quantizers), *common]) or key
        series[label] = list(zip(xs_, ys))
        ax.errorbar(xs_, ys, yerr=es, marker="o", capsize=3, label=label)
    values = sorted(xs)
    if values[0] > 0 and values[-1] / values[0] >= 10:
        ax.set_xscale("log")
    ax.set_xticks(values)
    ax.set_xticklabels([f"{v:g}" for v in values])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlabel(f"{symbol} ({key})")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    _legend(ax, len(series))
    return [_save(fig, out / f"{figure}.png", data_note([r.metrics for r in runs]))], series


def draw(
    figure: str, root: Path, out: Path, layers: list[str] | None = None, epochs: list[int] | None = None
) -> tuple[list[Path], dict]:
    """Draw ``figure`` from the run or sweep at ``root`` into ``out``; returns (paths, series)."""
    if figure not in FIGURES:
        raise BinexpError(f"plot: unknown figure {figure!r}; choose one of: {', '.join(FIGURES)}")
    root = Path(root).expanduser()
    if figure in SWEEP_FIGURES:
        return sweep_curve(root, figure, out)
    dirs = run_dirs(root)
    if not dirs:
        raise BinexpError(
            f"plot: no runs (metrics.json or TensorBoard events) under {root}; fix: pass a run or sweep directory"
        )
    runs = [load_run(d) for d in dirs]
    name_runs(runs)
    if figure == "quant_error":
        return quant_error(runs, out, root, epochs)
    if figure == "weight_hist":
        return weight_hist(runs, out, root, layers, epochs)
    if figure == "alpha":
        return layer_curves(
            runs,
            [("rbnn_alpha_mean", "mean α = |sin θ| of the layer (1 = full rotation)")],
            "alpha (RBNN Eq. 11) per layer",
            out,
            root,
            min_span=0.05,
        )
    return layer_curves(
        runs,
        [
            ("angular_bias", "weights: angle(w, sign w) in degrees\n(higher = more angular bias)"),
            ("act_angular_bias", "activations: angle(a, sign a) in degrees\n(higher = more angular bias)"),
        ],
        "angular_bias = angle(x, sign x) per layer (RBNN Sec. 3.1; 37° for Gaussian x)",
        out,
        root,
    )


# --- binexp report --plot -----------------------------------------------------------------


LABEL_IGNORED = ("resume", "verbose")


def name_runs(runs: list[RunData]) -> None:
    """Short labels for a sweep's runs: the overrides that differ between them
    (``quantizer=rbnn``), not Hydra's 90-character job directory names; how a run was carried out
    (``resume=<dir>`` of a resumed job, ``verbose``, ``hydra.*``) names no setting."""
    from binexp.runs.discovery import parse_overrides

    if len(runs) < 2:
        return
    ovs = [parse_overrides(r.metrics.get("overrides", [])) for r in runs]
    ovs = [{k: v for k, v in o.items() if k not in LABEL_IGNORED and not k.startswith("hydra.")} for o in ovs]
    keys = [k for k in dict.fromkeys(k for o in ovs for k in o) if len({o.get(k) for o in ovs}) > 1]
    for run, o in zip(runs, ovs):
        short = ",".join(f"{k.split('.')[-1] if k.count('.') > 1 else k}={o.get(k)}" for k in keys)
        run.label = short or run.path.name


def _short(label: str, n: int = 70) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def _file_label(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=,-]+", "_", label)[:80]


def _line_field(points: list[dict], fields: list[str]) -> str | None:
    """The field that runs along the x axis: removing it leaves groups whose bits differ
    point to point; among such fields, the one with the most values."""
    best, best_n = None, 1
    for f in fields:
        groups: dict[tuple, list] = {}
        for p in points:
            groups.setdefault((p["line"], tuple(p["key"][g] for g in fields if g != f)), []).append(p["bits"])
        if all(len(b) == len(set(b)) for b in groups.values()):
            n = len({p["key"][f] for p in points})
            if n > best_n:
                best, best_n = f, n
    return best


def acc_vs_bits(records: list[dict], rows: list, by: list[str], metric: str, out_dir: Path) -> tuple[Path | None, dict]:
    """Accuracy against bits per weight: one line per distinct setting of every field that is
    not the one along x (N_out = 10 and N_out = 20 are two lines), per model and quantizer;
    full-precision rows are horizontal reference lines, never joined to binary points."""
    points: list[dict] = []
    fp: list[dict] = []
    for rec, row in zip(records, rows):
        if rec["status"] != "completed" or rec[f"{metric}_mean"] is None or rec["bits_per_weight"] is None:
            continue
        m = row.runs[0].metrics
        p = {
            "key": dict(zip(by, rec_key(rec, by))),
            "bits": rec["bits_per_weight"],
            "y": rec[f"{metric}_mean"],
            "std": rec[f"{metric}_std"] or 0.0,
            "paper": rec["paper"],
            "line": (m.get("model") or "", m.get("quantizer") or ""),
        }
        (fp if (p["bits"] >= 32 or p["line"][1] == "fp") else points).append(p)
    if not points or (len({p["bits"] for p in points}) < 2 and not fp):  # all at one bit width: nothing to plot against
        return None, {}
    fields = [f for f in by if len({p["key"][f] for p in points}) > 1]
    along = _line_field(points, fields)
    lines: dict[str, list[dict]] = {}
    for p in points:
        parts = [x for x in p["line"] if x] + [
            f"{f}={p['key'][f]}" for f in fields if f != along and f not in ("model", "quantizer")
        ]
        label = (
            ", ".join(dict.fromkeys(parts))
            if along
            else ", ".join(dict.fromkeys(parts + [f"{f}={p['key'][f]}" for f in fields]))
        )
        lines.setdefault(label, []).append(p)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    series = {}
    for i, (label, pts) in enumerate(lines.items()):
        pts.sort(key=lambda p: p["bits"])
        series[label] = [(p["bits"], p["y"]) for p in pts]
        ax.errorbar(
            [p["bits"] for p in pts],
            [p["y"] for p in pts],
            yerr=[p["std"] for p in pts],
            marker="o",
            capsize=3,
            color=f"C{i % 10}",
            label=label,
        )
        paper = [(p["bits"], p["paper"]) for p in pts if p["paper"] is not None]
        if paper:
            series[f"{label} (paper)"] = paper
            ax.plot(
                [b for b, _ in paper],
                [v for _, v in paper],
                "s--",
                color=f"C{i % 10}",
                alpha=0.6,
                label=f"{label} (paper)",
            )
    for j, p in enumerate(fp):
        parts = [p["line"][0]] + [f"{f}={p['key'][f]}" for f in by if p["key"][f] not in (None, "None", "fp")]
        label = "fp " + ", ".join(dict.fromkeys(x for x in parts if x)) + f": {p['y']:.2f}"
        series[f"{label} (reference)"] = [(None, p["y"])]
        ax.axhline(p["y"], color="0.3", linestyle=(0, (1, 1 + j)), linewidth=1.2, label=f"{label} (reference)")
    ax.set_xlabel("bits per weight")
    ax.set_ylabel(f"{metric} (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    note = data_note([run.metrics for row in rows for run in row.runs])
    return _save(fig, out_dir / "acc_vs_bits.png", note), series


def rec_key(rec: dict, by: list[str]) -> list:
    return [rec.get(k) for k in by]


def val_curves(rows: list, by: list[str], out_dir: Path) -> tuple[Path, dict]:
    """val/acc1 over epochs, one line per configuration (its seeds' mean per epoch)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    series = {}
    for i, row in enumerate(rows):
        label = ", ".join(f"{k}={v}" for k, v in zip(by, row.key) if v not in (None, "None")) or row.runs[
            0
        ].metrics.get("name", "run")
        if row.status != "completed":
            label += f" ({row.status})"
        per_epoch: dict[int, list[float]] = {}
        for run in row.runs:
            data = load_run(run.path)
            for ep, v in data.series("val/acc1"):
                per_epoch.setdefault(ep, []).append(v)
        if not per_epoch:
            continue
        pts = [(ep, statistics.fmean(vs)) for ep, vs in sorted(per_epoch.items())]
        series[label] = pts
        ax.plot([e for e, _ in pts], [v for _, v in pts], "o-", markersize=3, color=f"C{i % 10}", label=label)
    _epoch_axis(ax, [e for pts in series.values() for e, _ in pts])
    ax.set_ylabel("val/acc1 (%)")
    ax.grid(alpha=0.3)
    _legend(ax, len(series))
    note = data_note([run.metrics for row in rows for run in row.runs])
    return _save(fig, out_dir / "val_curves.png", note), series


__all__ = ["FIGURES", "acc_vs_bits", "draw", "load_run", "run_dirs", "val_curves"]
