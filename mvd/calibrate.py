"""Fit the post-processing rules of each action class on held-out validation videos.

After training, the sliding window labels whole validation videos (never test videos); for
every action class a small grid of rules (:class:`mvd.postprocess.ClassRule`: threshold,
smoothing, gap filling, minimum duration) is tried on those videos. Among the rules whose event
F1 is within one validation event's worth of the best (1 / the class's validation events), the
lowest count error (|Σpred − Σtrue| / Σtrue) wins, then event F1, then frame F1; among rules that
tie, the middle one (:func:`_robust_best`). Event F1 here
is the mean of the F1 under the hit rule (a prediction near an event counts it) and the F1 at
IoU ≥ 0.5 (a prediction that also spans the event): the hit rule alone rewards bouts smeared
over seconds, which count right and time wrong. A class whose readout is its count alone (head
twitches in an HTR assay) may be fitted to the hit-rule F1 instead (objective ``counts``): its
bouts then count better and are timed worse. The grid is drawn from the class's own annotated bouts on the validation videos
(short-end bout duration, typical gap), so the same code fits twitches of 0.1 s and grooming
bouts of minutes, at any frame rate. Every smoothing, gap and duration is tried with one threshold
and with hysteresis: each pair of a lower ``threshold`` (where a bout starts and ends) and a
higher ``peak_threshold`` (which a bout must reach). The two work together: the rule that is best
with one threshold often leans on smoothing or a minimum duration to drop idle blips, which drops
the shortest events too, while a peak drops the blips and keeps them. Values pinned in the
configuration are kept as given and the rest are fitted around them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .bouts import Bout
from .config import OBJECTIVES
from .labels import idle_index
from .metrics import match_hit, match_iou
from .postprocess import ClassRule, PostProcess, class_runs, runs, seconds_to_frames, smooth

__all__ = ["ValVideo", "fit_postprocess", "MIN_EVENTS"]

logger = logging.getLogger(__name__)

MIN_EVENTS = 3  # fewer annotated events of a class on the validation videos: keep its default rule
THRESHOLDS = tuple(round(float(x), 2) for x in np.arange(0.05, 0.96, 0.05))
SMOOTH_FRACTIONS = (0.0, 0.25, 0.5, 1.0)  # × median bout duration
# × short-end (10th percentile) bout duration. At most half of it: predicted bouts of the shortest events
# are often shorter than their annotation, and new videos hold events shorter than the validation
# videos' 10th percentile; a minimum at that percentile would drop them however sure the model is.
MIN_DURATION_FRACTIONS = (0.0, 0.1, 0.2, 0.35, 0.5)
GAP_FRACTIONS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)  # × min(median bout duration, short-end gap)
RULE_KEYS = ("threshold", "smooth_s", "min_duration_s", "merge_gap_s", "peak_threshold")


@dataclass
class ValVideo:
    """One validation video: per-frame probabilities, its annotated bouts, its frame rate."""

    name: str
    probs: np.ndarray  # (N, C)
    truth: list[Bout]  # annotated bouts of the action classes, inclusive
    fps: float


def _grid_seconds(fractions: Sequence[float], ref_s: float, fps: float) -> list[float]:
    """Distinct durations (in seconds, whole frames at ``fps``) for ``fractions`` of ``ref_s``."""
    frames = sorted({seconds_to_frames(f * ref_s, fps) for f in fractions})
    return [f / fps for f in frames]


def rule_grid(videos: Sequence[ValVideo], k: int) -> dict[str, list[float]]:
    """The values tried per rule key for class ``k``, drawn from its annotated bouts on ``videos``:
    smoothing from the median duration, minimum duration from the short end (10th percentile),
    gap from the shorter of the median duration and the short-end gap between bouts."""
    fps = float(np.median([v.fps for v in videos]))
    dur = np.array([(b.end - b.start + 1) / v.fps for v in videos for b in v.truth if b.label == k])
    gaps = []
    for v in videos:
        own = sorted((b for b in v.truth if b.label == k), key=lambda b: b.start)
        gaps += [(b2.start - b1.end - 1) / v.fps for b1, b2 in zip(own, own[1:])]
    d_med, d_short = float(np.median(dur)), float(np.percentile(dur, 10))
    g_ref = min(d_med, float(np.percentile(gaps, 10))) if gaps else d_med
    return {
        "threshold": list(THRESHOLDS),
        "smooth_s": _grid_seconds(SMOOTH_FRACTIONS, d_med, fps),
        "min_duration_s": _grid_seconds(MIN_DURATION_FRACTIONS, d_short, fps),
        "merge_gap_s": _grid_seconds(GAP_FRACTIONS, g_ref, fps),
    }


EVENT_IOU = 0.5  # the IoU criterion averaged with the hit rule into the event F1 that is maximised


class _Score(NamedTuple):
    event_f1: float  # mean of hit_f1 and iou_f1
    hit_f1: float
    iou_f1: float
    count_error: float
    frame_f1: float
    num_pred: int
    num_true: int


def _score_class(videos: Sequence[ValVideo], k: int, rule: ClassRule, tol_s: float, cache: dict) -> _Score:
    """The validation figures of ``rule`` for class ``k``. ``cache`` keeps what many rules share:
    each video's smoothed probability, its runs over each threshold and its annotated frames."""
    tp = tp_iou = n_pred = n_true = 0
    f_tp = f_pred = f_true = 0
    for v, vid in enumerate(videos):
        fps = vid.fps
        width = seconds_to_frames(rule.smooth_s, fps) | 1
        if (v, width) not in cache:
            cache[v, width] = (smooth(vid.probs[:, k], width), np.concatenate(([0.0], np.cumsum(vid.probs[:, k]))))
        ps, csum = cache[v, width]
        if (v, width, rule.threshold) not in cache:
            cache[v, width, rule.threshold] = runs(ps >= rule.threshold)
        if ("truth", v) not in cache:
            truths = [b for b in vid.truth if b.label == k]
            tmask = np.zeros(len(ps), bool)
            for b in truths:
                tmask[b.start:b.end + 1] = True
            cache["truth", v] = (truths, np.concatenate(([0], np.cumsum(tmask))))
        truths, ctrue = cache["truth", v]
        s, e = class_runs(ps, fps, rule, base=cache[v, width, rule.threshold])
        found = ("match", v, s.tobytes(), e.tobytes())  # many rules give the same bouts: match them once
        if found not in cache:
            preds = [Bout(k, int(a), int(b), float((csum[b + 1] - csum[a]) / (b - a + 1))) for a, b in zip(s, e)]
            cache[found] = (sum(match_hit(preds, truths, tol_s * fps)), sum(match_iou(preds, truths, EVENT_IOU)))
        hit, hit_iou = cache[found]
        tp += hit
        tp_iou += hit_iou
        n_pred += len(s)
        n_true += len(truths)
        # frame overlap of the predicted runs (disjoint) with the annotated frames
        f_tp += int((ctrue[e + 1] - ctrue[s]).sum())
        f_pred += int((e - s + 1).sum())
        f_true += int(ctrue[-1])
    f1 = 2 * tp / (n_pred + n_true) if n_pred + n_true else 0.0
    iou_f1 = 2 * tp_iou / (n_pred + n_true) if n_pred + n_true else 0.0
    count_err = abs(n_pred - n_true) / n_true if n_true else float(n_pred)
    frame_f1 = 2 * f_tp / (f_pred + f_true) if f_pred + f_true else 0.0
    return _Score((f1 + iou_f1) / 2, f1, iou_f1, count_err, frame_f1, n_pred, n_true)


def _key(sc: _Score, objective: str) -> tuple[float, float, float]:
    """The figures a rule is ranked by (:func:`_robust_best` says in which order): the objective's F1
    (``events``: the mean of the hit-rule and IoU F1; ``counts``: the hit-rule F1 alone), the negated
    count error and frame F1."""
    primary = sc.hit_f1 if objective == "counts" else sc.event_f1
    return round(primary, 9), -round(sc.count_error, 9), round(sc.frame_f1, 9)


FRAME_F1_TIE = 0.005  # frame F1 this close to the best is a tie: a few frames of a few videos


def _robust_best(scores: Mapping[ClassRule, tuple[float, float, float]], event_tie: float = 0.0) -> ClassRule:
    """The best-scoring rule, chosen away from the edges of what worked on the validation videos.

    Rules whose objective F1 is within ``event_tie`` of the best (one validation event's worth, see
    :func:`fit_postprocess`) are near the best, and among them the lowest count error ranks first, then
    the objective F1: an F1 one found or missed event apart is not evidence on a few dozen events, while
    the count is what a lab reads. Rules tie when their count error and objective F1 equal the best
    near rule's and their frame F1 is within ``FRAME_F1_TIE`` of it (a frame F1 a thousandth higher is a
    few frames, not evidence). Among the
    tied rules, one threshold is kept unless only hysteresis pairs tie, and the smoothing / gap /
    duration / peak setting for which most thresholds tie (the widest plateau) wins, with the middle
    threshold of its plateau; among equally wide settings, the one nearest the middle of them in
    smoothing, gap, duration and peak. When classes separate cleanly on the validation videos many
    rules score alike, and the least processing among them (no gap filled, no minimum duration)
    fragments bouts on new videos that the middle of the plateau keeps whole."""
    top_f1 = max(sc[0] for sc in scores.values())
    near = {r: sc for r, sc in scores.items() if sc[0] >= round(top_f1 - event_tie, 9)}
    top = max((sc[1], sc[0], sc[2]) for sc in near.values())
    best = [r for r, sc in near.items() if (sc[1], sc[0]) == top[:2] and sc[2] >= top[2] - FRAME_F1_TIE]
    if any(r.peak_threshold <= r.threshold for r in best):  # hysteresis only where it scores better
        best = [r for r in best if r.peak_threshold <= r.threshold]
    plateaus: dict[tuple[float, ...], list[float]] = {}
    for r in best:
        plateaus.setdefault((r.smooth_s, r.merge_gap_s, r.min_duration_s, r.peak_threshold), []).append(r.threshold)
    widest = max(len(t) for t in plateaus.values())
    tied = sorted(setting for setting, thrs in plateaus.items() if len(thrs) == widest)
    dims = range(len(tied[0]))
    values = [sorted({setting[d] for setting in tied}) for d in dims]
    centre = [float(np.median([values[d].index(setting[d]) for setting in tied])) for d in dims]

    def off_centre(setting: tuple[float, ...]) -> float:
        return sum(abs(values[d].index(setting[d]) - centre[d]) / len(values[d]) for d in dims)

    sm, gap, mn, peak = min(tied, key=lambda setting: (off_centre(setting), setting))
    thrs = sorted(plateaus[sm, gap, mn, peak])
    return ClassRule(threshold=thrs[(len(thrs) - 1) // 2], smooth_s=sm, min_duration_s=mn, merge_gap_s=gap,
                     peak_threshold=peak)


def fit_postprocess(
    videos: Sequence[ValVideo],
    labels: Sequence[str],
    *,
    idle: int | None = None,
    hit_tolerance_s: float = 0.5,
    pinned: Mapping[str, Mapping[str, float]] | None = None,
    min_events: int = MIN_EVENTS,
    objectives: Mapping[str, str] | None = None,
    tie_one_event: bool = True,
) -> tuple[PostProcess, dict[str, Any]]:
    """Fitted :class:`PostProcess` and a report ``{class: {status, reason?, rule, val figures}}``.

    ``pinned`` maps class -> {rule key: value} fixed by configuration. A class with fewer than
    ``min_events`` annotated events on the validation videos keeps its default (or pinned) rule,
    and the report says why. ``objectives`` maps class -> ``events`` (the default) or ``counts``
    (see :func:`_key`). ``tie_one_event`` off ranks by the objective F1 alone, count error breaking
    only exact ties.
    """
    labels = list(labels)
    idle = idle_index(labels) if idle is None else idle
    pinned = {c: dict(v) for c, v in (pinned or {}).items()}
    rules: dict[str, ClassRule] = {}
    source: dict[str, str] = {}
    report: dict[str, Any] = {}
    actions = [(k, n) for k, n in enumerate(labels) if k != idle]
    for k, name in actions:
        pin = pinned.get(name, {})
        objective = (objectives or {}).get(name, "events")
        if objective not in OBJECTIVES:
            raise ValueError(f"calibration objective of {name!r} must be one of {OBJECTIVES}, got {objective!r}")
        base = ClassRule(**{key: float(v) for key, v in pin.items()})
        truths = [b for v in videos for b in v.truth if b.label == k]
        if len(truths) < min_events:
            reason = (f"{len(truths)} annotated {name!r} events on {len(videos)} validation video(s); "
                      f"at least {min_events} are needed to fit its rule")
            logger.warning("calibration: keeping the %s rule of %r: %s", "pinned" if pin else "default", name, reason)
            rules[name] = base
            source[name] = "config" if pin else "default"
            report[name] = {"status": "default", "reason": reason, "val_events": len(truths)}
            continue
        grid = rule_grid(videos, k)
        for key, value in pin.items():
            if key in grid:
                grid[key] = [float(value)]
        cache: dict = {}
        scores: dict[ClassRule, tuple[float, float, float]] = {}
        for sm in grid["smooth_s"]:
            for thr in grid["threshold"]:
                # one threshold (peak 0), or hysteresis: every higher peak a bout must reach
                peaks = ([float(pin["peak_threshold"])] if "peak_threshold" in pin
                         else [0.0] + [hi for hi in THRESHOLDS if hi > thr])
                for peak in peaks:
                    for gap in grid["merge_gap_s"]:
                        for mn in grid["min_duration_s"]:
                            rule = ClassRule(threshold=thr, smooth_s=sm, min_duration_s=mn, merge_gap_s=gap,
                                             peak_threshold=peak)
                            scores[rule] = _key(_score_class(videos, k, rule, hit_tolerance_s, cache), objective)
        event_tie = 1.0 / len(truths) if tie_one_event else 0.0
        best = _robust_best(scores, event_tie=event_tie)
        sc = _score_class(videos, k, best, hit_tolerance_s, cache)
        rules[name] = best
        source[name] = "config" if set(pin) == set(RULE_KEYS) else "fitted"
        report[name] = {"status": "fitted", "objective": objective, "val_events": sc.num_true, "val_pred_events": sc.num_pred,
                        "val_event_f1": sc.event_f1, "val_event_hit_f1": sc.hit_f1,
                        f"val_event_iou{EVENT_IOU:g}_f1": sc.iou_f1, "val_count_total_error": sc.count_error,
                        "val_frame_f1": sc.frame_f1,
                        "pinned": sorted(pin), "grid_size": len(scores), "event_tie": event_tie,
                        "hysteresis": best.peak_threshold > best.threshold}
        logger.info("calibration: %s -> %s (validation: hit F1 %.3f, IoU≥%g F1 %.3f, count error %.3f, frame F1 %.3f)",
                    name, best, sc.hit_f1, EVENT_IOU, sc.iou_f1, sc.count_error, sc.frame_f1)
    return PostProcess(labels, rules, idle, "threshold", source), report
