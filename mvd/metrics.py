"""Benchmark metrics for per-frame action labels: frames, events (bouts) and counts.

Conventions (all functions):

* Class ``idle`` (index 0 by default; ``None`` = no idle class) is reported but left
  out of macro/weighted averages and of event/count metrics, which cover the action
  classes only.
* 0/0: precision with no predictions is 0.0 when the class occurs (support > 0);
  recall with zero support is 0.0 when the class is predicted (false positives are
  penalised); F1 is 0.0 when precision + recall is 0. A class that neither occurs nor
  is predicted has ``None`` precision/recall/F1 (and AP) and is left out of the macro.
* Frame TP/FP/FN are pooled over videos before dividing. Events are matched within a
  video; AP ranks the predictions of all videos together by score.
* Frame ranges are inclusive: a bout ``[s, e]`` lasts ``e - s + 1`` frames.
* Every returned value is a plain ``int``/``float``/``str``/``None``/``list``/``dict``,
  so results can be written with :func:`json.dump` as they are.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mvd.bouts import Bout, bouts_from_labels
from mvd.postprocess import PostProcess

__all__ = [
    "metric_key",
    "prf",
    "average_precision",
    "interval_iou",
    "match_iou",
    "match_hit",
    "frame_metrics",
    "event_metrics",
    "count_metrics",
    "agreement",
    "bout_row",
    "evaluate",
]

_logger = logging.getLogger(__name__)

_KEY_SPACE = re.compile(r"\s+")
_KEY_BAD = re.compile(r"[^A-Za-z0-9_.\-]")


# --------------------------------------------------------------------------- helpers


def metric_key(name: str) -> str:
    """Class name -> MLflow-safe metric key part, e.g. "Head/Body TWITCH" -> "Head-Body_TWITCH".

    Slashes become "-", whitespace runs "_", any other character outside
    ``[A-Za-z0-9_.-]`` becomes "_".
    """
    key = str(name).strip().replace("/", "-").replace("\\", "-")
    key = _KEY_SPACE.sub("_", key)
    key = _KEY_BAD.sub("_", key)
    if not key:
        raise ValueError(f"class name {name!r} gives an empty metric key; rename the class")
    return key


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


# --------------------------------------------------------------------------- frames


def frame_metrics(
    y_true: Sequence[np.ndarray],
    y_pred: Sequence[np.ndarray],
    labels: Sequence[str],
    idle: int | None = 0,
) -> dict[str, Any]:
    """Per-frame precision/recall/F1 with TP/FP/FN pooled over videos.

    Returns ``labels``, ``action_labels``, ``num_frames``, ``per_class`` {name:
    {precision, recall, f1, support, predicted, tp, fp, fn, is_idle}} for every class,
    ``idle`` (the idle class's entry, or None), ``macro`` and ``weighted``
    {precision, recall, f1} over action classes (None where undefined),
    ``accuracy`` over all frames and ``confusion`` (rows = truth, cols = prediction).
    """
    names = _check_labels(labels, idle)
    c = len(names)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} videos but y_pred has {len(y_pred)}")
    confusion = np.zeros((c, c), dtype=np.int64)
    for v, (t, p) in enumerate(zip(y_true, y_pred)):
        t = np.asarray(t).astype(np.int64, copy=False).ravel()
        p = np.asarray(p).astype(np.int64, copy=False).ravel()
        if t.shape != p.shape:
            raise ValueError(f"video #{v}: {t.size} true frames but {p.size} predicted frames")
        for arr, what in ((t, "true"), (p, "predicted")):
            if arr.size and (arr.min() < 0 or arr.max() >= c):
                bad = int(np.flatnonzero((arr < 0) | (arr >= c))[0])
                raise ValueError(f"video #{v} frame {bad}: {what} label {int(arr[bad])} is "
                                 f"outside 0..{c - 1} of labels {names}")
        confusion += np.bincount(t * c + p, minlength=c * c).reshape(c, c)

    per_class: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(names):
        tp = int(confusion[k, k])
        support = int(confusion[k, :].sum())
        predicted = int(confusion[:, k].sum())
        entry = prf(tp, predicted - tp, support - tp)
        entry.update(support=support, predicted=predicted, tp=tp, fp=predicted - tp,
                     fn=support - tp, is_idle=k == idle)
        per_class[name] = entry

    actions = _action_classes(c, idle)
    defined = [names[k] for k in actions if per_class[names[k]]["f1"] is not None]
    macro = {m: (float(np.mean([per_class[n][m] for n in defined])) if defined else None)
             for m in ("precision", "recall", "f1")}
    total_support = sum(per_class[names[k]]["support"] for k in actions)
    weighted = {
        m: (float(sum(per_class[names[k]][m] * per_class[names[k]]["support"]
                      for k in actions if per_class[names[k]]["support"]) / total_support)
            if total_support else None)
        for m in ("precision", "recall", "f1")
    }
    total = int(confusion.sum())
    return {
        "labels": names,
        "action_labels": [names[k] for k in actions],
        "num_frames": total,
        "per_class": per_class,
        "idle": per_class[names[idle]] if idle is not None else None,
        "macro": macro,
        "weighted": weighted,
        "accuracy": _div(np.trace(confusion), total),
        "confusion": confusion.tolist(),
    }


# --------------------------------------------------------------------------- events


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
    names = _check_labels(labels, idle)
    n = len(true_bouts)
    if len(pred_bouts) != n:
        raise ValueError(f"true_bouts has {n} videos but pred_bouts has {len(pred_bouts)}")
    fps_l = _fps_list(fps, n)
    vids = _names_list(video_names, n)
    _check_bouts(true_bouts, "true_bouts", len(names))
    _check_bouts(pred_bouts, "pred_bouts", len(names))
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


# --------------------------------------------------------------------------- counts


def agreement(true: Sequence[float], pred: Sequence[float]) -> dict[str, float | int | None]:
    """Agreement of per-video predicted with true values, as count-validation papers report it.

    ``pearson_r``; ``icc`` = ICC(A,1), two-way random effects, absolute agreement, single rater
    (McGraw & Wong 1996); Bland–Altman ``bias`` (mean of pred − true) and 95% limits of
    agreement ``loa_low``/``loa_high`` (bias ∓ 1.96 SD of the differences). ``None`` where
    undefined (fewer than 2 videos, or no variance).
    """
    t = np.asarray(true, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"true and pred must be 1-D of the same length, got {t.shape} and {p.shape}")
    n = t.size
    out: dict[str, float | int | None] = {"n": int(n), "pearson_r": None, "icc": None, "bias": None,
                                          "loa_low": None, "loa_high": None}
    if n == 0:
        return out
    d = p - t
    out["bias"] = float(d.mean())
    if n < 2:
        return out
    sd = float(d.std(ddof=1))
    out["loa_low"], out["loa_high"] = out["bias"] - 1.96 * sd, out["bias"] + 1.96 * sd
    if t.std() > 0 and p.std() > 0:
        out["pearson_r"] = float(np.corrcoef(t, p)[0, 1])
    x = np.stack([t, p], axis=1)  # n subjects × k=2 raters
    k = 2
    grand = x.mean()
    ms_r = k * float(((x.mean(axis=1) - grand) ** 2).sum()) / (n - 1)
    ms_c = n * float(((x.mean(axis=0) - grand) ** 2).sum()) / (k - 1)
    sse = float(((x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + grand) ** 2).sum())
    ms_e = sse / ((n - 1) * (k - 1))
    den = ms_r + (k - 1) * ms_e + k * (ms_c - ms_e) / n
    if den > 0:
        out["icc"] = float((ms_r - ms_e) / den)
    return out



def count_metrics(
    true_bouts: Sequence[Sequence[Bout]],
    pred_bouts: Sequence[Sequence[Bout]],
    labels: Sequence[str],
    fps: Sequence[float] | float,
    video_names: Sequence[str] | None = None,
    *,
    idle: int | None = 0,
) -> dict[str, Any]:
    """Event counts and durations per video and action class.

    ``per_video`` [{video, fps, per_class: {name: {true_count, pred_count,
    true_duration_s, pred_duration_s, count_error (pred - true), count_abs_error,
    count_rel_error (abs / true; None when true_count == 0)}}}] and ``per_class``
    {name: {true_count, pred_count, true_duration_s, pred_duration_s (totals),
    count_mae (mean count_abs_error over videos), count_mean_rel_error (mean over videos
    with true_count > 0, else None), total_count_abs_error (|total pred - total true|),
    count_total_error (that over total true; None without true events), duration_total_error
    (likewise for total duration), count_agreement / duration_agreement (:func:`agreement` of
    the per-video values)}}.
    """
    names = _check_labels(labels, idle)
    n = len(true_bouts)
    if len(pred_bouts) != n:
        raise ValueError(f"true_bouts has {n} videos but pred_bouts has {len(pred_bouts)}")
    fps_l = _fps_list(fps, n)
    vids = _names_list(video_names, n)
    _check_bouts(true_bouts, "true_bouts", len(names))
    _check_bouts(pred_bouts, "pred_bouts", len(names))
    actions = _action_classes(len(names), idle)

    per_video = []
    for v in range(n):
        entry: dict[str, Any] = {"video": vids[v], "fps": fps_l[v], "per_class": {}}
        for k in actions:
            t = [b for b in true_bouts[v] if b.label == k]
            p = [b for b in pred_bouts[v] if b.label == k]
            tc, pc = len(t), len(p)
            err = pc - tc
            entry["per_class"][names[k]] = {
                "true_count": tc,
                "pred_count": pc,
                "true_duration_s": float(sum(b.end - b.start + 1 for b in t) / fps_l[v]),
                "pred_duration_s": float(sum(b.end - b.start + 1 for b in p) / fps_l[v]),
                "count_error": err,
                "count_abs_error": abs(err),
                "count_rel_error": abs(err) / tc if tc else None,
            }
        per_video.append(entry)

    per_class = {}
    for k in actions:
        rows = [pv["per_class"][names[k]] for pv in per_video]
        rel = [r["count_rel_error"] for r in rows if r["count_rel_error"] is not None]
        tc = sum(r["true_count"] for r in rows)
        pc = sum(r["pred_count"] for r in rows)
        per_class[names[k]] = {
            "true_count": tc,
            "pred_count": pc,
            "true_duration_s": float(sum(r["true_duration_s"] for r in rows)),
            "pred_duration_s": float(sum(r["pred_duration_s"] for r in rows)),
            "count_mae": float(np.mean([r["count_abs_error"] for r in rows])) if rows else None,
            "count_mean_rel_error": float(np.mean(rel)) if rel else None,
            "total_count_abs_error": abs(pc - tc),
            "count_total_error": abs(pc - tc) / tc if tc else None,
            "duration_total_error": (abs(sum(r["pred_duration_s"] for r in rows) - sum(r["true_duration_s"] for r in rows))
                                     / sum(r["true_duration_s"] for r in rows)) if tc else None,
            "count_agreement": agreement([r["true_count"] for r in rows], [r["pred_count"] for r in rows]),
            "duration_agreement": agreement([r["true_duration_s"] for r in rows], [r["pred_duration_s"] for r in rows]),
        }
    return {
        "labels": names,
        "action_labels": [names[k] for k in actions],
        "per_class": per_class,
        "per_video": per_video,
    }


# --------------------------------------------------------------------------- all


def bout_row(b: Bout, names: list[str], fps: float) -> dict[str, Any]:
    """A bout as a plain dict: label index and name, inclusive frames, start/end seconds, score."""
    return {
        "label": int(b.label),
        "name": names[b.label],
        "start": int(b.start),
        "end": int(b.end),
        "start_s": b.start / fps,
        "end_s": (b.end + 1) / fps,
        "score": float(b.score),
    }


def evaluate(
    y_true: Sequence[np.ndarray],
    probs: Sequence[np.ndarray],
    labels: Sequence[str],
    fps: Sequence[float] | float,
    video_names: Sequence[str],
    *,
    post: PostProcess | None = None,
    idle: int | None = 0,
    iou_thresholds: Sequence[float] = (0.3, 0.5, 0.7),
    hit_tolerance_s: float = 0.5,
    true_bouts: Sequence[Sequence[Bout]] | None = None,
) -> dict[str, Any]:
    """Full benchmark of per-frame class probabilities against per-frame truth.

    Predicted labels and bouts come from ``post`` (:class:`mvd.postprocess.PostProcess`, the one
    post-processor; default rules when None). True bouts are runs of ``y_true`` unless
    ``true_bouts`` is given (keeps touching annotated events of one class apart). Predicted bouts
    are scored by their mean probability.

    Returns ``labels``, ``video_names``, ``postprocess`` (the rules used), ``frame``
    (:func:`frame_metrics`), ``events`` (:func:`event_metrics`), ``counts``
    (:func:`count_metrics`), ``summary`` (flat {metric key: float} of headline scalars;
    undefined values are left out), ``pred_labels`` (per video list of int labels) and
    ``pred_bouts`` (per video list of {label, name, start, end, start_s, end_s, score}).
    """
    names = _check_labels(labels, idle)
    n = len(y_true)
    if len(probs) != n:
        raise ValueError(f"y_true has {n} videos but probs has {len(probs)}")
    vids = _names_list(video_names, n)
    fps_l = _fps_list(fps, n)
    keys = [metric_key(x) for x in names]
    if len(set(keys)) != len(keys):
        raise ValueError(f"class names {names} collide as metric keys {keys}; rename a class")
    if post is None:
        post = PostProcess.default(names, 0 if idle is None else idle)
    if post.labels != names:
        raise ValueError(f"post-processing is for classes {post.labels}, the benchmark for {names}")
    actions = _action_classes(len(names), idle)
    if true_bouts is not None and len(true_bouts) != n:
        raise ValueError(f"true_bouts has {len(true_bouts)} videos for {n} videos")

    y_pred, t_bouts, p_bouts = [], [], []
    for v in range(n):
        t = np.asarray(y_true[v]).astype(np.int64, copy=False).ravel()
        p = np.asarray(probs[v], dtype=np.float64)
        if p.ndim != 2 or p.shape != (t.size, len(names)):
            raise ValueError(f"video {vids[v]!r}: probs shape {p.shape} does not match "
                             f"({t.size} frames, {len(names)} classes)")
        out = post.apply(p, fps_l[v])
        y_pred.append(out.labels)
        t_bouts.append(true_bouts[v] if true_bouts is not None
                       else bouts_from_labels(t, include=actions))
        p_bouts.append([b for b in out.bouts if b.label in actions])

    frame = frame_metrics(y_true, y_pred, names, idle=idle)
    events = event_metrics(t_bouts, p_bouts, names, fps_l, iou_thresholds=iou_thresholds,
                           hit_tolerance_s=hit_tolerance_s, idle=idle, video_names=vids)
    counts = count_metrics(t_bouts, p_bouts, names, fps_l, vids, idle=idle)

    summary: dict[str, float] = {}

    def put(key: str, value: Any) -> None:
        if value is not None:
            summary[key] = float(value)

    put("frame_macro_f1", frame["macro"]["f1"])
    put("frame_weighted_f1", frame["weighted"]["f1"])
    put("frame_accuracy", frame["accuracy"])
    put("event_hit_macro_f1", events["macro"]["hit"]["f1"])
    for k in range(len(names)):
        put(f"frame_f1/{keys[k]}", frame["per_class"][names[k]]["f1"])
    for k in actions:
        ev = events["per_class"][names[k]]
        put(f"frame_precision/{keys[k]}", frame["per_class"][names[k]]["precision"])
        put(f"frame_recall/{keys[k]}", frame["per_class"][names[k]]["recall"])
        put(f"event_hit_recall/{keys[k]}", ev["hit"]["recall"])
        put(f"event_hit_precision/{keys[k]}", ev["hit"]["precision"])
        put(f"event_hit_f1/{keys[k]}", ev["hit"]["f1"])
        for crit in events["criteria"][:-1]:
            put(f"event_{crit.replace('@', '')}_f1/{keys[k]}", ev[crit]["f1"])
        c = counts["per_class"][names[k]]
        put(f"count_mae/{keys[k]}", c["count_mae"])
        put(f"count_total_error/{keys[k]}", c["count_total_error"])
        put(f"count_true/{keys[k]}", c["true_count"])
        put(f"count_pred/{keys[k]}", c["pred_count"])
        put(f"count_icc/{keys[k]}", c["count_agreement"]["icc"])
        put(f"count_pearson_r/{keys[k]}", c["count_agreement"]["pearson_r"])
        put(f"count_bias/{keys[k]}", c["count_agreement"]["bias"])
        put(f"duration_total_error/{keys[k]}", c["duration_total_error"])

    return {
        "labels": names,
        "video_names": vids,
        "postprocess": post.to_dict(),
        "frame": frame,
        "events": events,
        "counts": counts,
        "summary": summary,
        "pred_labels": [p.tolist() for p in y_pred],
        "pred_bouts": [[bout_row(b, names, fps_l[v]) for b in p_bouts[v]] for v in range(n)],
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
