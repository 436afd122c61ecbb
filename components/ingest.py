"""Ingest: a Supervisely video project → manifest + train/val/test split by video + ingest report.

The source is a project directory, an ``s3://`` prefix or ``sly://<project id>``
(:mod:`components.integrations.sources`). Two project shapes are read (the one found goes into the report):

- ``videos``: annotated full-length videos in any (nested) datasets; action tags with frame
  ranges become labelled intervals and videos are split train/test by video (stratified,
  deterministic); ``data.val_ratio`` of the training videos are then held out whole as
  validation videos (the best epoch and the post-processing rules are chosen on them).
- ``training_data``: the preprocessing app's "Training Data" project: ``train/`` with nested
  class datasets (``Self-Grooming``, ``Head-Body_TWITCH``, ``idle``) of short clips, each wholly of
  its folder's class, and ``test/`` with full-length tagged videos. Every train clip is one train
  video labelled over its whole frame range (idle clips explicitly idle); ``test/`` is the test
  split as given.

Tags map to classes case-insensitively by prefix (punctuation ignored, so the dataset folder
name ``Head-Body_TWITCH`` matches ``Head/Body TWITCH``). Explicit idle tags are kept as idle
intervals (minus frames tagged with an action). Videos are probed and hashed; bad videos and
annotations are excluded and reported; the stage fails only when nothing usable remains.
Videos are copied into the output so later stages (and cluster pods) find them.
"""


import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from mvd.clips import merge_ranges
from mvd.config import Config
from mvd.labels import idle_index
from mvd.video import VideoReadError, probe

from mvd.manifest import SPLITS, Interval, Manifest, VideoRecord, safe_name, sha256_file, write_json
from .integrations.sources import ResolvedSource, SourceError, resolve_source
from .integrations.supervisely_project import ProjectError, ProjectItem, boxes_array, read_project

logger = logging.getLogger(__name__)


class IngestError(ValueError):
    """Nothing usable in the source; the message says what was expected."""


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.lower())


def tag_to_class(tag: str, labels: list[str], tag_map: dict[str, str]) -> str | None:
    """Class for a tag name: explicit tag_map prefixes first, then the class names, by prefix."""
    t = _norm(tag)
    for prefix, cls in sorted(tag_map.items(), key=lambda kv: -len(kv[0])):
        if t.startswith(_norm(prefix)):
            return cls
    for cls in sorted(labels, key=lambda c: -len(_norm(c))):
        if _norm(cls) and t.startswith(_norm(cls)):
            return cls
    return None


def split_videos(
    class_sets: list[set[str]], hashes: list[str], test_ratio: float, seed: int
) -> list[str]:
    """train/test per video: deterministic, stratified so test holds every class when possible,
    and identical content (same sha256) always on the same side."""
    groups: dict[str, list[int]] = {}
    for i, h in enumerate(hashes):
        groups.setdefault(h, []).append(i)
    keys = list(groups)
    rng = np.random.default_rng(seed)
    rng.shuffle(keys)
    n = len(keys)
    if n < 2:
        return ["train"] * len(hashes)
    n_test = min(n - 1, max(1, int(round(test_ratio * n))))
    g_classes = {k: set().union(*(class_sets[i] for i in groups[k])) for k in keys}
    all_classes = set().union(*g_classes.values())
    test: list[str] = []
    # rarest class first: put one video holding it in test, unless it is the only one
    for cls in sorted(all_classes, key=lambda c: sum(c in g_classes[k] for k in keys)):
        if len(test) >= n_test or any(cls in g_classes[k] for k in test):
            continue
        holders = [k for k in keys if cls in g_classes[k] and k not in test]
        if len([k for k in keys if cls in g_classes[k]]) >= 2 and holders:
            test.append(holders[0])
    for k in keys:
        if len(test) >= n_test:
            break
        if k not in test:
            test.append(k)
    out = ["train"] * len(hashes)
    for k in test:
        for i in groups[k]:
            out[i] = "test"
    return out


def hold_out_val(splits: list[str], class_sets: list[set[str]], hashes: list[str], val_ratio: float,
                 seed: int, min_train: int = 3) -> list[str]:
    """Move whole training videos to ``val`` (stratified by the classes they hold, same content on one
    side), keeping at least ``min_train`` distinct training videos; unchanged when that is impossible."""
    train = [i for i, s in enumerate(splits) if s == "train"]
    if val_ratio <= 0 or len({hashes[i] for i in train}) < min_train + 1:
        return list(splits)
    sub = split_videos([class_sets[i] for i in train], [hashes[i] for i in train], val_ratio, seed + 1)
    n_train = len({hashes[i] for i, s in zip(train, sub) if s == "train"})
    if n_train < min_train:
        return list(splits)
    out = list(splits)
    for i, s in zip(train, sub):
        if s == "test":
            out[i] = "val"
    return out


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    if tmp.exists():
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


TRAINING_DATA = "training_data"
VIDEOS = "videos"


def _top(dataset: str) -> tuple[str, str | None]:
    """(top-level dataset, first child dataset or None) of a nested dataset path ``a/b/c``."""
    parts = dataset.split("/")
    return parts[0], (parts[1] if len(parts) > 1 else None)


def detect_shape(datasets: list[str], labels: list[str], tag_map: dict[str, str]) -> str:
    """``"training_data"`` for the preprocessing app's output (a ``train`` dataset whose nested
    datasets are named after classes, plus ``test``), else ``"videos"`` (annotated full videos)."""
    tops = {_top(d)[0].lower() for d in datasets}
    children = {c for d in datasets for t, c in [_top(d)] if t.lower() == "train" and c}
    if "train" in tops and any(tag_to_class(c, labels, tag_map) is not None for c in children):
        return TRAINING_DATA
    return VIDEOS


def subtract_ranges(ranges: list[tuple[int, int]], cut: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Parts of inclusive ``ranges`` not covered by any of ``cut``."""
    out = []
    for s, e in ranges:
        pieces = [(s, e)]
        for cs, ce in cut:
            nxt = []
            for ps, pe in pieces:
                if ce < ps or cs > pe:
                    nxt.append((ps, pe))
                    continue
                if ps < cs:
                    nxt.append((ps, cs - 1))
                if ce < pe:
                    nxt.append((ce + 1, pe))
            pieces = nxt
        out.extend(pieces)
    return out


def _tag_intervals(vid: str, tags: list[tuple[str, int, int]], n: int, labels: list[str], tag_map: dict[str, str],
                   decisions: list[dict[str, Any]]) -> list[Interval]:
    """Intervals of the tags that map to a class, clipped to the video. Explicit idle tags are kept
    (minus frames tagged with an action)."""
    idle = labels[idle_index(labels)]
    out: list[Interval] = []
    for tag, s, e in tags:
        cls = tag_to_class(tag, labels, tag_map)
        if cls is None:
            continue
        if s > e:
            decisions.append({"video": vid, "decision": "tag_dropped",
                              "reason": f"tag {tag!r} range [{s}, {e}] is reversed"})
            continue
        if s >= n or e < 0:
            decisions.append({"video": vid, "decision": "tag_dropped",
                              "reason": f"tag {tag!r} range [{s}, {e}] lies outside the video (0..{n - 1})"})
            continue
        cs, ce = max(0, s), min(n - 1, e)
        if (cs, ce) != (s, e):
            logger.warning("%s: tag %r range [%d, %d] clipped to [%d, %d]", vid, tag, s, e, cs, ce)
            decisions.append({"video": vid, "decision": "tag_clipped",
                              "reason": f"tag {tag!r} range [{s}, {e}] clipped to [{cs}, {ce}] (video has {n} frames)"})
        out.append(Interval(cls, cs, ce))
    positives = [(i.start, i.end) for i in out if i.label != idle]
    idle_ranges = merge_ranges([(i.start, i.end) for i in out if i.label == idle])
    kept_idle = subtract_ranges(idle_ranges, positives)
    if idle_ranges and kept_idle != idle_ranges:
        decisions.append({"video": vid, "decision": "note",
                          "reason": "idle tags overlap action tags; the action frames keep their action label"})
    return [i for i in out if i.label != idle] + [Interval(idle, s, e) for s, e in kept_idle]


def _item_intervals(it: ProjectItem, vid: str, n: int, shape: str, cfg: Config,
                    decisions: list[dict[str, Any]]) -> tuple[list[Interval], str] | None:
    """(intervals, split) of one item, or None when it is excluded (the reason is recorded)."""
    labels, tag_map = cfg.data.labels, cfg.data.tag_map
    if shape == VIDEOS:
        return _tag_intervals(vid, it.tags, n, labels, tag_map, decisions), ""
    top, child = _top(it.dataset)
    if top.lower() == "test":
        return _tag_intervals(vid, it.tags, n, labels, tag_map, decisions), "test"
    if top.lower() != "train":
        decisions.append({"video": vid, "decision": "excluded", "reason":
                          f"dataset {it.dataset!r} is neither train/<class> nor test of a Training Data project"})
        return None
    cls = tag_to_class(child, labels, tag_map) if child else None
    if cls is None:
        why = (f"{child!r} names no class of {labels}" if child
               else "clips must sit in a class dataset train/<class>/")
        decisions.append({"video": vid, "decision": "excluded", "reason": f"train clip in dataset {it.dataset!r}: {why}"})
        return None
    other = sorted({t for t, _, _ in it.tags if tag_to_class(t, labels, tag_map) not in (None, cls)})
    if other:
        decisions.append({"video": vid, "decision": "note",
                          "reason": f"tags {other} ignored: a train clip is labelled by its dataset folder ({cls})"})
    return [Interval(cls, 0, n - 1)], "train"


def run_ingest(source: str, cfg: Config, out_dir: str | Path, report_path: str | Path | None = None) -> Manifest:
    """Read ``source`` (directory, ``s3://`` prefix or ``sly://<id>``), validate, split, copy videos;
    write ``manifest.json`` in ``out_dir``."""
    out = Path(out_dir)
    try:
        src = resolve_source(source, out / ".source")
    except SourceError as e:
        raise IngestError(str(e)) from e
    try:
        return _ingest(src, cfg, out, report_path)
    finally:
        if src.downloaded:
            shutil.rmtree(out / ".source", ignore_errors=True)


def _ingest(src: ResolvedSource, cfg: Config, out: Path, report_path: str | Path | None) -> Manifest:
    source = src.uri
    labels = cfg.data.labels
    idle = labels[idle_index(labels)]
    try:
        items, declared = read_project(src.path, cfg.data.box_class)
    except ProjectError as e:
        raise IngestError(str(e)) from e
    if not items:
        raise IngestError(f"source {source} is a Supervisely project but holds no videos. "
                          "Add videos with action tags (Self-Grooming, Head/Body TWITCH, ...) and export again.")
    shape = detect_shape(sorted({it.dataset for it in items}), labels, cfg.data.tag_map)
    logger.info("ingest: %s project shape %r", source, shape)
    decisions: list[dict[str, Any]] = []
    unknown = sorted({t for t in declared if tag_to_class(t, labels, cfg.data.tag_map) is None})
    if unknown:
        msg = (f"tags {unknown} match no class of {labels} (by case-insensitive prefix); "
               "map them with data.tag_map or leave them ignored")
        if cfg.data.unknown_tags == "error":
            raise IngestError(msg)
        logger.warning(msg)
        decisions.append({"video": None, "decision": "tags_ignored", "reason": msg})

    records: list[VideoRecord] = []
    fixed_splits: list[str] = []
    seen_ids: set[str] = set()
    taken_names: set[str] = set()
    for it in items:
        vid = f"{it.dataset}/{it.name}"
        if it.error:
            decisions.append({"video": vid, "decision": "excluded", "reason": it.error})
            continue
        if vid in seen_ids:
            decisions.append({"video": vid, "decision": "excluded", "reason": "duplicate name in the same dataset"})
            continue
        try:
            info = probe(it.video_path, decode=True)
        except VideoReadError as e:
            decisions.append({"video": vid, "decision": "excluded", "reason": f"unreadable video: {e}"})
            continue
        n = info.num_frames
        if it.frames_count and it.frames_count != n:
            decisions.append({"video": vid, "decision": "note",
                              "reason": f"annotation says {it.frames_count} frames, video decodes {n}; using {n}"})
        got = _item_intervals(it, vid, n, shape, cfg, decisions)
        if got is None:
            continue
        intervals, split = got
        if not intervals:
            decisions.append({"video": vid, "decision": "excluded",
                              "reason": "no action tag (treated as unannotated, not as all-idle)"})
            continue
        seen_ids.add(vid)
        safe = safe_name(vid, taken_names)
        rec = VideoRecord(id=vid, dataset=it.dataset, name=it.name, source=src.origin(it.video_path),
                          file=f"videos/{safe}", sha256=sha256_file(it.video_path), fps=info.fps, num_frames=n,
                          width=info.width, height=info.height,
                          intervals=sorted(intervals, key=lambda i: (i.start, i.label)))
        if it.boxes:
            arr = boxes_array(it.boxes, n)
            rec.boxes = f"boxes/{safe}.npy"
            (out / "boxes").mkdir(parents=True, exist_ok=True)
            tmp = out / (rec.boxes + ".tmp.npy")
            np.save(tmp, arr)
            os.replace(tmp, out / rec.boxes)
        records.append(rec)
        fixed_splits.append(split)
        _link_or_copy(it.video_path, out / rec.file)
    if not records:
        reasons = "; ".join(f"{d['video']}: {d['reason']}" for d in decisions if d["video"])[:2000]
        raise IngestError(f"source {source} has no usable video with an action tag. Expected videos tagged with "
                          f"one of {labels[1:]} (frame-range tags). Per video: {reasons}")
    if shape == TRAINING_DATA:
        splits = fixed_splits
        for need in ("train", "test"):
            if need not in splits:
                where = "train/<class>/ clips" if need == "train" else "full videos with action tags in test/"
                raise IngestError(f"source {source} is a Training Data project (train/<class>/ clips and test/ "
                                  f"videos) but has no usable {need} video: add {where}")
    else:
        classes = [{i.label for i in r.intervals if i.label != idle} for r in records]
        splits = split_videos(classes, [r.sha256 for r in records], cfg.data.test_ratio, cfg.data.split_seed)
        splits = hold_out_val(splits, classes, [r.sha256 for r in records], cfg.data.val_ratio, cfg.data.split_seed)
    for r, s in zip(records, splits):
        r.split = s
    if not any(s == "val" for s in splits):
        decisions.append({"video": None, "decision": "no_val",
                          "reason": "no whole video held out for validation (Training Data layout, too few training "
                                    "videos, or data.val_ratio=0): the post-processing keeps its default rules"})
    manifest = Manifest(labels=list(labels), source=str(source), videos=records)
    manifest.write(out)
    counts = {s: sum(r.split == s for r in records) for s in SPLITS}
    per_class = {c: {s: sum(1 for r in records if r.split == s for i in r.intervals if i.label == c)
                     for s in SPLITS} for c in labels}
    report = {"source": str(source), "source_kind": src.kind, "shape": shape, "data_version": manifest.data_version,
              "videos_total": len(items), "videos_used": len(records), "split": counts,
              "intervals_per_class": per_class, "decisions": decisions}
    if report_path:
        write_json(report_path, report)
    logger.info("ingest: %d of %d videos used (%s, shape %s); %d decisions", len(records), len(items), counts, shape,
                len(decisions))
    return manifest
