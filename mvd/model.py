"""Video Vision Transformer used to fine-tune MVD / VideoMAE encoders.

The architecture is the fine-tuning model of
    MVD: Masked Video Distillation (Wang et al., CVPR 2023) - https://arxiv.org/abs/2212.04500
    VideoMAE: Masked Autoencoders are Data-Efficient Learners for Self-Supervised Video
    Pre-Training (Tong et al., NeurIPS 2022) - https://arxiv.org/abs/2203.12602
which is a plain ViT (https://arxiv.org/abs/2010.11929) over 3-D "tubelet" patches:

    Conv3d tubelet embedding -> + fixed 3-D sin-cos position embedding -> N x Block
    -> mean over tokens -> fc_norm -> dropout -> head

With ``dense_head=True`` the model also classifies every temporal token (the tubelet gives
``num_frames / tubelet_size`` time steps): the tokens of one time step are averaged over space,
normalised by the same ``fc_norm`` and mapped by ``dense_head`` to class logits
(:meth:`VisionTransformer.forward_dense`). This is the dense per-time-step classification head of
temporal action localisation models (ActionFormer, Zhang et al., ECCV 2022,
https://arxiv.org/abs/2202.07925; TriDet, Shi et al., CVPR 2023, https://arxiv.org/abs/2303.07347),
without their boundary regression: the events here are short against the window, and bouts are
formed afterwards by one post-processor (:mod:`mvd.postprocess`) from the per-frame probabilities
stitched over overlapping windows (:mod:`mvd.dense`) — the frame-wise output that MS-TCN (Farha &
Gall, CVPR 2019, https://arxiv.org/abs/1903.01945) showed to localise actions, here from the ViT's
own temporal tokens so official checkpoints still load (the dense head starts at initialisation).

Parameter names follow the official code so its checkpoints load without renaming:
attention has a bias-free `qkv` projection plus separate `q_bias` / `v_bias` (the key
bias is zero), there is no class token, and the position embedding is a non-persistent
buffer (regenerated for any frame count or input size, never stored in a state dict).

`checkpoint_filter_fn` adapts official fine-tuned and pre-trained checkpoints to this
model; `VARIANTS` / `create_model` build the standard sizes.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, trunc_normal_
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .variants import VARIANTS

__all__ = [
    "VARIANTS",
    "Attention",
    "Block",
    "PatchEmbed",
    "VisionTransformer",
    "checkpoint_filter_fn",
    "create_model",
    "get_3d_sincos_pos_embed",
    "load_checkpoint",
    "unwrap_checkpoint",
]

logger = logging.getLogger(__name__)

LAYER_NORM_EPS = 1e-6
# normalize_contrast divides by at least this (in normalised input units, about 3 grey levels): a
# featureless crop keeps its faint noise faint instead of being blown up to the contrast of an animal
CONTRAST_FLOOR = 0.05


def _sincos_1d(dim: int, pos: Tensor) -> Tensor:
    """(M,) positions -> (M, dim) embedding: [sin(pos * w_i), cos(pos * w_i)], w_i = 10000^(-2i/dim)."""
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000.0**omega
    out = pos.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([out.sin(), out.cos()], dim=1)


def get_3d_sincos_pos_embed(embed_dim: int, grid_size: tuple[int, int], t_size: int) -> Tensor:
    """Fixed 3-D sin-cos position embedding, shape (t_size * grid_h * grid_w, embed_dim).

    Token order is (t, h, w) row-major, matching the flattened Conv3d output. The first
    quarter of the channels encodes t; the remaining three quarters encode the spatial
    position as [embedding of w, embedding of h] (the official MVD layout).
    """
    assert embed_dim % 16 == 0, f"embed_dim must be divisible by 16 for the 3-D sin-cos embedding, got {embed_dim}"
    grid_h, grid_w = grid_size
    dim_t = embed_dim // 4
    dim_s = embed_dim - dim_t
    hh, ww = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
    spatial = torch.cat([_sincos_1d(dim_s // 2, ww.flatten()), _sincos_1d(dim_s // 2, hh.flatten())], dim=1)
    temporal = _sincos_1d(dim_t, torch.arange(t_size))
    n_spatial = grid_h * grid_w
    pos = torch.cat(
        [temporal[:, None, :].expand(t_size, n_spatial, dim_t), spatial[None].expand(t_size, n_spatial, dim_s)],
        dim=-1,
    )
    return pos.reshape(t_size * n_spatial, embed_dim).to(torch.float32)


class PatchEmbed(nn.Module):
    """(B, C, T, H, W) video -> (B, N, D) tokens with a tubelet Conv3d."""

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        num_frames: int = 16,
        tubelet_size: int = 2,
    ) -> None:
        super().__init__()
        assert img_size % patch_size == 0, f"img_size {img_size} must be divisible by patch_size {patch_size}"
        assert num_frames % tubelet_size == 0, f"num_frames {num_frames} must be divisible by tubelet_size {tubelet_size}"
        self.img_size = img_size
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = (num_frames // tubelet_size) * self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv3d(
            in_chans,
            embed_dim,
            kernel_size=(tubelet_size, patch_size, patch_size),
            stride=(tubelet_size, patch_size, patch_size),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a bias-free `qkv` and separate query / value biases."""

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = False,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        assert dim % num_heads == 0, f"dim {dim} must be divisible by num_heads {num_heads}"
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = None
            self.v_bias = None
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        B, N, C = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias)
        q, k, v = qkv.reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class Block(nn.Module):
    """Pre-norm transformer block with optional layer scale (`gamma_1`, `gamma_2`)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        init_values: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        # dropout only after fc2, as in the official Mlp
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU, drop=(0.0, drop))
        if init_values > 0:
            self.gamma_1 = nn.Parameter(init_values * torch.ones(dim))
            self.gamma_2 = nn.Parameter(init_values * torch.ones(dim))
        else:
            self.gamma_1 = None
            self.gamma_2 = None

    def forward(self, x: Tensor) -> Tensor:
        if self.gamma_1 is None:
            x = x + self.drop_path(self.attn(self.norm1(x)))
            x = x + self.drop_path(self.mlp(self.norm2(x)))
        else:
            x = x + self.drop_path(self.gamma_1 * self.attn(self.norm1(x)))
            x = x + self.drop_path(self.gamma_2 * self.mlp(self.norm2(x)))
        return x


class VisionTransformer(nn.Module):
    """Video ViT classifier: (B, 3, T, H, W) float -> (B, num_classes) logits."""

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        init_values: float = 0.0,
        num_frames: int = 16,
        tubelet_size: int = 2,
        fc_drop_rate: float = 0.0,
        init_scale: float = 0.001,
        grad_checkpointing: bool = False,
        subtract_temporal_mean: bool = False,
        normalize_contrast: bool = False,
        dense_head: bool = False,
    ) -> None:
        super().__init__()
        assert num_classes >= 0, f"num_classes must be >= 0, got {num_classes}"
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dim
        self.in_chans = in_chans
        self.img_size = img_size
        self.patch_size = patch_size
        self.num_frames = num_frames
        self.tubelet_size = tubelet_size
        self.init_scale = init_scale
        self.grad_checkpointing = grad_checkpointing
        # Optional input normalisation without parameters: each frame minus the clip's mean frame,
        # so the tokens carry motion rather than the animal's and arena's appearance. Off for the
        # official architectures (their checkpoints expect RGB); the tiny CPU profile turns it on.
        self.subtract_temporal_mean = subtract_temporal_mean
        # Optional, also without parameters: each clip divided by its own standard deviation over
        # channels, frames and pixels (the contrast of the animal against its floor in the crop), so a
        # faint scene and a contrasty one of the same movement give the same input.
        self.normalize_contrast = normalize_contrast

        self.patch_embed = PatchEmbed(
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            embed_dim=embed_dim,
            num_frames=num_frames,
            tubelet_size=tubelet_size,
        )
        pos_embed = get_3d_sincos_pos_embed(embed_dim, self.patch_embed.grid_size, num_frames // tubelet_size)
        self.register_buffer("pos_embed", pos_embed.unsqueeze(0), persistent=False)
        self.pos_drop = nn.Dropout(p=drop_rate)

        dpr = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()  # stochastic depth decay rule
        self.blocks = nn.ModuleList(
            [
                Block(
                    dim=embed_dim,
                    num_heads=num_heads,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    drop=drop_rate,
                    attn_drop=attn_drop_rate,
                    drop_path=dpr[i],
                    init_values=init_values,
                )
                for i in range(depth)
            ]
        )
        self.fc_norm = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS)
        self.fc_dropout = nn.Dropout(p=fc_drop_rate) if fc_drop_rate > 0 else nn.Identity()
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.has_dense_head = bool(dense_head and num_classes > 0)
        if self.has_dense_head:
            self.dense_head = nn.Linear(embed_dim, num_classes)

        self.apply(self._init_weights)
        with torch.no_grad():
            for head in self._heads():
                head.weight.mul_(init_scale)
                head.bias.mul_(init_scale)

    def _heads(self) -> list[nn.Linear]:
        heads = [self.head] if isinstance(self.head, nn.Linear) else []
        return heads + ([self.dense_head] if self.has_dense_head else [])

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def get_num_layers(self) -> int:
        return len(self.blocks)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Names excluded from weight decay (the position embedding; it is a fixed buffer here)."""
        return {"pos_embed"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Layer groups for timm's layer-wise lr decay: patch embed → 0, block i → i + 1, head last."""
        return {"stem": r"^patch_embed", "blocks": r"^blocks\.(\d+)"}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the heads with freshly initialised ones for `num_classes` (0 = no head)."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        if self.has_dense_head:
            if num_classes > 0:
                self.dense_head = nn.Linear(self.embed_dim, num_classes)
            else:
                del self.dense_head
                self.has_dense_head = False
        for head in self._heads():
            head.to(device=self.fc_norm.weight.device, dtype=self.fc_norm.weight.dtype)
            self._init_weights(head)
            with torch.no_grad():
                head.weight.mul_(self.init_scale)
                head.bias.mul_(self.init_scale)

    def _pos_embed_for(self, num_frames: int) -> Tensor:
        t = num_frames // self.tubelet_size
        if self.pos_embed.shape[1] == t * self.patch_embed.grid_size[0] * self.patch_embed.grid_size[1]:
            return self.pos_embed
        pos = get_3d_sincos_pos_embed(self.embed_dim, self.patch_embed.grid_size, t)
        return pos.unsqueeze(0).to(self.pos_embed.device)

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> pooled, normalised features (B, embed_dim)."""
        return self.fc_norm(self.forward_tokens(x).mean(1))

    def forward_tokens(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> tokens (B, T/tubelet × H/patch × W/patch, embed_dim), time-major."""
        assert x.ndim == 5, f"expected input (B, C, T, H, W), got shape {tuple(x.shape)}"
        _, C, T, H, W = x.shape
        assert C == self.in_chans, f"expected {self.in_chans} channels, got {C} (input shape {tuple(x.shape)})"
        assert T % self.tubelet_size == 0, f"frame count {T} must be divisible by tubelet_size {self.tubelet_size}"
        assert H == self.img_size and W == self.img_size, (
            f"input size {H}x{W} does not match the model's img_size {self.img_size}; "
            f"resize the input or build the model with img_size={H}"
        )
        if self.normalize_contrast:
            x = x / x.std(dim=(1, 2, 3, 4), keepdim=True).clamp_min(CONTRAST_FLOOR)
        if self.subtract_temporal_mean:
            x = x - x.mean(dim=2, keepdim=True)
        x = self.patch_embed(x)
        x = x + self._pos_embed_for(T).to(dtype=x.dtype)
        x = self.pos_drop(x)
        for blk in self.blocks:
            if self.grad_checkpointing and self.training and not torch.jit.is_scripting():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.fc_dropout(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor, dense: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Clip logits (B, num_classes); with ``dense``, :meth:`forward_dense`'s pair (through
        ``forward`` so a DistributedDataParallel wrapper sees the call)."""
        if dense:
            return self.forward_dense(x)
        return self.forward_head(self.forward_features(x))

    def forward_dense(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, C, T, H, W) -> (clip logits (B, num_classes), per-time-step logits (B, T/tubelet, num_classes))."""
        assert self.has_dense_head, "this model has no dense head; build it with dense_head=True"
        tokens = self.forward_tokens(x)
        B, N, D = tokens.shape
        steps = x.shape[2] // self.tubelet_size
        clip = self.forward_head(self.fc_norm(tokens.mean(1)))
        per_step = self.fc_norm(tokens.reshape(B, steps, N // steps, D).mean(2))
        return clip, self.dense_head(self.fc_dropout(per_step))


# ---------------------------------------------------------------------------------------
# Foreign checkpoints
# ---------------------------------------------------------------------------------------

_CONTAINER_KEYS = ("model", "module")  # official fine-tune / pre-train, DeepSpeed
_ENCODER_PREFIXES = ("backbone.", "encoder.")
# Pre-training-only weights: decoders, their inputs and mask tokens, any teacher.
_PRETRAIN_ONLY_PREFIXES = (
    "decoder",
    "encoder_to_decoder.",
    "mask_token",
    "down_img.",
    "down_vid.",
    "teacher",
)
_HEAD_KEYS = ("head.weight", "head.bias")
_DENSE_HEAD_KEYS = ("dense_head.weight", "dense_head.bias")


def unwrap_checkpoint(checkpoint: Mapping[str, Any]) -> dict[str, Tensor]:
    """Return the weights of a checkpoint: its 'model' or 'module' entry, or the mapping itself."""
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"checkpoint must be a mapping of names to tensors, got {type(checkpoint).__name__}")
    weights: Mapping[str, Any] = checkpoint
    for key in _CONTAINER_KEYS:
        if isinstance(checkpoint.get(key), Mapping):
            weights = checkpoint[key]
            break
    not_tensors = sorted(str(k) for k, v in weights.items() if not isinstance(v, Tensor))
    if not_tensors:
        raise ValueError(
            f"checkpoint entries are not tensors: {not_tensors[:20]}; expected a flat state dict "
            f"or one under {' or '.join(repr(k) for k in _CONTAINER_KEYS)}"
        )
    return dict(weights)


def _filter(state_dict: Mapping[str, Any], model: VisionTransformer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    weights = unwrap_checkpoint(state_dict)

    renamed: dict[str, Tensor] = {}
    for key, value in weights.items():
        new_key = key
        for prefix in _ENCODER_PREFIXES:
            if key.startswith(prefix):
                new_key = key[len(prefix) :]
                break
        if new_key in renamed:
            raise ValueError(f"checkpoint key {key!r} collides with another key once its prefix is removed")
        renamed[new_key] = value

    # A pre-trained encoder has a final `norm` and neither `fc_norm` nor `head`.
    pretrained = "fc_norm.weight" not in renamed and "head.weight" not in renamed
    out: dict[str, Tensor] = {}
    ignored: list[str] = []
    for key, value in renamed.items():
        if key.startswith("pos_embed") or key.startswith(_PRETRAIN_ONLY_PREFIXES):
            ignored.append(key)  # fixed sin-cos here / not part of the encoder
        elif pretrained and key.startswith("norm."):
            ignored.append(key)  # with mean pooling the official fine-tune model has no `norm`
        else:
            out[key] = value
    if ignored:
        logger.info("ignoring %d checkpoint tensors not used by the fine-tune model (e.g. %s)", len(ignored), ignored[:3])

    target = model.state_dict()
    fc_norm_initialised = False
    if pretrained and "fc_norm.weight" in target:
        # official fine-tuning leaves fc_norm at its LayerNorm initialisation
        out["fc_norm.weight"] = torch.ones_like(target["fc_norm.weight"])
        out["fc_norm.bias"] = torch.zeros_like(target["fc_norm.bias"])
        fc_norm_initialised = True
        logger.info("pre-trained encoder checkpoint: fc_norm starts at its initialisation (weight 1, bias 0)")

    head_in_ckpt = [k for k in _HEAD_KEYS if k in out]
    head_dropped = False
    if head_in_ckpt and any(k not in target or out[k].shape != target[k].shape for k in head_in_ckpt):
        logger.info(
            "dropping checkpoint head %s: the model has %d classes; the head keeps its initialisation",
            tuple(out["head.weight"].shape) if "head.weight" in out else "",
            model.num_classes,
        )
        for k in head_in_ckpt:
            del out[k]
        head_dropped = True
    head_loaded = bool(head_in_ckpt) and not head_dropped

    # the dense head: absent from official checkpoints (it starts at initialisation); dropped when
    # the model has none or another class count
    dense_in_ckpt = [k for k in _DENSE_HEAD_KEYS if k in out]
    if dense_in_ckpt and any(k not in target or out[k].shape != target[k].shape for k in dense_in_ckpt):
        logger.info("dropping the checkpoint's dense head: the model has none or another class count")
        for k in dense_in_ckpt:
            del out[k]
    dense_loaded = all(k in out for k in _DENSE_HEAD_KEYS)

    allowed_missing = (set() if head_loaded else set(_HEAD_KEYS)) | (set() if dense_loaded else set(_DENSE_HEAD_KEYS))
    missing = sorted(k for k in target if k not in out and k not in allowed_missing)
    unexpected = sorted(k for k in out if k not in target)
    mismatched = sorted(
        f"{k}: checkpoint {tuple(out[k].shape)} vs model {tuple(target[k].shape)}"
        for k in out
        if k in target and out[k].shape != target[k].shape
    )
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        if mismatched:
            parts.append(f"shape mismatches {mismatched}")
        raise ValueError(
            "checkpoint does not fit the model (check the architecture, tubelet/patch size and "
            "layer-scale settings): " + "; ".join(parts)
        )

    info = {
        "layout": "pretrained" if pretrained else "finetuned",
        "loaded": len(out),
        "ignored": len(ignored),
        "head_loaded": head_loaded,
        "head_dropped": head_dropped,
        "fc_norm_initialised": fc_norm_initialised,
        "dense_head_loaded": dense_loaded,
    }
    return out, info


def checkpoint_filter_fn(state_dict: Mapping[str, Any], model: VisionTransformer) -> dict[str, Tensor]:
    """Adapt an official MVD / VideoMAE checkpoint (or our own state dict) to `model`.

    Accepts weights flat or under 'model' / 'module'; strips 'encoder.' / 'backbone.'
    prefixes; ignores 'pos_embed' (fixed here) and pre-training-only tensors (decoders,
    'encoder_to_decoder', mask tokens, teacher). A pre-trained encoder's final 'norm' is
    ignored and 'fc_norm' starts at its initialisation, as in official mean-pooling
    fine-tuning. A head whose shape differs from the model's is dropped. Returns only
    keys the model has; raises ValueError listing missing, unexpected or mis-shaped keys.
    """
    return _filter(state_dict, model)[0]


def load_checkpoint(model: VisionTransformer, state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Filter `state_dict` with `checkpoint_filter_fn` and load it strictly into `model`.

    Only the head may stay unloaded (dropped for a class-count mismatch, or absent in a
    pre-trained checkpoint); it then keeps its initialisation. Returns a summary dict:
    layout, loaded, ignored, head_loaded, head_dropped, fc_norm_initialised.
    """
    filtered, info = _filter(state_dict, model)
    result = model.load_state_dict(filtered, strict=False)
    bad_missing = sorted(k for k in result.missing_keys
                         if not ((k in _HEAD_KEYS and not info["head_loaded"])
                                 or (k in _DENSE_HEAD_KEYS and not info["dense_head_loaded"])))
    if bad_missing or result.unexpected_keys:
        raise ValueError(f"checkpoint load failed: missing {bad_missing}, unexpected {sorted(result.unexpected_keys)}")
    return info


# ---------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------



def create_model(arch: str, *, num_classes: int, num_frames: int, img_size: int, **overrides: Any) -> VisionTransformer:
    """Build a variant from `VARIANTS` (patch 16, tubelet 2, qkv bias); `overrides` go to the constructor."""
    if arch not in VARIANTS:
        raise ValueError(f"unknown arch {arch!r}; valid names: {sorted(VARIANTS)}")
    kwargs: dict[str, Any] = dict(patch_size=16, tubelet_size=2, mlp_ratio=4.0, qkv_bias=True)
    kwargs.update(VARIANTS[arch])
    kwargs.update(overrides)
    return VisionTransformer(num_classes=num_classes, num_frames=num_frames, img_size=img_size, **kwargs)
