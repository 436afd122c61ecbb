"""Event (bout) matching and detection metrics: IoU and hit criteria, AP; the assay's overlap recall."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mvd.bouts import Bout

from ._common import (
    _action_classes,
    _check_bout_inputs,
    average_precision,
    prf,
)


def interval_iou(a_start: int, a_end: int, b_start: int, b_end: int) -> float:
    """Temporal IoU of two inclusive frame ranges."""
    inter = max(0, min(a_end, b_end) - max(a_start, b_start) + 1)
    union = (a_end - a_start + 1) + (b_end - b_start + 1) - inter
    return inter / union if union > 0 else 0.0


def _pred_order(preds: Sequence[Bout]) -> list[int]:
    return sorted(range(len(preds)), key=lambda i: (-float(preds[i].score), preds[i].start,
                                                     preds[i].end))


def _interval_arrays(bouts: Sequence[Bout]) -> tuple[np.ndarray, np.ndarray]:
    s = np.array([b.start for b in bouts], dtype=np.int64)
    e = np.array([b.end for b in bouts], dtype=np.int64)
    return s, e


def _overlap(preds: Sequence[Bout], truths: Sequence[Bout]) -> tuple[np.ndarray, np.ndarray]:
    ps, pe = _interval_arrays(preds)
    ts, te = _interval_arrays(truths)
    inter = np.maximum(0, np.minimum(pe[:, None], te[None, :])
                       - np.maximum(ps[:, None], ts[None, :]) + 1)
    union = (pe - ps + 1)[:, None] + (te - ts + 1)[None, :] - inter
    return inter, inter / union


def match_iou(preds: Sequence[Bout], truths: Sequence[Bout], threshold: float) -> list[bool]:
    """Greedy one-to-one IoU matching within one video and class.

    Predictions in descending score order each take the unmatched truth with the highest
    IoU >= ``threshold`` (earliest truth on ties). Returns is-TP per prediction, in the
    order of ``preds``.
    """
    hits = [False] * len(preds)
    if not preds or not truths:
        return hits
    _, iou = _overlap(preds, truths)
    free = np.ones(len(truths), dtype=bool)
    for i in _pred_order(preds):
        cand = np.where(free & (iou[i] >= threshold), iou[i], -1.0)
        j = int(np.argmax(cand))
        if cand[j] >= 0:
            free[j] = False
            hits[i] = True
    return hits


def match_hit(preds: Sequence[Bout], truths: Sequence[Bout], tolerance_frames: float) -> list[bool]:
    """Greedy one-to-one "hit" matching for short events within one video and class.

    A prediction may match a truth when they share a frame or their centres are at most
    ``tolerance_frames`` apart. Predictions in descending score order each take the
    eligible unmatched truth with the nearest centre (earliest truth on ties).
    """
    hits = [False] * len(preds)
    if not preds or not truths:
        return hits
    inter, _ = _overlap(preds, truths)
    ps, pe = _interval_arrays(preds)
    ts, te = _interval_arrays(truths)
    dist = np.abs((ps + pe)[:, None] - (ts + te)[None, :]) / 2.0
    eligible = (inter > 0) | (dist <= tolerance_frames)
    free = np.ones(len(truths), dtype=bool)
    for i in _pred_order(preds):
        cand = np.where(free & eligible[i], dist[i], np.inf)
        j = int(np.argmin(cand))
        if np.isfinite(cand[j]):
            free[j] = False
            hits[i] = True
    return hits


def _score(scores: list[float], hits: list[bool], num_true: int) -> dict[str, Any]:
    tp = int(sum(hits))
    fp = len(hits) - tp
    fn = num_true - tp
    out: dict[str, Any] = {"tp": tp, "fp": fp, "fn": fn}
    out.update(prf(tp, fp, fn))
    out["ap"] = average_precision(scores, hits, num_true)
    return out


def _criterion_names(iou_thresholds: Sequence[float]) -> list[str]:
    return [f"iou@{float(t):g}" for t in iou_thresholds] + ["hit"]


def _macro(per_class: Mapping[str, Mapping[str, Any]], criteria: list[str]) -> dict[str, Any]:
    out = {}
    for crit in criteria:
        out[crit] = {}
        for m in ("precision", "recall", "f1", "ap"):
            vals = [per_class[n][crit][m] for n in per_class if per_class[n][crit][m] is not None]
            out[crit][m] = float(np.mean(vals)) if vals else None
    return out


def event_metrics(
    true_bouts: Sequence[Sequence[Bout]],
    pred_bouts: Sequence[Sequence[Bout]],
    labels: Sequence[str],
    fps: Sequence[float] | float,
    *,
    iou_thresholds: Sequence[float] = (0.3, 0.5, 0.7),
    hit_tolerance_s: float = 0.5,
    idle: int | None = 0,
    video_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Event (bout) detection metrics for every action class.

    Criteria: ``"iou@<t>"`` for each IoU threshold (see :func:`match_iou`) and ``"hit"``
    (see :func:`match_hit`, tolerance ``hit_tolerance_s * fps`` frames per video). Each
    criterion gives {tp, fp, fn, precision, recall, f1, ap}.

    Returns ``labels``, ``action_labels``, ``criteria``, ``iou_thresholds``,
    ``hit_tolerance_s``, ``per_class`` {name: {num_true, num_pred, <criterion>: {...}}}
    pooled over videos, ``macro`` {criterion: {precision, recall, f1, ap}} over defined
    action classes, and ``per_video`` [{video, fps, per_class: {name: {...}}}].
    """
    names, n, fps_l, vids = _check_bout_inputs(true_bouts, pred_bouts, labels, fps, video_names, idle)
    if hit_tolerance_s < 0:
        raise ValueError(f"hit_tolerance_s must be >= 0, got {hit_tolerance_s}")
    thresholds = [float(t) for t in iou_thresholds]
    for t in thresholds:
        if not 0.0 < t <= 1.0:
            raise ValueError(f"IoU threshold {t} must be in (0, 1]")
    criteria = _criterion_names(thresholds)
    actions = _action_classes(len(names), idle)

    per_class: dict[str, dict[str, Any]] = {}
    per_video: list[dict[str, Any]] = [{"video": vids[v], "fps": fps_l[v], "per_class": {}}
                                       for v in range(n)]
    for k in actions:
        name = names[k]
        pooled = {crit: ([], []) for crit in criteria}  # scores, hits
        total_true = total_pred = 0
        for v in range(n):
            truths = sorted((b for b in true_bouts[v] if b.label == k), key=lambda b: (b.start, b.end))
            preds = [b for b in pred_bouts[v] if b.label == k]
            scores = [float(b.score) for b in preds]
            total_true += len(truths)
            total_pred += len(preds)
            entry: dict[str, Any] = {"num_true": len(truths), "num_pred": len(preds)}
            for crit, thr in zip(criteria, thresholds + [None]):
                if thr is None:
                    hits = match_hit(preds, truths, hit_tolerance_s * fps_l[v])
                else:
                    hits = match_iou(preds, truths, thr)
                entry[crit] = _score(scores, hits, len(truths))
                pooled[crit][0].extend(scores)
                pooled[crit][1].extend(hits)
            per_video[v]["per_class"][name] = entry
        summary: dict[str, Any] = {"num_true": total_true, "num_pred": total_pred}
        for crit in criteria:
            summary[crit] = _score(pooled[crit][0], pooled[crit][1], total_true)
        per_class[name] = summary

    return {
        "labels": names,
        "action_labels": [names[k] for k in actions],
        "criteria": criteria,
        "iou_thresholds": thresholds,
        "hit_tolerance_s": float(hit_tolerance_s),
        "per_class": per_class,
        "macro": _macro(per_class, criteria),
        "per_video": per_video,
    }


def overlap_recall(
    true_intervals: Sequence[Sequence[tuple[int, int]]], pred_labels: Sequence[np.ndarray], label: int
) -> float | None:
    """Share of true events (inclusive ``(start, end)`` per video) that any predicted frame of
    ``label`` overlaps — the head-twitch assay's "detected" rule. None when there is no event."""
    total = hit = 0
    for intervals, pred in zip(true_intervals, pred_labels):
        is_label = np.asarray(pred) == label
        for s, e in intervals:
            total += 1
            hit += bool(is_label[s:e + 1].any())
    return hit / total if total else None
