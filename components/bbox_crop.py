"""bbox-crop: per-frame mouse boxes for every video, clips of the training and validation videos
cut, cropped and packed into shards (each clip says its split); every video keeps its per-frame
boxes (:mod:`mvd.crops_index`), so the windows of validation and test videos are cropped with the
boxes of exactly their frames.

Per-video results live in a content-addressed cache (:mod:`components.integrations.cache`, ``data.cache``:
a directory or ``s3://`` prefix; without one, a scratch cache inside the output is used and
removed): an entry for a video's boxes, keyed by the video's sha256 and the detector with its
parameters, and an entry for its cropped training windows (a shard directory), keyed by the
video's sha256, its boxes, the crop and window settings and the labels, and holding the windows
of a set of clips. The clip rules act through the clips asked for: a run reuses an entry holding
every clip it needs, and otherwise cuts only the missing clips and writes a new entry with the
union. A second run over the same project recomputes nothing; adding a video computes that video
(and, when the added video raises the idle target, only the extra idle clips of the others).
The final shards are assembled from the entries by copying bytes, in manifest and plan order,
so a run gives the same shards whatever the cache held.

Videos are prepared (boxes detected, windows cut into cache entries) by ``data.crop_workers``
spawned processes side by side (as with any spawned process, a script calling
:func:`run_bbox_crop` starts under ``if __name__ == "__main__":``); the videos of one file (same
sha256) go to the same process, one after the other, so two processes never build the same cache
entry. Assembly stays in this process.
"""


import hashlib
import logging
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from tqdm import tqdm

from mvd.clips import Clip, clip_windows, plan_clips
from mvd.config import Config
from mvd.crop import CROP_RULE_VERSIONS
from mvd.cores import usable_cores
from mvd.dense import interval_targets
from mvd.detect import Detector, make_detector
from mvd.extract import stream_windows
from mvd.labels import idle_index
from mvd.shards import ShardReader, ShardWriter
from mvd.timebase import TimeBase, target_fps_for
from mvd.video import VideoReadError

from .integrations.cache import Cache, settings_key
from mvd.crops_index import BoxesEntry, CropsIndex
from mvd.manifest import VideoRecord, read_manifest

logger = logging.getLogger(__name__)

MIN_DETECTED = 0.5  # a video with boxes on fewer of its frames is named in a warning
CACHE_FORMAT = 2  # 2: windows straddling event edges, frame_labels from all intervals


# ----------------------------------------------------------------------------- cache keys


def detector_spec(name: str, detector: Detector) -> dict[str, Any]:
    """Name, class, version and scalar parameters of a detector: what its boxes depend on. The
    version (a detector class's ``VERSION``, 1 when it has none) changes when its code finds other
    boxes with the same parameters, so boxes cached by the older code are not reused."""
    params = {k: v for k, v in sorted(vars(detector).items())
              if not k.startswith("_") and isinstance(v, (bool, int, float, str, type(None)))}
    return {"name": name, "class": f"{type(detector).__module__}.{type(detector).__qualname__}",
            "version": int(getattr(type(detector), "VERSION", 1)), "params": params}


def boxes_entry(spec: dict[str, Any]) -> str:
    return f"boxes-{settings_key({'format': CACHE_FORMAT, 'detector': spec})}"


def windows_settings(rec: VideoRecord, boxes: np.ndarray, cfg: Config, labels: list[str],
                     target_fps: float = 0.0) -> dict[str, Any]:
    """Everything a video's cropped windows depend on besides the clips."""
    m = cfg.model
    settings = {"format": CACHE_FORMAT, "target_fps": float(target_fps),
                "boxes_sha256": hashlib.sha256(np.ascontiguousarray(boxes, dtype=np.float32).tobytes()).hexdigest(),
                "video_frames": rec.num_frames, "input_size": m.input_size, "num_frames": m.num_frames,
                "sampling_rate": m.sampling_rate, "pad_train": cfg.data.pad_train, "labels": list(labels)}
    if cfg.data.crop_mode != "union":  # named only when not the original rule, so caches made before it stay valid
        settings["crop_mode"] = cfg.data.crop_mode
        settings["crop_rule_version"] = CROP_RULE_VERSIONS[cfg.data.crop_mode]
    return settings


def _clip_key(c: Clip) -> tuple[int, int, int, int, int]:
    return (int(c.label), int(c.start), int(c.end), int(c.event_start), int(c.event_end))


class _Stats(NamedTuple):
    boxes: str  # annotation | reused | computed
    windows_reused: int
    windows_computed: int


class _Prep:
    """Per-video boxes and windows through the cache."""

    def __init__(self, cfg: Config, manifest_dir: Path, cache: Cache):
        self.cfg = cfg
        self.mdir = manifest_dir
        self.cache = cache
        self.detector = make_detector(cfg.data.detector)
        self.det_spec = detector_spec(cfg.data.detector, self.detector)

    def boxes(self, rec: VideoRecord) -> tuple[np.ndarray, str]:
        """(boxes, annotation | reused | computed)."""
        if rec.boxes:
            boxes = np.load(self.mdir / rec.boxes)
            if np.isfinite(boxes[:, 0]).any():
                return boxes, "annotation"
        name = boxes_entry(self.det_spec)
        d = self.cache.get(rec.sha256, name)
        if d is not None:
            boxes = np.load(d / "boxes.npy")
            if boxes.ndim == 2 and boxes.shape[1] == 5:
                return boxes, "reused"
            logger.warning("cache entry %s of %s holds boxes of shape %s; detecting again", name, rec.id, boxes.shape)
        boxes = self.detector.detect_video(self.mdir / rec.file).astype(np.float32)
        stage = self.cache.staging(rec.sha256, name)
        try:
            np.save(stage / "boxes.npy", boxes)
            self.cache.commit(rec.sha256, name, stage, {"kind": "boxes", "detector": self.det_spec,
                                                        "frames": int(len(boxes)), "video": rec.id})
        finally:
            shutil.rmtree(stage, ignore_errors=True)  # gone already when committed
        return boxes, "computed"

    def windows(self, rec: VideoRecord, boxes: np.ndarray, clips: list[Clip], labels: list[str],
                target_fps: float = 0.0) -> tuple[ShardReader, dict[tuple, list[int]], int, int]:
        """(reader over the video's entry, clip key -> window positions in it, reused, computed)."""
        cfg = self.cfg
        settings = windows_settings(rec, boxes, cfg, labels, target_fps)
        prefix = f"windows-{settings_key(settings)}-"
        need = {_clip_key(c) for c in clips}
        entries = {n: m for n, m in self.cache.entries(rec.sha256, prefix).items() if "clips" in m}
        have = {n: {tuple(k) for k in m["clips"]} for n, m in entries.items()}
        full = [n for n in sorted(have, key=lambda n: len(have[n])) if need <= have[n]]
        for name in full:
            d = self.cache.get(rec.sha256, name)
            if d is not None:
                reader = ShardReader(d)
                used = sum(len(v) for v in self._positions(reader, need).values())
                return reader, self._positions(reader), used, 0
        base_name = max(have, key=lambda n: (len(need & have[n]), -len(have[n])), default=None)
        base_dir = self.cache.get(rec.sha256, base_name) if base_name and need & have[base_name] else None
        base = ShardReader(base_dir) if base_dir is not None else None
        base_keys = {tuple(c["clip_key"]) for c in base.clips} if base is not None else set()
        missing = [c for c in clips if _clip_key(c) not in base_keys]
        union = sorted(base_keys | need)
        name = prefix + settings_key(union, 16)
        windows = [(c, w) for c in missing for w in clip_windows(c, cfg.model.num_frames, cfg.model.sampling_rate,
                                                                 rec.num_frames,
                                                                 timebase=TimeBase(rec.fps, target_fps))]
        stage = self.cache.staging(rec.sha256, name)
        try:
            writer = ShardWriter(stage, cfg.model.input_size)
            if base is not None:
                for i, meta in enumerate(base.clips):
                    writer.add(np.asarray(base.frames(i)), **{k: v for k, v in meta.items()
                                                              if k not in ("shard", "offset", "length")})
            intervals = [(label, s, e) for label, ranges in rec.ranges_by_label(labels).items() for s, e in ranges]
            idle = idle_index(labels)
            for k, frames, crop in stream_windows(str(self.mdir / rec.file), [w.indices for _, w in windows], boxes,
                                                  width=rec.width, height=rec.height, size=cfg.model.input_size,
                                                  pad=cfg.data.pad_train, mode=cfg.data.crop_mode):
                clip, w = windows[k]
                writer.add(frames, clip_key=list(_clip_key(clip)), label=int(clip.label), start=int(w.start),
                           end=int(w.end), indices=w.indices.tolist(), event_start=int(clip.event_start),
                           event_end=int(clip.event_end), crop=list(map(int, crop)),
                           frame_labels=interval_targets(w.indices, intervals, idle).tolist())
            writer.close({"kind": "windows", "settings": settings})
            d = self.cache.commit(rec.sha256, name, stage, {"kind": "windows", "settings": settings, "clips": union,
                                                            "windows": len(writer.clips), "video": rec.id})
        finally:
            shutil.rmtree(stage, ignore_errors=True)  # gone already when committed
        reader = ShardReader(d)
        reused = sum(len(v) for v in self._positions(reader, need & base_keys).values())
        return reader, self._positions(reader), reused, len(windows)

    @staticmethod
    def _positions(reader: ShardReader, only: set | None = None) -> dict[tuple, list[int]]:
        """Clip key -> positions of its windows in ``reader`` (only the keys in ``only`` when given)."""
        out: dict[tuple, list[int]] = {}
        for i, c in enumerate(reader.clips):
            key = tuple(c["clip_key"])
            if only is None or key in only:
                out.setdefault(key, []).append(i)
        return out


class _Prepared(NamedTuple):
    video: str
    boxes: np.ndarray | None
    origin: str
    windows_dir: str  # cache entry of the video's windows; "" when it has no clip
    reused: int
    computed: int
    error: str  # why the video failed; "" when it did not


_WORKER: dict[str, Any] = {}  # what a preparation process works with: prep, plans, labels, target fps


def _prepare_group(recs: list[VideoRecord]) -> list[_Prepared]:
    """Boxes and cache entries of the windows of videos that share one file, one after the other."""
    prep, plans, labels, target_fps = (_WORKER[k] for k in ("prep", "plans", "labels", "target_fps"))
    out = []
    for rec in recs:
        try:
            boxes, origin = prep.boxes(rec)
            clips = plans.get(rec.id, [])
            wdir, reused, computed = "", 0, 0
            if clips:
                reader, _, reused, computed = prep.windows(rec, boxes, clips, labels, target_fps)
                wdir = str(reader.dir)
            out.append(_Prepared(rec.id, boxes, origin, wdir, reused, computed, ""))
        except (VideoReadError, ValueError) as e:
            out.append(_Prepared(rec.id, None, "", "", 0, 0, str(e)))
    return out


def _set_worker(prep: _Prep, plans: dict[str, list[Clip]], labels: list[str], target_fps: float) -> None:
    _WORKER.update(prep=prep, plans=plans, labels=labels, target_fps=target_fps)


def _start_worker(*args: Any) -> None:
    """Start of a preparation process (spawned, not forked: OpenCV's thread pool does not survive a
    fork): OpenCV on one thread, since the processes already share the cores."""
    import cv2

    cv2.setNumThreads(1)
    _set_worker(*args)


def crop_workers(requested: int, videos: int) -> int:
    """Processes that prepare videos: ``data.crop_workers``, or one per usable core (at most 8)."""
    n = requested if requested > 0 else min(8, usable_cores())
    return max(1, min(n, videos))


def _prepared(manifest: Any, prep: _Prep, plans: dict[str, list[Clip]], target_fps: float, workers: int):
    """Each video's :class:`_Prepared`, in manifest order; ``workers`` processes when > 1."""
    groups: dict[str, list[VideoRecord]] = {}
    for rec in manifest.videos:
        groups.setdefault(rec.sha256 or rec.id, []).append(rec)
    args = (prep, plans, manifest.labels, target_fps)
    n = crop_workers(workers, len(groups))
    if n == 1:
        _set_worker(*args)
        try:
            done = [_prepare_group(g) for g in tqdm(groups.values(), desc="bbox-crop", unit="file")]
        finally:
            _WORKER.clear()
    else:
        logger.info("bbox-crop: preparing %d videos in %d processes", len(manifest.videos), n)
        try:
            with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                                     initargs=args) as pool:
                done = list(tqdm(pool.map(_prepare_group, groups.values()), total=len(groups), desc="bbox-crop",
                                 unit="file"))
        except BrokenProcessPool as e:
            raise RuntimeError(
                f"bbox-crop: a video preparation process died ({e}). The {n} processes are spawned: a script "
                "that calls run_bbox_crop must start under `if __name__ == '__main__':`; out of memory, give "
                "the task more memory or set data.crop_workers to fewer processes (1 = none)") from e
    by_video = {p.video: p for group in done for p in group}
    return [by_video[rec.id] for rec in manifest.videos]


def run_bbox_crop(manifest_dir: str | Path, cfg: Config, out_dir: str | Path) -> dict[str, Any]:
    """Writes ``clips/`` (shards + index), ``boxes/<video>.npy`` and ``boxes.json`` under ``out_dir``."""
    mdir, out = Path(manifest_dir), Path(out_dir)
    manifest = read_manifest(mdir)
    target_fps = target_fps_for(cfg.model.target_fps, [r.fps for r in manifest.split("train")])
    logger.info("bbox-crop: the model sees every video at %.3g fps (%s)", target_fps,
                "model.target_fps" if cfg.model.target_fps else "the lowest frame rate among the training videos")
    plans = plan_clips(manifest, cfg, target_fps=target_fps)
    scratch = out / ".cache-scratch"
    cache = Cache(cfg.data.cache or (out / ".cache-run"), scratch)
    prep = _Prep(cfg, mdir, cache)
    writer = ShardWriter(out / "clips", cfg.model.input_size)
    boxes_index: dict[str, BoxesEntry] = {}
    failures: list[dict[str, str]] = []
    counts = np.zeros(len(manifest.labels), dtype=int)
    stats: dict[str, _Stats] = {}
    try:
        for rec, p in zip(manifest.videos, _prepared(manifest, prep, plans, target_fps, cfg.data.crop_workers)):
            if p.error:
                logger.error("bbox-crop: %s failed: %s", rec.id, p.error)
                failures.append({"video": rec.id, "reason": p.error})
                continue
            boxes = p.boxes
            rel = f"boxes/{Path(rec.file).name}.npy"
            (out / "boxes").mkdir(parents=True, exist_ok=True)
            tmp = out / (rel + ".tmp.npy")
            np.save(tmp, boxes.astype(np.float32))
            tmp.replace(out / rel)
            detected = float(np.isfinite(boxes[:, 0]).mean())
            boxes_index[rec.id] = BoxesEntry(rel, "annotation" if p.origin == "annotation" else "detector", p.origin,
                                             detected)
            if p.origin != "annotation" and detected < MIN_DETECTED:
                logger.warning("bbox-crop: %s: the %s detector found the mouse in only %.0f%% of its frames; the "
                               "others are cropped to the whole frame, where a mouse is a few pixels. Look at "
                               "`mar boxes %s` (boxes CSV + contact sheet), or give the video %r boxes",
                               rec.id, cfg.data.detector, 100 * detected, mdir / rec.file, cfg.data.box_class)
            if p.windows_dir:
                reader = ShardReader(p.windows_dir)
                positions = prep._positions(reader)
                for clip in plans.get(rec.id, []):
                    for i in positions.get(_clip_key(clip), []):
                        meta = reader.clips[i]
                        writer.add(np.asarray(reader.frames(i)), video=rec.id, split=rec.split,
                                   label=int(meta["label"]),
                                   clip=f"{rec.id}#{clip.start}-{clip.end}", start=meta["start"],
                                   end=meta["end"], indices=meta["indices"], event_start=meta["event_start"],
                                   event_end=meta["event_end"], fps=rec.fps, crop=meta["crop"],
                                   frame_labels=meta["frame_labels"])
                        counts[clip.label] += 1
            stats[rec.id] = _Stats(p.origin, p.reused, p.computed)
        if not writer.clips:
            raise RuntimeError(f"bbox-crop produced no training window; failures: {failures}")
        writer.close({"labels": manifest.labels, "data_version": manifest.data_version, "target_fps": target_fps})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if not cfg.data.cache:
            shutil.rmtree(out / ".cache-run", ignore_errors=True)
    computed_videos = sorted(v for v, s in stats.items() if s.boxes == "computed" or s.windows_computed)
    cache_summary = {
        "uri": cfg.data.cache or None,
        "videos_computed": len(computed_videos), "videos_reused": len(stats) - len(computed_videos),
        "computed": computed_videos,
        "boxes": {k: sum(s.boxes == k for s in stats.values()) for k in ("reused", "computed", "annotation")},
        "windows": {"reused": sum(s.windows_reused for s in stats.values()),
                    "computed": sum(s.windows_computed for s in stats.values())},
    }
    index = CropsIndex(labels=manifest.labels, data_version=manifest.data_version, boxes=boxes_index,
                       windows_per_class={manifest.labels[i]: int(c) for i, c in enumerate(counts)},
                       videos=len(manifest.videos), failures=failures, cache=cache_summary)
    index.write(out)
    summary = {"windows_per_class": index.windows_per_class, "videos": index.videos, "failures": failures,
               "boxes": {k: vars(v) for k, v in boxes_index.items()}, "cache": cache_summary,
               "labels": manifest.labels, "data_version": manifest.data_version}
    logger.info("bbox-crop: training windows per class %s; videos reused %d, computed %d; %d failures",
                summary["windows_per_class"], cache_summary["videos_reused"], cache_summary["videos_computed"],
                len(failures))
    return summary
