"""What a model costs in bits: parameters by bit width and bits per binarized weight."""

from __future__ import annotations

from torch import nn

from binexp.quant.layers import quantized_layers


def _fmt_bits(bits: float) -> str:
    return f"{bits:g}" if abs(bits - round(bits)) > 1e-9 else str(int(round(bits)))


def model_bits(model: nn.Module) -> dict:
    """Counts for ``metrics.json``: inference storage split into binarized weights (at their
    bit width) and 32-bit values, plus the training-only state of the methods."""
    layers = quantized_layers(model)
    # a binarized layer's own parameters are its method state; a linear layer's bias stays 32-bit
    in_quant = {id(p) for _, layer in layers for p in layer.parameters() if p is not getattr(layer, "bias", None)}
    fp32 = sum(p.numel() for p in model.parameters() if id(p) not in in_quant)
    positions = weight_bits = inference_floats = training = 0
    by_bits: dict[str, int] = {}
    reports = {}
    for name, layer in layers:
        report = layer.report()
        if report:
            reports[name.removeprefix("net.")] = report
        s = layer.storage()
        positions += s.weights
        weight_bits += s.weight_bits
        inference_floats += s.inference_floats
        training += sum(s.training_floats.values())
        key = _fmt_bits(round(s.bits_per_weight, 4))
        by_bits[key] = by_bits.get(key, 0) + s.weights
    by_bits["32"] = by_bits.get("32", 0) + fp32 + inference_floats
    # model-level aggregates of a method (e.g. FleXOR's effective bits): a layer class may
    # define ``model_report(layers) -> dict`` over all its layers in the model (one call per
    # hook: a method's conv and linear classes share theirs, so their layers are reported together)
    method_report: dict = {}
    groups: dict = {}  # the hook's function -> (the hook, its layers)
    for _, layer in layers:
        hook = getattr(type(layer), "model_report", None)
        if callable(hook):
            groups.setdefault(getattr(hook, "__func__", hook), (hook, []))[1].append(layer)
    for hook, members in groups.values():
        method_report.update(hook(members))
    # distinct FleXOR XOR matrices are stored once (as binexp summary counts them)
    from binexp.analysis.summary import xor_planes

    xor: dict[str, int] = {}
    for _, layer in layers:
        xor.update(xor_planes(layer))
    model_size_bits = weight_bits + sum(xor.values()) + 32 * (fp32 + inference_floats)
    return {
        # the whole model at its stored bits: binary / sub-1-bit weights + XOR matrices + 32-bit values, KiB
        "model_size_kib": round(model_size_bits / 8 / 1024, 3),
        "params": {
            "binarized_weights": positions,
            "binarized_weight_bits": weight_bits,
            "fp32": fp32 + inference_floats,
            "training_only_fp32": training,
            "by_bit_width": by_bits,
        },
        "bits_per_weight": round(weight_bits / positions, 4) if positions else 32.0,
        # the scales (alpha) stored at 32 bits each, spread over the binarized weights
        "bits_per_weight_with_scales": round((weight_bits + 32 * inference_floats) / positions, 4)
        if positions
        else 32.0,
        "binarized_layers": len(layers),
        "layer_reports": reports,
        "method_report": method_report,
    }


def model_ops(model: nn.Module, input_size: int) -> dict:
    """Operations per ``input_size`` x ``input_size`` image for ``metrics.json`` (``ops``): BOPs,
    FLOPs and OPs = FLOPs + BOPs/64, counted as :mod:`binexp.analysis.summary` states (the Bi-Real
    Net / ReActNet convention)."""
    from binexp.analysis.summary import summarize, totals

    t = totals(summarize(model, input_size))
    return {"input_size": input_size, "bops": t["bops"], "flops": t["flops"], "ops": t["ops"]}
