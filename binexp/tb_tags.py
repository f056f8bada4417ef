"""The names binexp's scalars get in TensorBoard. TensorBoard's Time Series and Scalars tabs group
the charts by the part of the tag before the first ``/`` and sort the groups by name (digits and
``/`` first, then by character code); Time Series opens the first two groups. So the names make
the first screen the one that compares runs:

- ``compare/``: val top-1 (``compare/accuracy_val_top1``) and, as means over the binarized
  layers, the angular bias of weights and activations and every scale α
  (``compare/angular_bias``, ``compare/act_angular_bias``, ``compare/rbnn_alpha_mean``, ...);
- ``curves/``: train and val loss, train top-1, val top-5, best val top-1, the learning rate and
  any other ``train/``/``val/`` scalar (``curves/train_angle_penalty``);
- ``method/``, ``model/`` unchanged; Lightning's ``epoch``;
- ``per_layer.<stat>/<layer>``: one group per per-layer statistic, one chart per layer, named by
  the layer (``per_layer.angular_bias/layer1.0.conv1``), after the rest.

Everything else (Lightning's metric names, checkpoints, ``metrics.json``, CSV, W&B, MLflow) keeps
the names the module logs (``val/acc1``, ``angular_bias/<layer>``, ``layer_mean/<stat>``):
:func:`tb_tag` maps those to TensorBoard's, :func:`logged_tag` back. No heavy imports here."""

from __future__ import annotations

CURVES = {
    "val/acc1": "compare/accuracy_val_top1",
    "train/loss": "curves/train_loss",
    "val/loss": "curves/val_loss",
    "train/acc1": "curves/train_top1",
    "val/acc5": "curves/val_top5",
    "val/acc1_best": "curves/val_top1_best",
}
_BACK = {v: k for k, v in CURVES.items()}
PER_LAYER = "per_layer."
KEPT = ("method", "model")


def tb_tag(tag: str) -> str:
    """The TensorBoard tag of a scalar binexp logs as ``tag``."""
    if tag in CURVES:
        return CURVES[tag]
    group, sep, rest = tag.partition("/")
    if group.startswith("lr-"):
        return f"curves/{tag}"
    if not sep or group in KEPT:
        return tag  # Lightning's ``epoch``
    if group == "layer_mean":
        return f"compare/{rest}"
    if group in ("train", "val"):
        return f"curves/{group}_{rest.replace('/', '_')}"
    return f"{PER_LAYER}{group}/{rest}"


def logged_tag(tag: str) -> str:
    """The name binexp logs for the TensorBoard tag ``tag`` (inverse of :func:`tb_tag`; tags of
    runs written before these names pass through)."""
    if tag in _BACK:
        return _BACK[tag]
    group, sep, rest = tag.partition("/")
    if group == "compare" and sep:
        return f"layer_mean/{rest}"
    if group == "curves" and sep:
        if rest.startswith("lr-"):
            return rest
        for prefix in ("train", "val"):
            if rest.startswith(prefix + "_"):
                return f"{prefix}/{rest.removeprefix(prefix + '_')}"
        return rest
    if group.startswith(PER_LAYER) and sep:
        return f"{group.removeprefix(PER_LAYER)}/{rest}"
    return tag
