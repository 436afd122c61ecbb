"""Event counts and durations per video and class, and their agreement with the annotation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mvd.bouts import Bout

from ._common import (
    _action_classes,
    _check_bout_inputs,
)


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
    names, n, fps_l, vids = _check_bout_inputs(true_bouts, pred_bouts, labels, fps, video_names, idle)
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
