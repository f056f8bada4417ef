"""A small binarized vision transformer for 32x32 inputs: DeiT-Tiny's layout (Touvron et al.,
arXiv 2012.12877; timm's ``VisionTransformer``) with the linear layers binarized by the quantizer.

What stays full precision, as in every binarized transformer we follow (BiBench's BERT,
htqin/BiBench ``Libraries/BiNLP``; BiT, facebookresearch/bit ``transformer/modeling_bert_quant.py``;
BiViT, ThisisBillhe/BiViT ``binary_modules/utils_quant.py``): the patch embedding (a conv with
bias), the class token, the learned position embedding, every LayerNorm, the residual additions, the softmax (unless
``model.attn_binarize``) and the classifier head. Binarized, through the quantizer's linear rule
(``conv.linear``): in every block the q/k/v projection, the attention output projection and the
two MLP layers, each with a full-precision bias.

``model.attn_binarize`` (the attention probabilities; q k^T and p v are otherwise full precision):

* ``none`` (default): softmax(q k^T / sqrt(d)) v in full precision;
* ``bibert``: BiBench's binarized BERT (``BinaryBertSelfAttention``): q, k, v -> sign (clipped STE),
  probabilities P = 1{q_b k_b^T / sqrt(d) >= 0} in {0, 1} with no softmax; BiBench returns no
  gradient through P (so q and k learn nothing from the loss), here P passes g * 1{|s| <= 1} to the
  scores s, the straight-through estimator the sign of q and k use;
* ``bit``: BiT (Liu et al., arXiv 2205.13016): q, k, v through a signed elastic binarizer
  alpha * sign(x), the softmax probabilities through an unsigned one alpha * round(clamp(p / alpha,
  0, 1)); alpha a learnable scalar per tensor, initialised at the first forward to 2 mean|x|
  (signed) or 4 mean|p| (unsigned), with LSQ's gradient scale 1/sqrt(numel) (BiT
  ``transformer/utils_quant.py``: ``ElasticQuantBinarizerSigned/Unsigned``, ``AlphaInit``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from binexp.models.activations import ActLayer
from binexp.models.registry import ModelConfig, register_model, scaled
from binexp.quant.layers import QuantLayer
from binexp.quant.sign import SurrogateParams, make_surrogate, sign_pm1


class _Elastic(torch.autograd.Function):
    """BiT's 1-bit elastic binarizer. Signed: alpha sign(x), dL/dx = g 1{|x/alpha| <= 1},
    dL/dalpha = sum(sign(x) g) / sqrt(numel). Unsigned: alpha round(clamp(x/alpha, 0, 1)),
    dL/dx = g 1{0 <= x/alpha <= 1}, dL/dalpha = sum((1{x/alpha > 1} + 1{inside} (round(q) - q)) g)
    / sqrt(numel), q = x/alpha."""

    @staticmethod
    def forward(ctx, x: Tensor, alpha: Tensor, signed: bool) -> Tensor:
        a = alpha.clamp_min(1e-5)
        ctx.save_for_backward(x, a)
        ctx.signed = signed
        if signed:
            return sign_pm1(x) * a
        return (x / a).round().clamp(0, 1) * a

    @staticmethod
    def backward(ctx, g: Tensor):
        x, a = ctx.saved_tensors
        q = x / a
        scale = 1.0 / math.sqrt(x.numel())
        if ctx.signed:
            inside = (q >= -1) & (q <= 1)
            grad_a = (sign_pm1(x) * g).sum() * scale
        else:
            inside = (q >= 0) & (q <= 1)
            grad_a = (((q > 1).to(g.dtype) + inside.to(g.dtype) * (q.round() - q)) * g).sum() * scale
        return g * inside.to(g.dtype), grad_a.reshape(a.shape), None


class ElasticBinarizer(nn.Module):
    """BiT's elastic binarizer with its learnable scale alpha, initialised from the first tensor
    it sees (2 mean|x| signed, 4 mean|x| unsigned; rank 0's value under torch.distributed, so
    every rank holds the same alpha). ``initialized`` is a buffer: a checkpoint keeps it."""

    initialized: Tensor

    def __init__(self, signed: bool) -> None:
        super().__init__()
        self.signed = signed
        self.alpha = nn.Parameter(torch.ones(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def forward(self, x: Tensor) -> Tensor:
        if not bool(self.initialized):
            with torch.no_grad():
                self.alpha.copy_((2.0 if self.signed else 4.0) * x.detach().abs().mean())
                if torch.distributed.is_available() and torch.distributed.is_initialized():
                    torch.distributed.broadcast(self.alpha.data, src=0)
                self.initialized.fill_(True)
        return _Elastic.apply(x, self.alpha, self.signed)


class _Heaviside(torch.autograd.Function):
    """1{s >= 0} in {0, 1}; backward g 1{|s| <= 1} (straight through, clipped)."""

    @staticmethod
    def forward(ctx, s: Tensor) -> Tensor:
        ctx.save_for_backward(s)
        return (s >= 0).to(s.dtype)

    @staticmethod
    def backward(ctx, g: Tensor):
        (s,) = ctx.saved_tensors
        return g * (s.abs() <= 1).to(g.dtype)


class Attention(nn.Module):
    """Multi-head self-attention with binarizable q/k/v and output projections."""

    def __init__(self, conv, dim: int, heads: int, attn_binarize: str = "none", stage: int = 0) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.attn_binarize = attn_binarize
        self.qkv = conv.linear(dim, 3 * dim, role="qkv", stage=stage)
        self.proj = conv.linear(dim, dim, role="proj", stage=stage)
        if attn_binarize == "bibert":
            self.qkv_sign = make_surrogate("clipped_ste", "activation", SurrogateParams())
        elif attn_binarize == "bit":
            self.q_bin, self.k_bin, self.v_bin = (ElasticBinarizer(True) for _ in range(3))
            self.p_bin = ElasticBinarizer(False)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        if self.attn_binarize == "none":
            out = F.scaled_dot_product_attention(q, k, v)
        elif self.attn_binarize == "bibert":
            q, k, v = self.qkv_sign(q), self.qkv_sign(k), self.qkv_sign(v)
            out = _Heaviside.apply((q @ k.transpose(-2, -1)) * self.scale) @ v
        else:
            q, k, v = self.q_bin(q), self.k_bin(k), self.v_bin(v)
            p = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
            out = self.p_bin(p) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Pre-norm transformer block: x + proj(attn(LN(x))), then x + fc2(act(fc1(LN(x))))."""

    def __init__(
        self, conv, dim: int, heads: int, hidden: int, act_layer: ActLayer, attn_binarize: str, stage: int = 0
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(conv, dim, heads, attn_binarize, stage)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = conv.linear(dim, hidden, role="fc1", stage=stage)
        self.act = act_layer(hidden)
        self.fc2 = conv.linear(hidden, dim, role="fc2", stage=stage)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class VisionTransformer(nn.Module):
    """Patch embedding (FP conv p x p, stride p) -> [cls] + tokens + position embedding -> blocks
    -> LayerNorm -> FP head on the class token. Init as timm's DeiT: linear weights and the
    embeddings truncated-normal std 0.02, biases 0, LayerNorm 1/0. An input whose token grid differs
    from the one built for (``image_size``) gets the position embedding resized bicubically."""

    def __init__(
        self,
        conv,
        num_classes: int,
        image_size: int = 32,
        patch_size: int = 4,
        dim: int = 192,
        depth: int = 12,
        heads: int = 3,
        mlp_ratio: float = 4.0,
        act_layer: ActLayer = lambda c: nn.GELU(),
        attn_binarize: str = "none",
    ) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch_size, patch_size)
        self.grid = image_size // patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid * self.grid + 1, dim))
        hidden = max(1, int(dim * mlp_ratio + 0.5))
        self.blocks = nn.Sequential(*(Block(conv, dim, heads, hidden, act_layer, attn_binarize) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, (nn.Linear, QuantLayer)):
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=0.02)
                else:
                    m.reset_latent_weight(lambda w: nn.init.trunc_normal_(w, std=0.02))
                bias = getattr(m, "bias", None)
                if isinstance(bias, Tensor):
                    nn.init.zeros_(bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def position_embedding(self, grid: int) -> Tensor:
        if grid == self.grid:
            return self.pos_embed
        cls, tokens = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        tokens = tokens.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        tokens = F.interpolate(tokens, size=(grid, grid), mode="bicubic", align_corners=False)
        return torch.cat([cls, tokens.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        grid = x.shape[-1]
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.position_embedding(grid)
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


@register_model(
    "vit_cifar",
    "DeiT-Tiny-like pre-norm ViT for 32x32 (4x4 patches; q/k/v, proj and MLP linears binarized; "
    "model.attn_binarize=none|bibert|bit)",
)
def vit_cifar(cfg: ModelConfig, conv, num_classes: int) -> nn.Module:
    """``model.width`` scales the token width (rounded to a multiple of ``model.heads``)."""
    dim = max(cfg.heads, round(scaled(cfg.dim, cfg.width) / cfg.heads) * cfg.heads)
    return VisionTransformer(
        conv,
        num_classes,
        image_size=32,
        patch_size=cfg.patch_size,
        dim=dim,
        depth=cfg.depth,
        heads=cfg.heads,
        mlp_ratio=cfg.mlp_ratio,
        act_layer=cfg.act_layer(),
        attn_binarize=cfg.attn_binarize,
    )


__all__ = ["Attention", "Block", "ElasticBinarizer", "VisionTransformer"]
