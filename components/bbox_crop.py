"""bbox-crop: per-frame mouse boxes for every video, training clips cut, cropped and packed
into shards; test videos keep their per-frame boxes for the benchmark."""


import logging
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mvd.clips import Clip, clip_windows, idle_clips, positive_clips
from mvd.config import Config, window_span
from mvd.detect import make_detector
from mvd.extract import stream_windows
from mvd.shards import ShardWriter
from mvd.video import VideoReadError

from .manifest import Manifest, VideoRecord, read_manifest, write_json

logger = logging.getLogger(__name__)


def video_boxes(rec: VideoRecord, manifest_dir: Path, detector) -> tuple[np.ndarray, str]:
    """Boxes from annotation objects when present, else from the detector."""
    if rec.boxes:
        boxes = np.load(manifest_dir / rec.boxes)
        if np.isfinite(boxes[:, 0]).any():
            return boxes, "annotation"
    return detector.detect_video(manifest_dir / rec.file), "detector"


def plan_clips(manifest: Manifest, cfg: Config) -> dict[str, list[Clip]]:
    """Positive and idle clips per training video, by the reference rules (DESIGN.md)."""
    d = cfg.data
    span = window_span(cfg)
    plans: dict[str, list[Clip]] = {}
    pos_frames: dict[str, int] = {}
    for rec in manifest.split("train"):
        min_len = max(span, int(round(d.min_clip_s * rec.fps)))
        max_len = max(min_len, int(round(d.max_clip_s * rec.fps)))
        clips = positive_clips(rec.ranges_by_label(manifest.labels), rec.num_frames, min_len=min_len, max_len=max_len)
        plans[rec.id] = clips
        pos_frames[rec.id] = sum(c.end - c.start + 1 for c in clips)
    if not plans:
        return plans
    target = int(round(d.idle_ratio * float(np.mean(list(pos_frames.values())))))
    for rec in manifest.split("train"):
        idle_min = max(span, int(round(d.idle_min_s * rec.fps)))
        idle_max = max(idle_min, int(round(d.idle_max_s * rec.fps)))
        ranges = [(iv.start, iv.end) for iv in rec.intervals]
        rng = np.random.default_rng([d.split_seed, zlib.crc32(rec.id.encode())])
        plans[rec.id] += idle_clips(ranges, rec.num_frames, target_frames=target, min_len=idle_min,
                                    max_len=idle_max, rng=rng, label=0)
    return plans


def run_bbox_crop(manifest_dir: str | Path, cfg: Config, out_dir: str | Path) -> dict[str, Any]:
    """Writes ``clips/`` (shards + index), ``boxes/<video>.npy`` and ``boxes.json`` under ``out_dir``."""
    mdir, out = Path(manifest_dir), Path(out_dir)
    manifest = read_manifest(mdir)
    detector = make_detector(cfg.data.detector)
    plans = plan_clips(manifest, cfg)
    writer = ShardWriter(out / "clips", cfg.model.input_size)
    boxes_index: dict[str, dict[str, Any]] = {}
    failures: list[dict[str, str]] = []
    counts = np.zeros(len(manifest.labels), dtype=int)
    for rec in tqdm(manifest.videos, desc="bbox-crop", unit="video"):
        try:
            boxes, origin = video_boxes(rec, mdir, detector)
            rel = f"boxes/{Path(rec.file).name}.npy"
            (out / "boxes").mkdir(parents=True, exist_ok=True)
            tmp = out / (rel + ".tmp.npy")
            np.save(tmp, boxes.astype(np.float32))
            tmp.replace(out / rel)
            boxes_index[rec.id] = {"file": rel, "origin": origin, "detected": float(np.isfinite(boxes[:, 0]).mean())}
            clips = plans.get(rec.id, [])
            windows = [(c, w) for c in clips for w in clip_windows(c, cfg.model.num_frames, cfg.model.sampling_rate,
                                                                   rec.num_frames)]
            for k, frames, crop in stream_windows(str(mdir / rec.file), [w.indices for _, w in windows], boxes,
                                                  width=rec.width, height=rec.height, size=cfg.model.input_size,
                                                  pad=cfg.data.pad_train):
                clip, w = windows[k]
                writer.add(frames, video=rec.id, label=clip.label, clip=f"{rec.id}#{clip.start}-{clip.end}",
                           start=w.start, end=w.end, indices=w.indices.tolist(), event_start=clip.event_start,
                           event_end=clip.event_end, fps=rec.fps, crop=list(map(int, crop)))
                counts[clip.label] += 1
        except (VideoReadError, ValueError) as e:
            logger.error("bbox-crop: %s failed: %s", rec.id, e)
            failures.append({"video": rec.id, "reason": str(e)})
    if not writer.clips:
        raise RuntimeError(f"bbox-crop produced no training window; failures: {failures}")
    writer.close({"labels": manifest.labels, "data_version": manifest.data_version})
    summary = {"windows_per_class": {manifest.labels[i]: int(c) for i, c in enumerate(counts)},
               "videos": len(manifest.videos), "failures": failures, "boxes": boxes_index,
               "labels": manifest.labels, "data_version": manifest.data_version}
    write_json(out / "boxes.json", summary)
    logger.info("bbox-crop: training windows per class %s; %d failures", summary["windows_per_class"], len(failures))
    return summary


# ----------------------------------------------------------------------------- KFP component
from kfp import dsl  # noqa: E402
from kfp.dsl import Dataset, Input, Output  # noqa: E402

from .common import kfp_compile_time  # noqa: E402
from .images import CPU_IMAGE  # noqa: E402


if kfp_compile_time():
    @dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
    def bbox_crop_op(config_json: str, manifest: Input[Dataset], crops: Output[Dataset]):
        """Mouse boxes per frame, training clips cropped and packed into shards, test-video boxes."""
        from components.bbox_crop import run_bbox_crop
        from components.common import setup

        cfg = setup(config_json)
        s = run_bbox_crop(manifest.path, cfg, crops.path)
        crops.metadata.update({"windows_per_class": s["windows_per_class"], "failures": len(s["failures"])})
