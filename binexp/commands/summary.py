"""``binexp summary [--input-size N] [--json] [--run DIR] [overrides]``: the bit-aware summary
(:mod:`binexp.analysis.summary`) of a config, or of a trained run."""

from __future__ import annotations

from torch import nn

from binexp.analysis.summary import data_input_size, data_num_classes, format_summary, summarize, summary_dict


def main(args: list[str]) -> int:
    """``binexp summary [--input-size N] [--json] [--run DIR] [overrides]``: the same config as
    ``train``; ``--run`` summarises a trained run (its checkpoint and saved config) instead, so its
    sign-bit entropy and Huffman section describe the trained weights."""
    import argparse

    from binexp.config import validate
    from binexp.lit.module import build_classifier
    from binexp.models import MODELS
    from binexp.preflight import compose

    parser = argparse.ArgumentParser(prog="binexp summary", description=main.__doc__)
    parser.add_argument(
        "--input-size", type=int, default=None, help="input image size (default: the data's, 224 for ImageNet models)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument(
        "--run",
        default=None,
        help="a run directory (its checkpoints/last.ckpt) or a .ckpt: summarise "
        "the trained model (overrides are ignored)",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for binexp train")
    ns = parser.parse_args(args)
    if ns.run:
        return _summarize_run(ns)
    overrides = list(ns.overrides)
    model_name = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), None)
    if (
        model_name in MODELS
        and MODELS[model_name].input_size == 224
        and not any(o.startswith("data=") for o in overrides)
    ):
        overrides.append("data=imagenet")  # an ImageNet architecture is summarised on ImageNet
    if (
        model_name in MODELS
        and MODELS[model_name].input_size == 28
        and not any(o.startswith("data=") for o in overrides)
    ):
        overrides.append("data=mnist")  # LeNet-5 is summarised on MNIST's 28x28
    run = validate(compose(overrides))
    num_classes = data_num_classes(run.data)
    module = build_classifier(run, num_classes)
    size = ns.input_size or data_input_size(run.data)
    title = f"{run.model.name} / {run.quantizer.name} / {run.data.name}: {num_classes} classes, {size}x{size} input"
    _print(module.net, size, title, ns.json)
    return 0


def _print(net: nn.Module, size: int, title: str, as_json: bool) -> None:
    import json

    from binexp.analysis.entropy import format_entropy, model_entropy

    rows = summarize(net, size)
    entropy = model_entropy(net)
    if as_json:
        print(json.dumps(dict(summary_dict(rows), entropy=entropy), indent=2))
    else:
        print(format_summary(rows, title) + ("\n\n" + format_entropy(entropy) if entropy else ""))


def _summarize_run(ns) -> int:
    """``--run``: rebuild the run's model from its checkpoint (weights_only load) and summarise it."""
    from omegaconf import OmegaConf

    from binexp.lit.restore import build_module
    from binexp.runs import checkpoint

    path = checkpoint.locate(ns.run, "summary")
    module = build_module(checkpoint.load(path, "summary"), path, "summary")
    cfg = OmegaConf.create(module.hparams.get("run_config") or {})
    data = cfg.get("data") or {}
    size = ns.input_size or {"cifar": 32, "mnist": 28}.get(str(data.get("kind"))) or int(data.get("image_size", 32))
    title = f"{cfg.get('name', path)} (trained, {path}): {size}x{size} input"
    _print(module.net, size, title, ns.json)
    return 0
