"""Model weights on disk: safetensors + a JSON model card, and foreign checkpoints.

A model directory holds
    model.safetensors   the state dict (the position embedding is not stored: it is fixed)
    model_card.json     arch, label map, input spec, model kwargs, training config, data version

Foreign `.pth` checkpoints are read with `torch.load(weights_only=True)`: tensors and plain
containers only (plus `argparse.Namespace`, which official training scripts store as 'args').
Anything that needs arbitrary unpickling is refused.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import pickle
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from mvd.atomic import DiskFullError, is_disk_full
from mvd.model import (
    VARIANTS,
    VisionTransformer,
    create_model,
    load_checkpoint,
    unwrap_checkpoint,
)
from mvd.transforms import MEAN, STD

__all__ = [
    "CARD_FILE",
    "CARD_SCHEMA",
    "WEIGHTS_FILE",
    "UnsafeCheckpointError",
    "import_checkpoint",
    "load_model",
    "load_pretrained",
    "read_card",
    "read_state_dict",
    "save_model",
    "validate_card",
]

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model_card.json"
CARD_SCHEMA = 1

_REQUIRED_CARD_KEYS = ("arch", "num_classes", "labels", "input", "model_kwargs", "train_config", "data_version")
_REQUIRED_INPUT_KEYS = ("num_frames", "sampling_rate", "img_size", "tubelet_size", "mean", "std")
_TORCH_SUFFIXES = (".pth", ".pt", ".bin")


class UnsafeCheckpointError(ValueError):
    """A checkpoint that can only be read by unpickling arbitrary objects."""


def validate_card(card: Mapping[str, Any], source: str = "model card") -> None:
    """Raise ValueError naming `source` and the first problem found in a model card."""
    missing = [k for k in _REQUIRED_CARD_KEYS if k not in card]
    if missing:
        raise ValueError(f"{source}: missing required keys {missing} (required: {list(_REQUIRED_CARD_KEYS)})")
    if card["arch"] not in VARIANTS:
        raise ValueError(f"{source}: unknown arch {card['arch']!r}; valid names: {sorted(VARIANTS)}")
    num_classes = card["num_classes"]
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
        raise ValueError(f"{source}: num_classes must be a non-negative int, got {num_classes!r}")
    labels = card["labels"]
    if labels is not None:
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ValueError(f"{source}: labels must be a list of class names or null, got {labels!r}")
        if len(labels) != num_classes:
            raise ValueError(f"{source}: {len(labels)} labels {labels} but num_classes is {num_classes}")
    spec = card["input"]
    if not isinstance(spec, Mapping):
        raise ValueError(f"{source}: 'input' must be a mapping with keys {list(_REQUIRED_INPUT_KEYS)}")
    missing = [k for k in _REQUIRED_INPUT_KEYS if k not in spec]
    if missing:
        raise ValueError(f"{source}: 'input' is missing keys {missing} (required: {list(_REQUIRED_INPUT_KEYS)})")
    for key in ("mean", "std"):
        if not isinstance(spec[key], Sequence) or len(spec[key]) != 3:
            raise ValueError(f"{source}: input.{key} must be 3 numbers, got {spec[key]!r}")
    for key in ("model_kwargs", "train_config"):
        if not isinstance(card[key], Mapping):
            raise ValueError(f"{source}: {key!r} must be a mapping, got {type(card[key]).__name__}")
    if not isinstance(card["data_version"], str):
        raise ValueError(f"{source}: data_version must be a string, got {card['data_version']!r}")
    if card.get("inference") is not None:
        from .card import validate_inference

        validate_inference(card["inference"], list(labels or []), source)


def save_model(model: VisionTransformer, out_dir: str | os.PathLike[str], card: Mapping[str, Any]) -> Path:
    """Write `model.safetensors` and `model_card.json` into `out_dir`; return `out_dir`."""
    card = {**card, "schema": CARD_SCHEMA, "format": "safetensors"}
    validate_card(card)
    if card["num_classes"] != model.num_classes:
        raise ValueError(f"model card says num_classes={card['num_classes']} but the model has {model.num_classes}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    text = json.dumps(card, indent=2, sort_keys=True) + "\n"
    # both files go to temporary names first and are renamed only when both are complete
    tmp_weights, tmp_card = out / f".{WEIGHTS_FILE}.{os.getpid()}.tmp", out / f".{CARD_FILE}.{os.getpid()}.tmp"
    try:
        save_file(tensors, str(tmp_weights), metadata={"format": "pt"})
        tmp_card.write_text(text, encoding="utf-8")
        os.replace(tmp_weights, out / WEIGHTS_FILE)
        os.replace(tmp_card, out / CARD_FILE)
    except OSError as e:
        if is_disk_full(e):
            raise DiskFullError(out / WEIGHTS_FILE, sum(t.numel() * t.element_size() for t in tensors.values())) from e
        raise
    finally:
        for tmp in (tmp_weights, tmp_card):
            if tmp.exists():
                tmp.unlink()
    logger.info("saved %s (%s, %d tensors) to %s", card["arch"], WEIGHTS_FILE, len(tensors), out)
    return out


def read_card(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate `model_card.json` from a model directory."""
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model card not found; a model directory needs {CARD_FILE} and {WEIGHTS_FILE}")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(card, dict):
        raise ValueError(f"{path}: expected a JSON object")
    if card.get("schema") != CARD_SCHEMA:
        raise ValueError(f"{path}: unsupported model card schema {card.get('schema')!r} (expected {CARD_SCHEMA})")
    validate_card(card, source=str(path))
    return card


def _build_from_card(card: Mapping[str, Any]) -> VisionTransformer:
    kwargs = dict(card["model_kwargs"])
    tubelet = card["input"]["tubelet_size"]
    if kwargs.setdefault("tubelet_size", tubelet) != tubelet:
        raise ValueError(f"model card: model_kwargs.tubelet_size {kwargs['tubelet_size']} != input.tubelet_size {tubelet}")
    return create_model(
        card["arch"],
        num_classes=card["num_classes"],
        num_frames=card["input"]["num_frames"],
        img_size=card["input"]["img_size"],
        **kwargs,
    )


def load_model(
    model_dir: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> tuple[VisionTransformer, dict[str, Any]]:
    """Build the model described by a model directory's card and load its weights strictly (eval mode)."""
    card = read_card(model_dir)
    path = Path(model_dir) / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found next to {CARD_FILE}")
    model = _build_from_card(card)
    state = _read_safetensors(path)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{path}: weights do not match the model card ({card['arch']}): "
            f"missing keys {sorted(result.missing_keys)}, unexpected keys {sorted(result.unexpected_keys)}"
        )
    return model.to(map_location).eval(), card


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except SafetensorError as e:
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from e


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read weights from a `.safetensors` / `.pth` / `.pt` / `.bin` file or a model directory.

    Torch files are loaded with `weights_only=True`; a checkpoint container ('model' /
    'module') is unwrapped, so the result is a flat name -> tensor mapping.
    """
    p = Path(path)
    if p.is_dir():
        p = p / WEIGHTS_FILE
    if not p.is_file():
        raise FileNotFoundError(f"{p}: checkpoint not found")
    if p.suffix == ".safetensors":
        return _read_safetensors(p)
    if p.suffix not in _TORCH_SUFFIXES:
        raise ValueError(f"{p}: unsupported checkpoint type; expected .safetensors or one of {list(_TORCH_SUFFIXES)}")
    if not _looks_like_torch_file(p):
        raise ValueError(f"{p}: not a PyTorch checkpoint at all: it is neither the zip archive torch.save writes nor "
                         "a legacy pickle (truncated download, wrong file, or another format?). Point at the .pth "
                         "file of an MVD / VideoMAE checkpoint or a .safetensors file")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f"{p}: refused for safety - loading it needs arbitrary unpickling (it stores Python objects, "
            f"not only tensors). If you trust its source, re-save only its tensors, e.g. "
            f"`torch.save(torch.load(src, weights_only=False)['model'], 'plain.pth')` or "
            f"`safetensors.torch.save_file(state_dict, 'model.safetensors')`, and load that file. "
            f"Details: {str(e).splitlines()[-1] if str(e) else type(e).__name__}"
        ) from e
    except (RuntimeError, EOFError) as e:
        raise ValueError(f"{p}: not a readable torch checkpoint ({e})") from e
    try:
        return unwrap_checkpoint(obj)
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from e


def _looks_like_torch_file(p: Path) -> bool:
    """torch.save writes a zip archive; older PyTorch wrote a pickle (protocol 2+ starts with 0x80)."""
    if zipfile.is_zipfile(p):
        return True
    with p.open("rb") as f:
        return f.read(1) == b"\x80"


def load_pretrained(model: VisionTransformer, src: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a file (.pth / .safetensors) or model directory into `model` with `load_checkpoint`.

    Returns its summary (layout, loaded, ignored, head_loaded, head_dropped,
    fc_norm_initialised) plus 'source'.
    """
    state = read_state_dict(src)
    try:
        info = load_checkpoint(model, state)
    except ValueError as e:
        raise ValueError(f"{src}: {e}") from e
    logger.info("loaded %d tensors from %s (head loaded: %s)", info["loaded"], src, info["head_loaded"])
    return {**info, "source": str(src)}


def _structure_overrides(state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Constructor settings implied by a checkpoint's keys (layer scale, q/v biases)."""
    names = {k.split(".", 1)[1] if k.startswith(("encoder.", "backbone.")) else k for k in state}
    overrides: dict[str, Any] = {}
    if "blocks.0.gamma_1" in names:
        overrides["init_values"] = 0.1  # any value > 0 creates gamma_1/gamma_2; they are loaded
    if "blocks.0.attn.qkv.weight" in names and "blocks.0.attn.q_bias" not in names:
        overrides["qkv_bias"] = False
    return overrides


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def import_checkpoint(
    src: str | os.PathLike[str],
    arch: str,
    out_dir: str | os.PathLike[str],
    *,
    num_classes: int | None = None,
    labels: Sequence[str] | None = None,
    num_frames: int = 16,
    img_size: int = 224,
    sampling_rate: int = 2,
) -> Path:
    """Convert an official MVD / VideoMAE checkpoint (fine-tuned or pre-trained) into a model directory.

    num_classes defaults to the checkpoint head's row count, else len(labels). A
    checkpoint without a head (or with one of another size) gets a fresh head.
    labels=None records null: a pre-trained backbone without a label map.
    """
    src_path = Path(src)
    state = read_state_dict(src_path)
    head = state.get("head.weight", state.get("backbone.head.weight"))
    ckpt_classes = int(head.shape[0]) if head is not None else None
    labels_list = list(labels) if labels is not None else None
    if num_classes is None:
        if ckpt_classes is not None:
            num_classes = ckpt_classes
        elif labels_list is not None:
            num_classes = len(labels_list)
        else:
            raise ValueError(f"{src_path}: checkpoint has no classification head; pass num_classes or labels")
    if labels_list is not None and len(labels_list) != num_classes:
        raise ValueError(f"{len(labels_list)} labels {labels_list} given but num_classes is {num_classes}")

    model_kwargs = _structure_overrides(state)
    model = create_model(arch, num_classes=num_classes, num_frames=num_frames, img_size=img_size, **model_kwargs)
    try:
        info = load_checkpoint(model, state)
    except ValueError as e:
        raise ValueError(f"{src_path}: cannot import as {arch}: {e}") from e

    card = {
        "arch": arch,
        "num_classes": num_classes,
        "labels": labels_list,
        "input": {
            "num_frames": num_frames,
            "sampling_rate": sampling_rate,
            "img_size": img_size,
            "tubelet_size": model.tubelet_size,
            "mean": list(MEAN),
            "std": list(STD),
        },
        "model_kwargs": model_kwargs,
        "train_config": {},
        "data_version": "",
        "source": {
            "checkpoint": src_path.name,
            "sha256": _sha256(src_path / WEIGHTS_FILE if src_path.is_dir() else src_path),
            "layout": info["layout"],
            "head_loaded": info["head_loaded"],
        },
    }
    return save_model(model, out_dir, card)
