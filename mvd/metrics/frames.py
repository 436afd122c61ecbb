"""Per-frame precision/recall/F1 with TP/FP/FN pooled over videos."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._common import _action_classes, _check_labels, _div, prf


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
