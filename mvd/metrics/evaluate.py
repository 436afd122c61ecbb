"""The whole benchmark of per-frame probabilities (through the one post-processor) and its flat
summary: headline scalars under metric keys (``frame_f1/<class>``, ``count_total_error/<class>``, ...)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from mvd.bouts import Bout, bouts_from_labels
from mvd.labels import idle_index
from mvd.postprocess import PostProcess

from ._common import _action_classes, _check_labels, _fps_list, _names_list
from .counts import count_metrics
from .events import event_metrics
from .frames import frame_metrics

_KEY_SPACE = re.compile(r"\s+")
_KEY_BAD = re.compile(r"[^A-Za-z0-9_.\-]")


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


def summary_keys(labels: Sequence[str], iou_thresholds: Sequence[float] = (0.3, 0.5, 0.7)) -> set[str]:
    """Every key :func:`evaluate`'s summary can hold for this label map (and the benchmark's
    ``event_overlap_recall/<class>``): what ``register.primary_metric`` may name."""
    names = [str(x) for x in labels]
    idle = idle_index(names)
    keys = {"frame_macro_f1", "frame_weighted_f1", "frame_accuracy", "event_hit_macro_f1"}
    keys |= {f"frame_f1/{metric_key(n)}" for n in names}
    per_action = ["frame_precision", "frame_recall", "event_hit_recall", "event_hit_precision", "event_hit_f1",
                  "count_mae", "count_total_error", "count_true", "count_pred", "count_icc", "count_pearson_r",
                  "count_bias", "duration_total_error", "event_overlap_recall"]
    per_action += [f"event_iou{float(t):g}_f1" for t in iou_thresholds]
    keys |= {f"{m}/{metric_key(n)}" for k, n in enumerate(names) if k != idle for m in per_action}
    return keys
