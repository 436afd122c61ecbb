"""The model card's ``inference`` section: how the model labels a video, written when the model is
made and read by the benchmark and by ``mar predict`` alike, so both run one computation.

::

    "inference": {
      "window": {"num_frames": 16, "sampling_rate": 2, "stride": 16}, "target_fps": 30.0, "head": "dense",
      "tta_views": 1, "stitch_sigma": 0.125, "crop_pad": 0.05, "crop_mode": "union", "detector": "background", "batch_size": 16,
      "postprocess": {"decision": "threshold", "idle": "idle",
                      "classes": {"Head/Body TWITCH": {"threshold": 0.4, "smooth_s": 0.1,
                                                       "min_duration_s": 0.07, "merge_gap_s": 0.0,
                                                       "peak_threshold": 0.6, "source": "fitted"}, ...}},
      "calibration": {"status": "fitted", "videos": [...], "per_class": {...}, "metrics": {...}}
    }

A card without the section (models made before it existed) still works: :func:`inference_spec`
falls back to the old defaults (half-span stride, argmax labels) and logs a warning naming the
model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import CROP_MODES, TTA_VIEWS, Config, pinned_rules, valid_stitch_sigma, window_span
from .labels import action_indices, idle_index
from .postprocess import ClassRule, PostProcess

__all__ = ["InferenceSpec", "inference_spec", "spec_from_config", "validate_inference"]

logger = logging.getLogger(__name__)


@dataclass
class InferenceSpec:
    num_frames: int
    sampling_rate: int
    stride: int
    img_size: int
    crop_pad: float
    detector: str
    batch_size: int
    postprocess: PostProcess
    calibration: dict[str, Any] = field(default_factory=dict)
    legacy: bool = False
    head: str = "clip"  # the head whose output is post-processed: clip (window-wide) or dense (per frame)
    target_fps: float = 0.0  # the model's frame rate; every video is resampled to it (0 = none)
    tta_views: int = 1  # each window's softmax averaged over this many flips/transposes of its crop
    crop_mode: str = "union"  # mvd.crop.CROP_MODES: one crop per window, or one per frame following the animal
    stitch_sigma: float = 0.0  # windows weighed by a Gaussian of a frame's distance from their centre (0 = alike)

    def to_dict(self) -> dict[str, Any]:
        return {"window": {"num_frames": self.num_frames, "sampling_rate": self.sampling_rate, "stride": self.stride},
                "target_fps": self.target_fps, "head": self.head, "tta_views": self.tta_views,
                "stitch_sigma": self.stitch_sigma, "crop_pad": self.crop_pad, "crop_mode": self.crop_mode, "detector": self.detector, "batch_size": self.batch_size,
                "postprocess": self.postprocess.to_dict(), "calibration": self.calibration}


def validate_inference(section: Any, labels: list[str], source: str = "model card") -> None:
    """Raise ValueError naming ``source`` and the field at the first problem of an inference section."""
    where = f"{source}: inference"
    if not isinstance(section, Mapping):
        raise ValueError(f"{where} must be a mapping, got {type(section).__name__}")
    for key in ("window", "crop_pad", "postprocess"):
        if key not in section:
            raise ValueError(f"{where} lacks {key!r}")
    w = section["window"]
    for key in ("num_frames", "sampling_rate", "stride"):
        v = w.get(key) if isinstance(w, Mapping) else None
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{where}.window.{key} must be an integer ≥ 1, got {v!r}")
    if section.get("head", "clip") not in ("clip", "dense"):
        raise ValueError(f"{where}.head must be 'clip' or 'dense', got {section.get('head')!r}")
    fps = section.get("target_fps", 0.0)
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or fps < 0:
        raise ValueError(f"{where}.target_fps must be a frame rate ≥ 0, got {fps!r}")
    views = section.get("tta_views", 1)
    if views not in TTA_VIEWS or isinstance(views, bool):
        raise ValueError(f"{where}.tta_views must be one of {TTA_VIEWS}, got {views!r}")
    sigma = section.get("stitch_sigma", 0.0)
    if not valid_stitch_sigma(sigma):
        raise ValueError(f"{where}.stitch_sigma must be 0 or in [0.05, 10], got {sigma!r}")
    pad = section["crop_pad"]
    if not isinstance(pad, (int, float)) or not 0 <= pad < 1:
        raise ValueError(f"{where}.crop_pad must be in [0, 1), got {pad!r}")
    if section.get("crop_mode", "union") not in CROP_MODES:
        raise ValueError(f"{where}.crop_mode must be one of {CROP_MODES}, got {section.get('crop_mode')!r}")
    PostProcess.from_dict(section["postprocess"], labels, where=f"{where}.postprocess")


def inference_spec(card: Mapping[str, Any], model: str = "model") -> InferenceSpec:
    """The card's inference contract; the old defaults (with a warning naming ``model``) when absent."""
    inp = card["input"]
    labels = list(card["labels"])
    sec = card.get("inference")
    if sec is None:
        span = inp["num_frames"] * inp["sampling_rate"]
        logger.warning("%s: the model card has no 'inference' section (made before post-processing was fitted); "
                       "using the old defaults: stride %d, argmax labels, no minimum bout duration", model,
                       max(1, span // 2))
        post = PostProcess.from_dict({"decision": "argmax", "idle": labels[idle_index(labels)],
                                      "classes": {labels[k]: {"threshold": 0.0} for k in action_indices(labels)}},
                                     labels)
        return InferenceSpec(inp["num_frames"], inp["sampling_rate"], max(1, span // 2), inp["img_size"],
                             float(inp.get("crop_pad", 0.05)), "background", 16, post, {}, legacy=True)
    validate_inference(sec, labels, model)
    w = sec["window"]
    if (w["num_frames"], w["sampling_rate"]) != (inp["num_frames"], inp["sampling_rate"]):
        raise ValueError(f"{model}: inference.window {w} does not match the model input "
                         f"({inp['num_frames']} frames, sampling rate {inp['sampling_rate']})")
    return InferenceSpec(w["num_frames"], w["sampling_rate"], w["stride"], inp["img_size"], float(sec["crop_pad"]),
                         str(sec.get("detector", "background")), int(sec.get("batch_size", 16)),
                         PostProcess.from_dict(sec["postprocess"], labels, where=f"{model}: inference.postprocess"),
                         dict(sec.get("calibration", {})), head=str(sec.get("head", "clip")),
                         target_fps=float(sec.get("target_fps", inp.get("target_fps", 0.0)) or 0.0),
                         tta_views=int(sec.get("tta_views", 1)), crop_mode=str(sec.get("crop_mode", "union")),
                         stitch_sigma=float(sec.get("stitch_sigma", 0.0)))


def spec_from_config(cfg: Config, labels: list[str], target_fps: float | None = None) -> InferenceSpec:
    """The contract a new model starts with: window, stride, crop pad, detector and batch size from
    the configuration; default post-processing rules, with the values the configuration pins."""
    rules, source = {}, {}
    for name, pin in pinned_rules(cfg).items():
        rules[name] = ClassRule(**pin)
        source[name] = "config"
    m = cfg.model
    return InferenceSpec(m.num_frames, m.sampling_rate, cfg.benchmark.stride or max(1, window_span(cfg) // 2),
                         m.input_size, cfg.data.pad_infer, cfg.data.detector, cfg.benchmark.batch_size,
                         PostProcess(list(labels), rules, idle_index(labels), "threshold", source),
                         {"status": "not run"}, head="dense" if m.dense_head else "clip",
                         target_fps=float(m.target_fps if target_fps is None else target_fps),
                         tta_views=cfg.benchmark.tta_views, crop_mode=cfg.data.crop_mode,
                         stitch_sigma=cfg.benchmark.stitch_sigma)
