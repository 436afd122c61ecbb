"""Shared pieces of the metric modules: precision/recall/F1, AP and argument checks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mvd.bouts import Bout


def _div(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def prf(tp: int, fp: int, fn: int) -> dict[str, float | None]:
    """Precision, recall, F1 from counts with the module's 0/0 conventions."""
    tp, fp, fn = int(tp), int(fp), int(fn)
    if tp + fp + fn == 0:
        return {"precision": None, "recall": None, "f1": None}
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def average_precision(scores: Sequence[float], is_tp: Sequence[bool], num_true: int) -> float | None:
    """All-point interpolated AP (PASCAL VOC 2010+) of a ranked list.

    Predictions are ranked by score, descending (stable for ties). ``None`` when there
    is nothing to score (no truths and no predictions); 0.0 with predictions but no truths.
    """
    scores = np.asarray(scores, dtype=np.float64)
    hits = np.asarray(is_tp, dtype=bool)
    if scores.shape != hits.shape:
        raise ValueError("scores and is_tp must have the same length")
    if num_true <= 0:
        return None if scores.size == 0 else 0.0
    if scores.size == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    hits = hits[order]
    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    recall = tp / float(num_true)
    precision = tp / np.maximum(tp + fp, 1)
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    step = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))


def _check_labels(labels: Sequence[str], idle: int | None) -> list[str]:
    names = [str(x) for x in labels]
    if not names:
        raise ValueError("labels is empty; pass the model's class names")
    if len(set(names)) != len(names):
        raise ValueError(f"labels has duplicate class names: {names}")
    if idle is not None and not 0 <= idle < len(names):
        raise ValueError(f"idle={idle} is not a class index of labels {names}")
    return names


def _action_classes(num_classes: int, idle: int | None) -> list[int]:
    return [c for c in range(num_classes) if c != idle]


def _fps_list(fps: Sequence[float] | float, num_videos: int) -> list[float]:
    if isinstance(fps, (int, float, np.integer, np.floating)):
        out = [float(fps)] * num_videos
    else:
        out = [float(f) for f in fps]
        if len(out) != num_videos:
            raise ValueError(f"fps has {len(out)} entries for {num_videos} videos")
    for i, f in enumerate(out):
        if not np.isfinite(f) or f <= 0:
            raise ValueError(f"fps of video #{i} is {f}; it must be > 0")
    return out


def _names_list(video_names: Sequence[str] | None, num_videos: int) -> list[str]:
    if video_names is None:
        return [f"video_{i}" for i in range(num_videos)]
    names = [str(v) for v in video_names]
    if len(names) != num_videos:
        raise ValueError(f"video_names has {len(names)} entries for {num_videos} videos")
    return names


def _check_bouts(bouts: Sequence[Sequence[Bout]], what: str, num_classes: int) -> None:
    for v, video in enumerate(bouts):
        for b in video:
            if not 0 <= int(b.label) < num_classes:
                raise ValueError(f"{what} of video #{v}: bout {tuple(b)} has a label outside "
                                 f"0..{num_classes - 1}")
            if int(b.start) > int(b.end) or int(b.start) < 0:
                raise ValueError(f"{what} of video #{v}: bout {tuple(b)} is not a valid "
                                 "inclusive frame range [start, end]")


def _check_bout_inputs(true_bouts: Sequence[Sequence[Bout]], pred_bouts: Sequence[Sequence[Bout]],
                       labels: Sequence[str], fps: Sequence[float] | float, video_names: Sequence[str] | None,
                       idle: int | None) -> tuple[list[str], int, list[float], list[str]]:
    """(class names, number of videos, fps per video, video names) after checking per-video bout lists."""
    names = _check_labels(labels, idle)
    n = len(true_bouts)
    if len(pred_bouts) != n:
        raise ValueError(f"true_bouts has {n} videos but pred_bouts has {len(pred_bouts)}")
    fps_l = _fps_list(fps, n)
    vids = _names_list(video_names, n)
    _check_bouts(true_bouts, "true_bouts", len(names))
    _check_bouts(pred_bouts, "pred_bouts", len(names))
    return names, n, fps_l, vids
