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

from ._common import average_precision, prf
from .counts import agreement, count_metrics
from .evaluate import bout_row, evaluate, metric_key, summary_keys
from .events import event_metrics, interval_iou, match_hit, match_iou, overlap_recall
from .frames import frame_metrics

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
    "summary_keys",
    "overlap_recall",
]
