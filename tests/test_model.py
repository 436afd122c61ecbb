"""Tests for mvd.model: shapes, gradients, position embedding, attention and checkpoint loading."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from mvd.model import (
    VARIANTS,
    Attention,
    VisionTransformer,
    checkpoint_filter_fn,
    create_model,
    get_3d_sincos_pos_embed,
    load_checkpoint,
)

torch.set_num_threads(2)

TINY = dict(embed_dim=192, depth=4, num_heads=3)


def _video(batch: int, frames: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, frames, size, size, generator=g)


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("arch, size", [("vit_tiny", 64), ("vit_small", 32), ("vit_base", 32)])
def test_output_shape_and_finite(arch: str, size: int) -> None:
    torch.manual_seed(0)
    model = create_model(arch, num_classes=3, num_frames=16, img_size=size).eval()
    for frames in (8, 16):
        with torch.no_grad():
            out = model(_video(2, frames, size))
        assert out.shape == (2, 3), f"{arch} at {frames} frames"
        assert torch.isfinite(out).all(), f"{arch} at {frames} frames"


def test_vit_large_shapes() -> None:
    # built on the meta device: checks the full 24 x 1024 architecture without allocating 300M weights
    with torch.device("meta"):
        model = create_model("vit_large", num_classes=3, num_frames=16, img_size=32).eval()
        assert len(model.blocks) == 24 and model.embed_dim == 1024
        assert sum(p.numel() for p in model.parameters()) > 300_000_000
        for frames in (8, 16):
            assert model(torch.empty(2, 3, frames, 32, 32)).shape == (2, 3)


@pytest.mark.parametrize(
    "arch, dims",
    [("vit_tiny", (192, 4, 3)), ("vit_small", (384, 12, 6)), ("vit_base", (768, 12, 12)), ("vit_large", (1024, 24, 16))],
)
def test_variant_table(arch: str, dims: tuple[int, int, int]) -> None:
    assert (VARIANTS[arch]["embed_dim"], VARIANTS[arch]["depth"], VARIANTS[arch]["num_heads"]) == dims


def test_vit_small_parameter_count() -> None:
    # ViT-S/16 video: 21.9M backbone parameters + 384*3 + 3 head
    model = create_model("vit_small", num_classes=3, num_frames=16, img_size=224)
    n = sum(p.numel() for p in model.parameters())
    conv = 384 * 3 * 2 * 16 * 16 + 384
    block = (384 * 384 * 3 + 2 * 384) + (384 * 384 + 384) + (384 * 1536 + 1536) + (1536 * 384 + 384) + 4 * 384
    assert n == conv + 12 * block + 2 * 384 + 384 * 3 + 3


def test_create_model_unknown_arch() -> None:
    with pytest.raises(ValueError, match="vit_tiny"):
        create_model("vit_huge", num_classes=3, num_frames=16, img_size=224)


def test_input_asserts() -> None:
    model = create_model("vit_tiny", num_classes=3, num_frames=4, img_size=32)
    with pytest.raises(AssertionError, match="tubelet"):
        model(_video(1, 3, 32))
    with pytest.raises(AssertionError, match="img_size"):
        model(_video(1, 4, 48))
    with pytest.raises(AssertionError, match="divisible"):
        create_model("vit_tiny", num_classes=3, num_frames=4, img_size=40)


# --------------------------------------------------------------------------- training behaviour


def test_every_parameter_gets_gradient() -> None:
    torch.manual_seed(0)
    model = create_model("vit_tiny", num_classes=3, num_frames=4, img_size=32, init_values=0.1)
    model.train()
    out = model(_video(2, 4, 32))
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 2])).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert no_grad == []
    assert {"blocks.0.gamma_1", "blocks.0.gamma_2"} <= dict(model.named_parameters()).keys()


def test_grad_checkpointing_matches() -> None:
    torch.manual_seed(0)
    a = create_model("vit_tiny", num_classes=3, num_frames=4, img_size=32)
    b = create_model("vit_tiny", num_classes=3, num_frames=4, img_size=32, grad_checkpointing=True)
    b.load_state_dict(a.state_dict())
    x = _video(2, 4, 32)
    a.train()
    b.train()
    ya, yb = a(x), b(x)
    torch.testing.assert_close(ya, yb)
    ya.sum().backward()
    yb.sum().backward()
    torch.testing.assert_close(a.blocks[0].attn.qkv.weight.grad, b.blocks[0].attn.qkv.weight.grad)


def test_head_init_scale_and_reset() -> None:
    torch.manual_seed(0)
    model = create_model("vit_tiny", num_classes=3, num_frames=4, img_size=32)
    assert model.head.weight.abs().max() <= 0.002 * 1.001  # trunc_normal(std .02, |x| <= 2) * 0.001
    assert model.head.weight.abs().max() > 0
    assert torch.count_nonzero(model.head.bias) == 0
    model.reset_classifier(7)
    assert model(_video(1, 4, 32)).shape == (1, 7)
    assert model.num_classes == 7
    model.reset_classifier(0)
    assert model(_video(1, 4, 32)).shape == (1, 192)


def test_misc_api() -> None:
    model = create_model("vit_tiny", num_classes=3, num_frames=4, img_size=32)
    assert model.get_num_layers() == 4
    assert "pos_embed" in model.no_weight_decay()
    assert model.forward_features(_video(2, 4, 32)).shape == (2, 192)


# --------------------------------------------------------------------------- position embedding


def _official_3d_sincos(embed_dim: int, grid: int, t_size: int) -> np.ndarray:
    """Per-token transcription of the official MVD formula (w coordinate first in the spatial part)."""

    def enc(dim: int, pos: float) -> list[float]:
        freqs = [1.0 / 10000 ** (i / (dim / 2)) for i in range(dim // 2)]
        return [math.sin(pos * f) for f in freqs] + [math.cos(pos * f) for f in freqs]

    d_t = embed_dim // 4
    d_s = embed_dim // 4 * 3
    rows = []
    for t in range(t_size):
        for h in range(grid):
            for w in range(grid):
                rows.append(enc(d_t, t) + enc(d_s // 2, w) + enc(d_s // 2, h))
    return np.asarray(rows, dtype=np.float64)


def test_pos_embed_matches_official_formula() -> None:
    got = get_3d_sincos_pos_embed(32, (3, 3), 2).numpy()
    np.testing.assert_allclose(got, _official_3d_sincos(32, 3, 2), rtol=0, atol=1e-6)


def test_pos_embed_not_persistent_and_regenerated() -> None:
    torch.manual_seed(0)
    a = create_model("vit_tiny", num_classes=3, num_frames=8, img_size=32)
    assert "pos_embed" not in a.state_dict()
    assert a.pos_embed.shape == (1, 4 * 2 * 2, 192)
    b = create_model("vit_tiny", num_classes=3, num_frames=16, img_size=64)
    assert b.pos_embed.shape == (1, 8 * 4 * 4, 192)
    b.load_state_dict(a.state_dict(), strict=True)
    torch.testing.assert_close(b.pos_embed[0], get_3d_sincos_pos_embed(192, (4, 4), 8))
    # a different frame count at forward time uses the table for that count
    c = create_model("vit_tiny", num_classes=3, num_frames=16, img_size=32).eval()
    c.load_state_dict(a.state_dict(), strict=True)
    a.eval()
    x = _video(1, 16, 32)
    with torch.no_grad():
        torch.testing.assert_close(a(x), c(x), rtol=0, atol=0)


# --------------------------------------------------------------------------- attention


def test_attention_matches_manual_softmax() -> None:
    torch.manual_seed(0)
    dim, heads, n = 32, 4, 5
    attn = Attention(dim, num_heads=heads, qkv_bias=True).eval()
    with torch.no_grad():
        attn.q_bias.normal_()
        attn.v_bias.normal_()
    x = torch.randn(2, n, dim)
    w = attn.qkv.weight
    q = x @ w[:dim].T + attn.q_bias
    k = x @ w[dim : 2 * dim].T  # no key bias
    v = x @ w[2 * dim :].T + attn.v_bias
    d = dim // heads
    out = torch.empty(2, n, dim)
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        weights = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(d), dim=-1)
        out[..., sl] = weights @ v[..., sl]
    expected = out @ attn.proj.weight.T + attn.proj.bias
    with torch.no_grad():
        torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- official checkpoints


def official_finetune_shapes(dim: int, depth: int, num_classes: int, frames_tubelet: int = 2) -> dict[str, tuple]:
    """Key names and shapes of an official MVD / VideoMAE fine-tuned ViT (mean pooling, qkv bias)."""
    shapes: dict[str, tuple] = {
        "patch_embed.proj.weight": (dim, 3, frames_tubelet, 16, 16),
        "patch_embed.proj.bias": (dim,),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        shapes.update(
            {
                b + "norm1.weight": (dim,),
                b + "norm1.bias": (dim,),
                b + "attn.q_bias": (dim,),
                b + "attn.v_bias": (dim,),
                b + "attn.qkv.weight": (3 * dim, dim),
                b + "attn.proj.weight": (dim, dim),
                b + "attn.proj.bias": (dim,),
                b + "norm2.weight": (dim,),
                b + "norm2.bias": (dim,),
                b + "mlp.fc1.weight": (4 * dim, dim),
                b + "mlp.fc1.bias": (4 * dim,),
                b + "mlp.fc2.weight": (dim, 4 * dim),
                b + "mlp.fc2.bias": (dim,),
            }
        )
    shapes.update({"fc_norm.weight": (dim,), "fc_norm.bias": (dim,)})
    shapes.update({"head.weight": (num_classes, dim), "head.bias": (num_classes,)})
    return shapes


def random_state(shapes: dict[str, tuple], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) * 0.05 for k, s in shapes.items()}


def pretrained_student(source: dict[str, torch.Tensor], prefix: str, dim: int) -> dict[str, torch.Tensor]:
    """A pre-training checkpoint: encoder (with final norm), decoder, mask token, fixed pos embeds."""
    g = torch.Generator().manual_seed(99)
    enc = {prefix + k: v for k, v in source.items() if not k.startswith(("head.", "fc_norm."))}
    enc[prefix + "norm.weight"] = torch.randn(dim, generator=g)
    enc[prefix + "norm.bias"] = torch.randn(dim, generator=g)
    enc[prefix + "pos_embed"] = torch.randn(1, 8, dim, generator=g)
    extra = {
        "encoder_to_decoder.weight": torch.randn(96, dim, generator=g),
        "mask_token": torch.randn(1, 1, 96, generator=g),
        "decoder.blocks.0.attn.qkv.weight": torch.randn(288, 96, generator=g),
        "decoder.norm.weight": torch.randn(96, generator=g),
        "decoder.head.weight": torch.randn(1536, 96, generator=g),
        "decoder.pos_embed": torch.randn(1, 8, 96, generator=g),
        # MVD student layout: two feature decoders with their own mask tokens and pos embeds
        "mask_token_img": torch.randn(1, 1, 96, generator=g),
        "down_img.weight": torch.randn(96, dim, generator=g),
        "decoder_img.blocks.0.mlp.fc1.weight": torch.randn(384, 96, generator=g),
        "pos_embed_img": torch.randn(1, 8, 96, generator=g),
        "mask_token_vid": torch.randn(1, 1, 96, generator=g),
        "down_vid.bias": torch.randn(96, generator=g),
        "decoder_vid.head.bias": torch.randn(768, generator=g),
        "pos_embed_vid": torch.randn(1, 8, 96, generator=g),
    }
    return {**enc, **extra}


@pytest.fixture(scope="module")
def tiny_source() -> tuple[dict[str, torch.Tensor], VisionTransformer]:
    """Official-layout weights and a reference model loaded from them with plain strict loading."""
    state = random_state(official_finetune_shapes(192, 4, 3), seed=1)
    ref = VisionTransformer(num_classes=3, num_frames=4, img_size=32, **TINY).eval()
    ref.load_state_dict(state, strict=True)
    return state, ref


def _tiny(num_classes: int = 3) -> VisionTransformer:
    return create_model("vit_tiny", num_classes=num_classes, num_frames=4, img_size=32).eval()


def test_param_names_match_official(tiny_source) -> None:
    state, _ = tiny_source
    model = _tiny()
    assert set(model.state_dict()) == set(state)
    names = set(model.state_dict())
    for key in ("blocks.0.attn.q_bias", "blocks.0.attn.v_bias", "blocks.0.attn.qkv.weight", "fc_norm.weight",
                "head.weight", "patch_embed.proj.weight"):
        assert key in names
    assert "blocks.0.attn.qkv.bias" not in names
    assert "pos_embed" not in names and "cls_token" not in names and "norm.weight" not in names


@pytest.mark.parametrize("layout", ["model", "module", "flat"])
def test_load_finetuned_layouts(tiny_source, layout: str) -> None:
    state, ref = tiny_source
    ckpt = {"flat": state, "model": {"model": state, "epoch": 39}, "module": {"module": state}}[layout]
    model = _tiny()
    info = load_checkpoint(model, ckpt)
    assert info["head_loaded"] and not info["head_dropped"] and info["layout"] == "finetuned"
    assert info["loaded"] == len(state)
    x = _video(2, 4, 32, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=0, atol=0)


@pytest.mark.parametrize("prefix", ["encoder.", "backbone.", ""])
def test_load_pretrained_student(tiny_source, prefix: str) -> None:
    state, ref = tiny_source
    ckpt = {"model": pretrained_student(state, prefix, 192)}
    model = _tiny()
    head_before = model.head.weight.detach().clone()
    info = load_checkpoint(model, ckpt)
    assert info["layout"] == "pretrained"
    assert not info["head_loaded"] and info["fc_norm_initialised"]
    torch.testing.assert_close(model.head.weight, head_before, rtol=0, atol=0)
    torch.testing.assert_close(model.fc_norm.weight, torch.ones(192), rtol=0, atol=0)
    torch.testing.assert_close(model.fc_norm.bias, torch.zeros(192), rtol=0, atol=0)
    # encoder weights identical: compare with the reference encoder under an identity fc_norm
    expected_ref = VisionTransformer(num_classes=3, num_frames=4, img_size=32, **TINY).eval()
    expected_ref.load_state_dict(
        {**state, "fc_norm.weight": torch.ones(192), "fc_norm.bias": torch.zeros(192)}, strict=True
    )
    x = _video(2, 4, 32, seed=4)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), expected_ref.forward_features(x), rtol=0, atol=0)
        assert not torch.equal(model.forward_features(x), ref.forward_features(x))  # fc_norm was not loaded


def test_head_class_mismatch_dropped(tiny_source, caplog) -> None:
    state, ref = tiny_source
    big = dict(state)
    big["head.weight"] = torch.randn(400, 192)
    big["head.bias"] = torch.randn(400)
    model = _tiny()
    head_before = model.head.weight.detach().clone()
    with caplog.at_level("INFO", logger="mvd.model"):
        info = load_checkpoint(model, {"model": big})
    assert info["head_dropped"] and not info["head_loaded"]
    assert "head" in caplog.text
    torch.testing.assert_close(model.head.weight, head_before, rtol=0, atol=0)
    x = _video(2, 4, 32, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), ref.forward_features(x), rtol=0, atol=0)
    filtered = checkpoint_filter_fn({"model": big}, model)
    assert "head.weight" not in filtered and "blocks.3.mlp.fc2.bias" in filtered


def test_missing_and_unexpected_keys_raise(tiny_source) -> None:
    state, _ = tiny_source
    missing = {k: v for k, v in state.items() if k != "blocks.2.mlp.fc1.weight"}
    with pytest.raises(ValueError, match=r"missing keys \['blocks.2.mlp.fc1.weight'\]"):
        load_checkpoint(_tiny(), missing)
    with pytest.raises(ValueError, match="unexpected keys.*blocks.0.attn.qkv.bias"):
        load_checkpoint(_tiny(), {**state, "blocks.0.attn.qkv.bias": torch.zeros(576)})
    with pytest.raises(ValueError, match="cls_token"):
        load_checkpoint(_tiny(), {"model": {**state, "cls_token": torch.zeros(1, 1, 192)}})
    with pytest.raises(ValueError, match="unexpected keys.*blocks.4"):  # a deeper checkpoint
        deeper = random_state(official_finetune_shapes(192, 5, 3), seed=2)
        load_checkpoint(_tiny(), deeper)
    with pytest.raises(ValueError, match="shape mismatches.*patch_embed.proj.weight"):
        load_checkpoint(_tiny(), {**state, "patch_embed.proj.weight": torch.zeros(192, 3, 1, 16, 16)})
    with pytest.raises(ValueError, match="not tensors"):
        load_checkpoint(_tiny(), {"epoch": 3, "weights": state})


def test_filter_is_pure(tiny_source) -> None:
    state, _ = tiny_source
    ckpt = {"model": pretrained_student(state, "encoder.", 192)}
    keys_before = set(ckpt["model"])
    model = _tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = checkpoint_filter_fn(ckpt, model)
    assert set(ckpt["model"]) == keys_before
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert set(out) == set(model.state_dict()) - {"head.weight", "head.bias"}


def test_layer_scale_checkpoint(tiny_source) -> None:
    state, _ = tiny_source
    g = torch.Generator().manual_seed(7)
    scaled = dict(state)
    for i in range(4):
        scaled[f"blocks.{i}.gamma_1"] = torch.rand(192, generator=g)
        scaled[f"blocks.{i}.gamma_2"] = torch.rand(192, generator=g)
    with pytest.raises(ValueError, match="gamma_1"):
        load_checkpoint(_tiny(), scaled)
    model = create_model("vit_tiny", num_classes=3, num_frames=4, img_size=32, init_values=0.1)
    load_checkpoint(model, scaled)
    torch.testing.assert_close(model.blocks[2].gamma_2, scaled["blocks.2.gamma_2"], rtol=0, atol=0)
    assert isinstance(model.blocks[0].drop_path, nn.Identity)


def test_subtract_temporal_mean_ignores_static_appearance():
    from mvd.model import create_model

    torch.manual_seed(0)
    m = create_model("vit_tiny", num_classes=3, num_frames=4, img_size=32, subtract_temporal_mean=True).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    static = torch.randn(2, 3, 1, 32, 32)  # the same image added to every frame
    with torch.no_grad():
        torch.testing.assert_close(m(x), m(x + static), rtol=1e-4, atol=1e-5)
    plain = create_model("vit_tiny", num_classes=3, num_frames=4, img_size=32).eval()
    plain.load_state_dict(m.state_dict())  # no extra parameters: the same state dict loads both ways
    with torch.no_grad():
        assert not torch.allclose(plain(x), plain(x + static))


def test_normalize_contrast_sees_a_faint_and_a_contrasty_clip_alike():
    from mvd.model import CONTRAST_FLOOR, create_model

    torch.manual_seed(0)
    m = create_model("vit_tiny", num_classes=3, num_frames=4, img_size=32, subtract_temporal_mean=True,
                     normalize_contrast=True).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        # the same scene at a third of the contrast on another grey level: the same features
        f = m.forward_features  # the head starts near zero: compare what it reads
        torch.testing.assert_close(f(x), f(x / 3 + 0.7), rtol=1e-4, atol=1e-5)
        # each clip by its own contrast, not the batch's
        both = f(torch.stack([x[0], x[1] * 4]))
        torch.testing.assert_close(both, f(x), rtol=1e-4, atol=1e-5)
        # a featureless crop is not blown up: below the floor the scale is kept
        flat = torch.randn(1, 3, 4, 32, 32) * CONTRAST_FLOOR / 2
        assert not torch.allclose(f(flat), f(flat / flat.std()), rtol=1e-3, atol=1e-4)
    plain = create_model("vit_tiny", num_classes=3, num_frames=4, img_size=32, subtract_temporal_mean=True).eval()
    plain.load_state_dict(m.state_dict())  # no extra parameters
    with torch.no_grad():
        assert not torch.allclose(plain.forward_features(x), plain.forward_features(x / 3 + 0.7), rtol=1e-3, atol=1e-4)
