"""The ViT sizes :func:`mvd.model.create_model` builds (patch 16, tubelet 2, qkv bias), by name; a plain
dict without torch, so ``model.arch`` is checked where the configuration loads."""

from __future__ import annotations

from typing import Any

__all__ = ["VARIANTS"]

VARIANTS: dict[str, dict[str, Any]] = {
    "vit_tiny": dict(embed_dim=192, depth=4, num_heads=3),  # small enough to train on a CPU
    "vit_small": dict(embed_dim=384, depth=12, num_heads=6),
    "vit_base": dict(embed_dim=768, depth=12, num_heads=12),
    "vit_large": dict(embed_dim=1024, depth=24, num_heads=16),
}
