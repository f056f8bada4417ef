"""Bit-aware model summary, in the manner of larq's: per layer and in total, parameters by bit
width, memory at those widths, the float-32 equivalent and compression ratio, MACs split into
binary (1-bit weights *and* 1-bit inputs: XNOR-popcount) and full precision, OPs = BOPs/64 +
FLOPs (the convention of XNOR-Net, Bi-Real Net and RBNN), and each method's own state: what
inference needs besides the weights (per-channel scales alpha/lambda; FleXOR's XOR matrices M+,
counted once per distinct matrix and included in the memory total) apart from what only training
needs (RBNN's R1, R2, theta, by name). binexp simulates binarization with float tensors: these
are the sizes and operation counts a deployment would have, not what training uses.

Operation counts, per image, follow Bi-Real Net (arXiv 1808.00278, Sec. 4.4) and ReActNet
(arXiv 2003.03488, Table; README of liuzechun/ReActNet): BOPs = the multiply-accumulates of every
layer whose weights *and* inputs are binary (conv: C_in k^2 C_out H_out W_out; linear: in out
tokens); FLOPs = the multiply-accumulates of every other convolution and linear layer (FP stem,
FP shortcuts, classifier, binary-weight layers with real inputs); OPs = FLOPs + BOPs/64. As in
those papers, BatchNorm, activations, pooling, additions, the scales and a ViT's attention
products (q k^T, p v) are not counted. With it ReActNet-A at 224x224 gives 0.87e8 OPs and
Bi-Real Net ResNet-18 1.63e8, the published figures."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from binexp.quant.layers import QuantLayer


@dataclass
class LayerRow:
    name: str
    kind: str  # "binary" (binarized conv), "fp-conv", "linear", "bn"
    out_shape: tuple
    binarized_weights: int = 0
    weight_bits: float = 0.0  # bits stored for the binarized weights
    fp32_params: int = 0  # 32-bit values needed at inference (FP weights, biases, BN, scales)
    training_only: int = 0  # floats only training needs (RBNN's R1, R2, theta...)
    binary_macs: int = 0
    fp_macs: int = 0
    scale_floats: int = 0  # of fp32_params: the method's per-channel scales (alpha, lambda)
    training_state: dict = field(default_factory=dict)  # training_only by name (R1, R2, theta)
    xor_matrices: dict = field(default_factory=dict)  # FleXOR M+: {fingerprint of one plane: N_out*N_in bits}

    @property
    def memory_kib(self) -> float:
        return (self.weight_bits + 32 * self.fp32_params) / 8 / 1024

    @property
    def fp32_kib(self) -> float:
        return 32 * (self.binarized_weights + self.fp32_params) / 8 / 1024


def xor_planes(layer: nn.Module) -> dict[str, int]:
    """FleXOR's XOR-gate matrices M+ (buffer ``xor_matrix``, q planes of N_out x N_in bits): one
    entry per plane, keyed by its content, so a matrix shared by several layers counts once."""
    m = getattr(layer, "xor_matrix", None)
    if not isinstance(m, torch.Tensor) or m.dim() != 3:
        return {}
    planes = m.detach().cpu().to(torch.uint8)
    return {
        hashlib.sha1(p.contiguous().numpy().tobytes() + str(tuple(p.shape)).encode()).hexdigest(): p.numel()
        for p in planes
    }


@torch.no_grad()
def summarize(model: nn.Module, input_size: int) -> list[LayerRow]:
    """One row per binarized conv, FP conv, linear and BatchNorm layer, in forward order."""
    rows: list[LayerRow] = []
    handled: set[int] = set()
    hooks = []

    def hook(name):
        def fn(module, inputs, output):
            if id(module) in handled:
                return
            handled.add(id(module))
            out_shape = tuple(output.shape[1:])
            if isinstance(module, QuantLayer):
                s = module.storage()
                # every weight is used once per output position: H_out*W_out (conv), tokens (linear)
                macs = s.weights * (output[0].numel() // module.out_channels)
                binary = module.binary_input()
                bias = getattr(module, "bias", None)
                rows.append(
                    LayerRow(
                        name,
                        "binary",
                        out_shape,
                        s.weights,
                        s.weight_bits,
                        s.inference_floats + (bias.numel() if isinstance(bias, torch.Tensor) else 0),
                        sum(s.training_floats.values()),
                        macs if binary else 0,
                        0 if binary else macs,
                        scale_floats=s.inference_floats,
                        training_state=dict(s.training_floats),
                        xor_matrices=xor_planes(module),
                    )
                )
            elif isinstance(module, nn.Conv2d):
                params = sum(p.numel() for p in module.parameters())
                macs = module.weight.numel() * output.shape[-1] * output.shape[-2]
                rows.append(LayerRow(name, "fp-conv", out_shape, fp32_params=params, fp_macs=macs))
            elif isinstance(module, nn.Linear):
                rows.append(
                    LayerRow(
                        name,
                        "linear",
                        out_shape,
                        fp32_params=sum(p.numel() for p in module.parameters()),
                        fp_macs=module.weight.numel() * (output[0].numel() // module.out_features),
                    )
                )
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                rows.append(LayerRow(name, "bn", out_shape, fp32_params=sum(p.numel() for p in module.parameters())))

        return fn

    for name, module in model.named_modules():
        if isinstance(module, (QuantLayer, nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)):
            hooks.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, 3, input_size, input_size))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    # parameters no hooked layer owns (rare: custom modules) still count as 32-bit
    owned = {
        id(p)
        for name, m in model.named_modules()
        if isinstance(m, (QuantLayer, nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm))
        for p in m.parameters()
    }
    loose = sum(p.numel() for p in model.parameters() if id(p) not in owned)
    if loose:
        rows.append(LayerRow("(other parameters)", "other", (), fp32_params=loose))
    return rows


def totals(rows: list[LayerRow]) -> dict:
    t = {
        k: sum(getattr(r, k) for r in rows)
        for k in (
            "binarized_weights",
            "weight_bits",
            "fp32_params",
            "training_only",
            "binary_macs",
            "fp_macs",
            "scale_floats",
        )
    }
    by_name: dict[str, int] = {}
    xor: dict[str, int] = {}
    for r in rows:
        for k, v in r.training_state.items():
            by_name[k] = by_name.get(k, 0) + v
        xor.update(r.xor_matrices)
    # needed at inference but not a weight: FleXOR's distinct XOR matrices (bits, in memory below)
    t.update(training_by_name=by_name, xor_matrices=len(xor), xor_matrix_bits=sum(xor.values()))
    memory_kib = (t["weight_bits"] + t["xor_matrix_bits"] + 32 * t["fp32_params"]) / 8 / 1024
    fp32_kib = 32 * (t["binarized_weights"] + t["fp32_params"]) / 8 / 1024
    t.update(
        memory_kib=round(memory_kib, 2),
        fp32_equivalent_kib=round(fp32_kib, 2),
        compression=round(fp32_kib / memory_kib, 2) if memory_kib else 1.0,
        bits_per_binarized_weight=round(t["weight_bits"] / t["binarized_weights"], 4)
        if t["binarized_weights"]
        else None,
        binary_mac_share=round(t["binary_macs"] / max(t["binary_macs"] + t["fp_macs"], 1), 4),
        bops=t["binary_macs"],
        flops=t["fp_macs"],
        ops=t["binary_macs"] / 64 + t["fp_macs"],
        training_only_kib=round(32 * t["training_only"] / 8 / 1024, 2),
    )
    return t


def _n(x: float) -> str:
    return f"{x:,.0f}" if x else "0"


def format_summary(rows: list[LayerRow], title: str = "") -> str:
    head = [
        "layer",
        "kind",
        "output",
        "1-bit/sub-bit weights",
        "bits",
        "fp32 params",
        "train-only",
        "binary MACs",
        "fp MACs",
        "memory KiB",
    ]
    table = [head]
    for r in rows:
        table.append(
            [
                r.name,
                r.kind,
                "x".join(map(str, r.out_shape)),
                _n(r.binarized_weights),
                _n(r.weight_bits),
                _n(r.fp32_params),
                _n(r.training_only),
                _n(r.binary_macs),
                _n(r.fp_macs),
                f"{r.memory_kib:.2f}",
            ]
        )
    t = totals(rows)
    table.append(
        [
            "total",
            "",
            "",
            _n(t["binarized_weights"]),
            _n(t["weight_bits"]),
            _n(t["fp32_params"]),
            _n(t["training_only"]),
            _n(t["binary_macs"]),
            _n(t["fp_macs"]),
            f"{t['memory_kib']:.2f}",
        ]
    )
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = [title] if title else []
    for i, row in enumerate(table):
        lines.append("  ".join(c.ljust(w) if j < 3 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0 or i == len(table) - 2:
            lines.append("  ".join("-" * w for w in widths))
    bpw = t["bits_per_binarized_weight"]
    lines += [
        "",
        f"binarized weights:      {t['binarized_weights']:,} at {bpw if bpw is not None else '-'} bits each",
        f"32-bit values:          {t['fp32_params']:,} (FP layers, BatchNorm, scales; of these {t['scale_floats']:,} "
        f"per-channel scales of the binarized convs)",
    ]
    if t["xor_matrices"]:
        lines.append(
            f"XOR network M+:         {t['xor_matrices']} distinct matri{'x' if t['xor_matrices'] == 1 else 'ces'}, "
            f"{t['xor_matrix_bits']:,} bits "
            f"(needed at inference, shared by the layers that use them)"
        )
    named = ", ".join(f"{k} {v:,}" for k, v in t["training_by_name"].items())
    lines += [
        f"memory:                 {t['memory_kib']:,.2f} KiB  "
        f"(float-32 equivalent {t['fp32_equivalent_kib']:,.2f} KiB, "
        f"compression {t['compression']}x)",
        f"training-only state:    {t['training_only']:,} floats ({t['training_only_kib']:,.2f} KiB"
        f"{': ' + named if named else ''}), not needed at inference",
        f"MACs:                   {t['binary_macs']:,} binary + {t['fp_macs']:,} full precision "
        f"({_binary_share(t, 'binary share {:.1f} %')})",
        f"OPs = BOPs/64 + FLOPs:  {t['ops']:,.0f} = {t['ops']:.3e} per image "
        f"(BOPs {t['bops']:.4e}, FLOPs {t['flops']:.4e}; Bi-Real Net / ReActNet convention)",
    ]
    return "\n".join(lines)


def _bits(key: str) -> str:
    return f"{key} bit" if key in ("1",) else f"{key} bits"


def _binary_share(t: dict, share: str) -> str:
    """The binary share of the MACs, or why there is none: no binarized layer takes 1-bit inputs
    (FleXOR and LSQ keep full-precision activations, DoReFa at act_bits > 1 k-bit ones)."""
    if t["binarized_weights"] and not t["binary_macs"]:
        return "none binary: no binarized layer has 1-bit inputs"
    return share.format(100 * t["binary_mac_share"])


def _macs(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def compact_summary(rows: list[LayerRow], static: dict, title: str = "") -> list[str]:
    """Two lines for the console and train.log (the full table is summary.txt): parameters by
    bit width, bits per weight, deployment memory, MACs split into binary and full precision."""
    t = totals(rows)
    params = static.get("params") or {}
    by_width = params.get("by_bit_width") or {}
    total = sum(by_width.values()) if by_width else t["binarized_weights"] + t["fp32_params"]
    widths = ", ".join(f"{n:,} at {_bits(k)}" for k, n in sorted(by_width.items(), key=lambda kv: float(kv[0])))
    layers = static.get("binarized_layers")
    head = f"{title}: " if title else ""
    line1 = (
        f"{head}{total:,} params ({widths}); {layers} binarized layers, "
        f"{static.get('bits_per_weight')} bits/weight ({static.get('bits_per_weight_with_scales')} with scales)"
    )
    line2 = (
        f"deployed size {t['memory_kib']:,.2f} KiB "
        f"(float-32 {t['fp32_equivalent_kib']:,.2f} KiB, {t['compression']}x); "
        f"MACs {_macs(t['binary_macs'])} binary + {_macs(t['fp_macs'])} full precision "
        f"({_binary_share(t, '{:.1f} % binary')}); full table: summary.txt"
    )
    if t["training_only"]:
        line2 += f"; training-only state {t['training_only']:,} floats"
    return [line1, line2]


def summary_dict(rows: list[LayerRow]) -> dict:
    return {"layers": [dict(asdict(r), memory_kib=round(r.memory_kib, 3)) for r in rows], "totals": totals(rows)}


def data_input_size(data_cfg) -> int:
    """The image size a run of this data config sees (CIFAR: 32, MNIST: 28)."""
    return {"cifar": 32, "mnist": 28}.get(data_cfg.kind) or int(data_cfg.image_size)


def data_num_classes(data_cfg) -> int:
    from binexp.errors import BinexpError

    if getattr(data_cfg, "kind", "") == "cifar":
        return int(data_cfg.variant)
    if getattr(data_cfg, "kind", "") == "mnist":
        return 10
    n = getattr(data_cfg, "num_classes", None)
    if not n:
        raise BinexpError(f"data.num_classes is not set for data={data_cfg.name}; fix: add data.num_classes=<N>")
    return int(n)
