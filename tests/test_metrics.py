"""Tests for mvd.metrics against hand-worked cases and brute-force recomputation."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from mvd.bouts import Bout
from mvd.postprocess import ClassRule, PostProcess
from mvd.metrics import (
    average_precision,
    count_metrics,
    evaluate,
    event_metrics,
    frame_metrics,
    interval_iou,
    match_hit,
    match_iou,
    metric_key,
)

LABELS = ["idle", "Self-Grooming", "Head/Body TWITCH"]
IDLE, GROOM, TWITCH = 0, 1, 2
GROOM_NAME = LABELS[GROOM]


def _assert_plain_json(obj, path="result"):
    """Every leaf is a builtin type (numpy scalars would slip through json for floats)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            assert type(k) is str, f"{path}: key {k!r} is {type(k)}"
            _assert_plain_json(v, f"{path}[{k!r}]")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _assert_plain_json(v, f"{path}[{i}]")
    else:
        assert obj is None or type(obj) in (int, float, str, bool), f"{path}: {type(obj)}"
    json.dumps(obj, allow_nan=False)


# =========================================================================== frames

# Video A: true [0,0,1,1,1,2,2,0]  pred [0,1,1,1,0,2,0,0]
# Video B: true [1,1,0,2,0]        pred [1,0,0,2,2]
# Pooled pairs (truth, pred):
#   A: (0,0)(0,1)(1,1)(1,1)(1,0)(2,2)(2,0)(0,0)   B: (1,1)(1,0)(0,0)(2,2)(0,2)
# Confusion (rows truth): [[3,1,1],[2,3,0],[1,0,2]]
# idle:   tp 3, fp 3 (2+1), fn 2 -> P .5,  R .6,  F1 .6/1.1
# groom:  tp 3, fp 1,       fn 2 -> P .75, R .6,  F1 .9/1.35 = 2/3
# twitch: tp 2, fp 1,       fn 1 -> P 2/3, R 2/3, F1 2/3
# macro (actions):  P (.75+2/3)/2, R (.6+2/3)/2, F1 2/3
# weighted (5, 3):  P (5*.75+3*2/3)/8 = .71875, R (3+2)/8 = .625, F1 2/3
# accuracy 8/13.  (Per-video averaging would give groom P (2/3+1)/2 != .75.)
Y_TRUE = [np.array([0, 0, 1, 1, 1, 2, 2, 0]), np.array([1, 1, 0, 2, 0])]
Y_PRED = [np.array([0, 1, 1, 1, 0, 2, 0, 0]), np.array([1, 0, 0, 2, 2])]


def test_frame_metrics_pooled_hand_worked():
    r = frame_metrics(Y_TRUE, Y_PRED, LABELS)
    assert r["confusion"] == [[3, 1, 1], [2, 3, 0], [1, 0, 2]]
    pc = r["per_class"]
    expected = {
        # name: (tp, fp, fn, support, P, R, F1)
        "idle": (3, 3, 2, 5, 0.5, 0.6, 0.6 / 1.1),
        "Self-Grooming": (3, 1, 2, 5, 0.75, 0.6, 2 / 3),
        "Head/Body TWITCH": (2, 1, 1, 3, 2 / 3, 2 / 3, 2 / 3),
    }
    for name, (tp, fp, fn, sup, p, rc, f1) in expected.items():
        assert (pc[name]["tp"], pc[name]["fp"], pc[name]["fn"], pc[name]["support"]) == (tp, fp, fn, sup)
        assert pc[name]["precision"] == pytest.approx(p)
        assert pc[name]["recall"] == pytest.approx(rc)
        assert pc[name]["f1"] == pytest.approx(f1)
    assert r["macro"]["precision"] == pytest.approx((0.75 + 2 / 3) / 2)
    assert r["macro"]["recall"] == pytest.approx((0.6 + 2 / 3) / 2)
    assert r["macro"]["f1"] == pytest.approx(2 / 3)
    assert r["weighted"]["precision"] == pytest.approx(0.71875)
    assert r["weighted"]["recall"] == pytest.approx(0.625)
    assert r["weighted"]["f1"] == pytest.approx(2 / 3)
    assert r["accuracy"] == pytest.approx(8 / 13)
    assert r["num_frames"] == 13
    assert r["action_labels"] == ["Self-Grooming", "Head/Body TWITCH"]
    _assert_plain_json(r)


def test_frame_metrics_idle_reported_separately_and_excluded_from_macro():
    r = frame_metrics(Y_TRUE, Y_PRED, LABELS)
    assert r["idle"] == r["per_class"]["idle"]
    assert r["per_class"]["idle"]["is_idle"] is True
    assert r["per_class"]["Self-Grooming"]["is_idle"] is False
    # Same data with no idle class: idle's F1 (.6/1.1) joins the macro.
    r_all = frame_metrics(Y_TRUE, Y_PRED, LABELS, idle=None)
    assert r_all["idle"] is None
    assert r_all["macro"]["f1"] == pytest.approx((0.6 / 1.1 + 2 / 3 + 2 / 3) / 3)
    # weighted with idle: supports 5, 5, 3 -> (5*.6/1.1 + 5*2/3 + 3*2/3) / 13
    assert r_all["weighted"]["f1"] == pytest.approx((5 * 0.6 / 1.1 + 8 * 2 / 3) / 13)


def test_frame_metrics_zero_support_conventions():
    labels = ["idle", "a", "b", "c"]
    # a: tp 1, fn 1 -> P 1, R .5, F1 2/3
    # b: never true, never predicted -> None, excluded from macro
    # c: never true, predicted once -> P 0 (0/1), R 0 (by convention), F1 0, kept in macro
    r = frame_metrics([np.array([0, 1, 1, 0])], [np.array([0, 1, 0, 3])], labels)
    pc = r["per_class"]
    assert pc["b"]["precision"] is None and pc["b"]["recall"] is None and pc["b"]["f1"] is None
    assert (pc["c"]["precision"], pc["c"]["recall"], pc["c"]["f1"]) == (0.0, 0.0, 0.0)
    assert r["macro"]["precision"] == pytest.approx((1.0 + 0.0) / 2)
    assert r["macro"]["recall"] == pytest.approx((0.5 + 0.0) / 2)
    assert r["macro"]["f1"] == pytest.approx((2 / 3 + 0.0) / 2)
    # weighted: only "a" has support
    assert r["weighted"]["f1"] == pytest.approx(2 / 3)
    _assert_plain_json(r)


def test_frame_metrics_class_with_support_but_no_predictions_has_precision_zero():
    r = frame_metrics([np.array([0, 1, 1])], [np.array([0, 0, 0])], ["idle", "a"])
    a = r["per_class"]["a"]
    assert (a["precision"], a["recall"], a["f1"]) == (0.0, 0.0, 0.0)
    assert r["macro"]["f1"] == 0.0


def test_frame_metrics_nothing_defined():
    r = frame_metrics([np.array([0, 0])], [np.array([0, 0])], ["idle", "a"])
    assert r["macro"] == {"precision": None, "recall": None, "f1": None}
    assert r["weighted"] == {"precision": None, "recall": None, "f1": None}
    assert r["accuracy"] == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frame_metrics_against_bruteforce(seed):
    rng = np.random.default_rng(seed)
    c = 4
    y_true = [rng.integers(0, c, size=n) for n in (30, 7, 51)]
    y_pred = [rng.integers(0, c, size=t.size) for t in y_true]
    labels = [f"c{i}" for i in range(c)]
    r = frame_metrics(y_true, y_pred, labels)
    pairs = [(int(t), int(p)) for tv, pv in zip(y_true, y_pred) for t, p in zip(tv, pv)]
    f1s = {}
    for k in range(c):
        tp = sum(1 for t, p in pairs if t == k and p == k)
        fp = sum(1 for t, p in pairs if t != k and p == k)
        fn = sum(1 for t, p in pairs if t == k and p != k)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1s[k] = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        e = r["per_class"][f"c{k}"]
        assert (e["tp"], e["fp"], e["fn"]) == (tp, fp, fn)
        assert e["f1"] == pytest.approx(f1s[k])
        for t in range(c):
            assert r["confusion"][t][k] == sum(1 for a, b in pairs if a == t and b == k)
    assert r["macro"]["f1"] == pytest.approx(np.mean([f1s[k] for k in range(1, c)]))
    assert r["accuracy"] == pytest.approx(sum(t == p for t, p in pairs) / len(pairs))


def test_frame_metrics_errors_name_the_video():
    with pytest.raises(ValueError, match="video #1"):
        frame_metrics([np.zeros(3, int), np.zeros(4, int)], [np.zeros(3, int), np.zeros(2, int)], LABELS)
    with pytest.raises(ValueError, match="video #0 frame 2"):
        frame_metrics([np.array([0, 1, 3])], [np.array([0, 1, 1])], LABELS)


# =========================================================================== IoU / AP


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ((5, 5), (5, 5), 1.0),          # identical 1-frame bouts (inclusive end)
        ((5, 5), (6, 6), 0.0),          # adjacent, no shared frame
        ((0, 9), (5, 14), 5 / 15),      # shared 5..9 = 5 frames, union 0..14 = 15
        ((0, 9), (9, 9), 1 / 10),
    ],
)
def test_interval_iou_inclusive(a, b, expected):
    assert interval_iou(*a, *b) == pytest.approx(expected)


def test_interval_iou_against_frame_sets():
    rng = np.random.default_rng(3)
    for _ in range(200):
        s1, s2 = rng.integers(0, 30, size=2)
        e1, e2 = s1 + rng.integers(0, 10), s2 + rng.integers(0, 10)
        f1, f2 = set(range(s1, e1 + 1)), set(range(s2, e2 + 1))
        assert interval_iou(s1, e1, s2, e2) == pytest.approx(len(f1 & f2) / len(f1 | f2))


@pytest.mark.parametrize(
    "scores, hits, num_true, expected",
    [
        # ranked TP FP TP FP, 3 truths: recall 1/3,1/3,2/3,2/3; precision 1,.5,2/3,.5
        # interpolated: 1/3*1 + 1/3*2/3 = 5/9
        ([0.9, 0.8, 0.7, 0.6], [True, False, True, False], 3, 5 / 9),
        # same list given out of order -> sorted by score first
        ([0.6, 0.9, 0.7, 0.8], [False, True, True, False], 3, 5 / 9),
        # FP TP TP, 2 truths: recall 0,.5,1; precision 0,.5,2/3 -> .5*2/3 + .5*2/3
        ([0.9, 0.8, 0.7], [False, True, True], 2, 2 / 3),
        ([0.9], [True], 4, 0.25),
        ([0.9, 0.8], [True, True], 2, 1.0),
        ([0.9], [False], 0, 0.0),     # predictions but nothing to find
        ([], [], 0, None),            # undefined
        ([], [], 2, 0.0),             # nothing predicted
    ],
)
def test_average_precision_hand_worked(scores, hits, num_true, expected):
    got = average_precision(scores, hits, num_true)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


# Greedy-order case. Truths T1=[0,9], T2=[6,15]; preds P1=[4,12], P2=[7,16].
#   P1-T1: shared 4..9 = 6, union 10+9-6 = 13 -> .4615   P1-T2: 6..12 = 7, union 12 -> .5833
#   P2-T1: 7..9 = 3, union 17 -> .176                    P2-T2: 7..15 = 9, union 11 -> .818
# P1 first: P1 takes T2 (its best); P2 is left with T1 (.176) -> FP at every threshold
#   (at .7 P1 has nothing >= .7 and P2 takes T2).
# P2 first: P2 takes T2; P1 takes T1 when thr <= .4615.
T_GREEDY = [Bout(TWITCH, 0, 9), Bout(TWITCH, 6, 15)]


@pytest.mark.parametrize(
    "s1, s2, thr, hits, ap",
    [
        (0.9, 0.8, 0.3, [True, False], 0.5),    # ranked TP FP, 2 truths: .5*1
        (0.9, 0.8, 0.5, [True, False], 0.5),
        (0.9, 0.8, 0.7, [False, True], 0.25),   # ranked FP TP: .5*.5
        (0.8, 0.9, 0.3, [True, True], 1.0),
        (0.8, 0.9, 0.5, [False, True], 0.5),    # ranked (P2) TP, (P1) FP
        (0.8, 0.9, 0.7, [False, True], 0.5),
    ],
)
def test_iou_matching_greedy_by_score(s1, s2, thr, hits, ap):
    preds = [Bout(TWITCH, 4, 12, s1), Bout(TWITCH, 7, 16, s2)]
    assert match_iou(preds, T_GREEDY, thr) == hits
    r = event_metrics([T_GREEDY], [preds], LABELS, 10.0, iou_thresholds=(thr,))
    e = r["per_class"]["Head/Body TWITCH"][f"iou@{thr:g}"]
    tp = sum(hits)
    assert (e["tp"], e["fp"], e["fn"]) == (tp, 2 - tp, 2 - tp)
    assert e["precision"] == pytest.approx(tp / 2)
    assert e["recall"] == pytest.approx(tp / 2)
    assert e["ap"] == pytest.approx(ap)


def test_event_metrics_default_thresholds_keys_and_grooming_empty():
    preds = [Bout(TWITCH, 4, 12, 0.9), Bout(TWITCH, 7, 16, 0.8)]
    r = event_metrics([T_GREEDY], [preds], LABELS, 10.0)
    assert r["criteria"] == ["iou@0.3", "iou@0.5", "iou@0.7", "hit"]
    assert set(r["per_class"]) == {"Self-Grooming", "Head/Body TWITCH"}  # idle excluded
    tw = r["per_class"]["Head/Body TWITCH"]
    assert [tw[c]["tp"] for c in r["criteria"][:3]] == [1, 1, 1]
    # Hit rule: each pred overlaps both truths. P1 (centre 8): T1 centre 4.5 is 3.5 away,
    # T2 centre 10.5 is 2.5 away -> T2; P2 (centre 11.5) overlaps T1 (7..9) -> T1. 2 TP.
    assert tw["hit"]["tp"] == 2 and tw["hit"]["f1"] == 1.0
    groom = r["per_class"]["Self-Grooming"]
    assert groom["num_true"] == 0 and groom["hit"]["f1"] is None and groom["hit"]["ap"] is None
    # macro over defined classes = twitch alone
    assert r["macro"]["iou@0.5"]["f1"] == pytest.approx(0.5)
    _assert_plain_json(r)


def test_event_ap_is_pooled_over_videos():
    # video 0: truth [10,12]; pred [10,12] .6 (TP)
    # video 1: truth [50,52]; pred [0,2] .9 (FP, far), pred [50,52] .5 (TP)
    # pooled ranking .9 FP, .6 TP, .5 TP with 2 truths -> AP 2/3
    # (mean of per-video APs would be (1 + .5)/2 = .75)
    truth = [[Bout(TWITCH, 10, 12)], [Bout(TWITCH, 50, 52)]]
    pred = [[Bout(TWITCH, 10, 12, 0.6)], [Bout(TWITCH, 0, 2, 0.9), Bout(TWITCH, 50, 52, 0.5)]]
    r = event_metrics(truth, pred, LABELS, [10.0, 10.0], video_names=["a", "b"])
    e = r["per_class"]["Head/Body TWITCH"]["iou@0.5"]
    assert e["ap"] == pytest.approx(2 / 3)
    assert (e["tp"], e["fp"], e["fn"]) == (2, 1, 0)
    pv = r["per_video"]
    assert [v["video"] for v in pv] == ["a", "b"]
    assert pv[0]["per_class"]["Head/Body TWITCH"]["iou@0.5"]["ap"] == pytest.approx(1.0)
    assert pv[1]["per_class"]["Head/Body TWITCH"]["iou@0.5"]["ap"] == pytest.approx(0.5)
    assert pv[1]["per_class"]["Head/Body TWITCH"]["iou@0.5"]["precision"] == pytest.approx(0.5)


def test_matches_do_not_cross_videos():
    # the same interval in another video is not a match
    truth = [[Bout(TWITCH, 10, 12)], []]
    pred = [[], [Bout(TWITCH, 10, 12, 0.9)]]
    r = event_metrics(truth, pred, LABELS, 10.0)
    e = r["per_class"]["Head/Body TWITCH"]
    for crit in ("iou@0.3", "hit"):
        assert (e[crit]["tp"], e[crit]["fp"], e[crit]["fn"]) == (0, 1, 1)


# =========================================================================== hit rule

# fps 10, tolerance .5 s -> 5 frames.
# T1 [10,10] c=10;  T2 [40,41] c=40.5;  T3 [70,70] c=70
# P1 [14,14] c=14: 4 from T1, no shared frame -> hit
# P2 [46,46] c=46: 5.5 from T2 -> too far
# P3 [75,75] c=75: exactly 5 from T3 -> hit (<=)
HIT_TRUTH = [Bout(TWITCH, 10, 10), Bout(TWITCH, 40, 41), Bout(TWITCH, 70, 70)]
HIT_PRED = [Bout(TWITCH, 14, 14, 0.9), Bout(TWITCH, 46, 46, 0.8), Bout(TWITCH, 75, 75, 0.7)]


@pytest.mark.parametrize(
    "fps, tol_s, hits",
    [
        (10.0, 0.5, [True, False, True]),
        (10.0, 0.3, [False, False, False]),   # 3 frames: all too far
        (20.0, 0.5, [True, True, True]),      # 10 frames: 5.5 is close enough
        (10.0, 0.0, [False, False, False]),   # zero tolerance: overlap only
    ],
)
def test_hit_rule_centre_tolerance(fps, tol_s, hits):
    assert match_hit(HIT_PRED, HIT_TRUTH, tol_s * fps) == hits
    r = event_metrics([HIT_TRUTH], [HIT_PRED], LABELS, fps, hit_tolerance_s=tol_s)
    e = r["per_class"]["Head/Body TWITCH"]
    tp = sum(hits)
    assert (e["hit"]["tp"], e["hit"]["fp"], e["hit"]["fn"]) == (tp, 3 - tp, 3 - tp)
    assert e["hit"]["recall"] == pytest.approx(tp / 3)
    assert e["iou@0.3"]["tp"] == 0  # none of them overlaps


def test_hit_rule_hand_worked_metrics():
    r = event_metrics([HIT_TRUTH], [HIT_PRED], LABELS, 10.0)
    e = r["per_class"]["Head/Body TWITCH"]["hit"]
    # 2 TP, 1 FP, 1 FN -> P = R = F1 = 2/3; ranked TP(.9) FP(.8) TP(.7), 3 truths:
    # recall 1/3,1/3,2/3, precision 1,.5,2/3 -> AP 1/3 + 1/3*2/3 = 5/9
    assert e["precision"] == pytest.approx(2 / 3)
    assert e["recall"] == pytest.approx(2 / 3)
    assert e["f1"] == pytest.approx(2 / 3)
    assert e["ap"] == pytest.approx(5 / 9)


def test_hit_rule_overlap_counts_even_with_far_centres():
    # long truth [0,99] (centre 49.5) and a 1-frame pred at 0 share frame 0
    assert match_hit([Bout(GROOM, 0, 0, 0.5)], [Bout(GROOM, 0, 99)], 5.0) == [True]


def test_hit_rule_takes_nearest_centre():
    # P (.9) at 20: eligible T1 [16,16] (4 away) and T2 [22,22] (2 away) -> takes T2.
    # Q (.8) at 23: T2 taken, T1 7 away -> FP.  (Taking T1 first would have given 2 TP.)
    truths = [Bout(TWITCH, 16, 16), Bout(TWITCH, 22, 22)]
    preds = [Bout(TWITCH, 20, 20, 0.9), Bout(TWITCH, 23, 23, 0.8)]
    assert match_hit(preds, truths, 5.0) == [True, False]


@pytest.mark.parametrize("crit", ["iou@0.3", "iou@0.5", "iou@0.7", "hit"])
def test_one_to_one_two_preds_on_one_truth(crit):
    truth = [[Bout(TWITCH, 10, 12)]]
    pred = [[Bout(TWITCH, 10, 12, 0.9), Bout(TWITCH, 10, 12, 0.8)]]
    e = event_metrics(truth, pred, LABELS, 10.0)["per_class"]["Head/Body TWITCH"][crit]
    assert (e["tp"], e["fp"], e["fn"]) == (1, 1, 0)
    assert e["precision"] == 0.5 and e["recall"] == 1.0
    assert e["ap"] == pytest.approx(1.0)  # TP ranked first reaches recall 1 at precision 1


def test_event_metrics_validation():
    with pytest.raises(ValueError, match="fps"):
        event_metrics([[]], [[]], LABELS, [10.0, 10.0])
    with pytest.raises(ValueError, match="pred_bouts of video #0"):
        event_metrics([[]], [[Bout(7, 0, 1, 0.5)]], LABELS, 10.0)


# =========================================================================== counts


def test_count_metrics_hand_worked():
    # video a @10 fps: twitch true [5,5] [20,21] [40,44] (3 events, 1+2+5 = 8 frames = .8 s)
    #                  twitch pred [5,6] [41,41]           (2 events, 3 frames = .3 s)
    #                  groom  true [60,79] (20 frames = 2 s); pred [60,69] [72,79] (18 = 1.8 s)
    # video b @25 fps: twitch true none; pred [3,3] (1 frame = .04 s)
    #                  groom  true [0,49] = pred [0,49] (50 frames = 2 s)
    true = [
        [Bout(TWITCH, 5, 5), Bout(TWITCH, 20, 21), Bout(TWITCH, 40, 44), Bout(GROOM, 60, 79)],
        [Bout(GROOM, 0, 49)],
    ]
    pred = [
        [Bout(TWITCH, 5, 6, 0.9), Bout(TWITCH, 41, 41, 0.8), Bout(GROOM, 60, 69, 0.9),
         Bout(GROOM, 72, 79, 0.7)],
        [Bout(TWITCH, 3, 3, 0.6), Bout(GROOM, 0, 49, 0.9)],
    ]
    r = count_metrics(true, pred, LABELS, [10.0, 25.0], ["a", "b"])
    a = r["per_video"][0]["per_class"]
    b = r["per_video"][1]["per_class"]
    assert r["per_video"][0]["video"] == "a"
    tw_a, tw_b = a["Head/Body TWITCH"], b["Head/Body TWITCH"]
    assert (tw_a["true_count"], tw_a["pred_count"], tw_a["count_abs_error"]) == (3, 2, 1)
    assert tw_a["count_error"] == -1
    assert tw_a["count_rel_error"] == pytest.approx(1 / 3)
    assert tw_a["true_duration_s"] == pytest.approx(0.8)
    assert tw_a["pred_duration_s"] == pytest.approx(0.3)
    assert (tw_b["true_count"], tw_b["pred_count"], tw_b["count_error"]) == (0, 1, 1)
    assert tw_b["count_rel_error"] is None            # no true events
    assert tw_b["pred_duration_s"] == pytest.approx(0.04)  # 1-frame bout = 1 frame
    gr_a = a["Self-Grooming"]
    assert (gr_a["true_count"], gr_a["pred_count"], gr_a["count_rel_error"]) == (1, 2, 1.0)
    assert b["Self-Grooming"]["count_abs_error"] == 0
    assert "idle" not in a

    tw = r["per_class"]["Head/Body TWITCH"]
    assert (tw["true_count"], tw["pred_count"], tw["total_count_abs_error"]) == (3, 3, 0)
    assert tw["count_mae"] == pytest.approx(1.0)               # (1 + 1) / 2
    assert tw["count_mean_rel_error"] == pytest.approx(1 / 3)  # only video a defined
    assert tw["true_duration_s"] == pytest.approx(0.8)
    assert tw["pred_duration_s"] == pytest.approx(0.34)
    gr = r["per_class"]["Self-Grooming"]
    assert (gr["true_count"], gr["pred_count"]) == (2, 3)
    assert gr["count_mae"] == pytest.approx(0.5)               # (1 + 0) / 2
    assert gr["count_mean_rel_error"] == pytest.approx(0.5)    # (1.0 + 0.0) / 2
    assert gr["true_duration_s"] == pytest.approx(4.0)
    assert gr["pred_duration_s"] == pytest.approx(3.8)
    _assert_plain_json(r)


# =========================================================================== evaluate


@pytest.mark.parametrize(
    "name, key",
    [
        ("Head/Body TWITCH", "Head-Body_TWITCH"),
        ("Self-Grooming", "Self-Grooming"),
        ("idle", "idle"),
        ("rear (up)", "rear__up_"),
        ("a  b", "a_b"),
    ],
)
def test_metric_key(name, key):
    assert metric_key(name) == key


def _eval_case():
    """20 frames @10 fps. Truth: twitch [5,6], groom [10,15].

    Probs: idle .8 by default; twitch .7 at 5-6; groom .8 at 10-15;
    a weak twitch (.55) at frame 2; a 1-frame groom (.9) at frame 18.
    """
    y = np.zeros(20, dtype=int)
    y[5:7] = TWITCH
    y[10:16] = GROOM
    p = np.tile([0.8, 0.1, 0.1], (20, 1))
    p[5:7] = [0.2, 0.1, 0.7]
    p[10:16] = [0.1, 0.8, 0.1]
    p[2] = [0.35, 0.1, 0.55]
    p[18] = [0.05, 0.9, 0.05]
    return y, p


def test_evaluate_without_postprocessing():
    y, p = _eval_case()
    r = evaluate([y], [p], LABELS, 10.0, ["v1.mp4"])
    # pred = truth + twitch at 2 + groom at 18
    expected = y.copy()
    expected[2] = TWITCH
    expected[18] = GROOM
    assert r["pred_labels"] == [expected.tolist()]
    s = r["summary"]
    # frames: twitch tp 2 fp 1 -> P 2/3 R 1 F1 .8; groom tp 6 fp 1 -> P 6/7 R 1 F1 12/13
    assert s["frame_f1/Head-Body_TWITCH"] == pytest.approx(0.8)
    assert s["frame_f1/Self-Grooming"] == pytest.approx(12 / 13)
    assert s["frame_macro_f1"] == pytest.approx((0.8 + 12 / 13) / 2)
    # weighted: supports twitch 2, groom 6
    assert s["frame_weighted_f1"] == pytest.approx((2 * 0.8 + 6 * 12 / 13) / 8)
    assert s["frame_accuracy"] == pytest.approx(18 / 20)
    # events twitch: preds [5,6] (.7) TP and [2,2] (.55): centre 2 vs 5.5 is within 5
    # frames but the truth is taken -> FP.  P .5 R 1 F1 2/3
    assert s["event_hit_precision/Head-Body_TWITCH"] == pytest.approx(0.5)
    assert s["event_hit_recall/Head-Body_TWITCH"] == pytest.approx(1.0)
    assert s["event_hit_f1/Head-Body_TWITCH"] == pytest.approx(2 / 3)
    assert s["event_iou0.5_f1/Self-Grooming"] == pytest.approx(2 / 3)
    assert s["count_mae/Head-Body_TWITCH"] == pytest.approx(1.0)
    assert s["count_mae/Self-Grooming"] == pytest.approx(1.0)
    # predicted bouts carry mean-prob scores and inclusive times
    tw = [b for b in r["pred_bouts"][0] if b["label"] == TWITCH]
    assert [(b["start"], b["end"]) for b in tw] == [(2, 2), (5, 6)]
    assert tw[0]["score"] == pytest.approx(0.55)
    assert tw[1]["score"] == pytest.approx(0.7)
    assert tw[1]["start_s"] == pytest.approx(0.5) and tw[1]["end_s"] == pytest.approx(0.7)
    assert tw[1]["name"] == "Head/Body TWITCH"


def test_evaluate_with_postprocess_rules():
    y, p = _eval_case()
    # twitch needs .6 (drops the .55 frame); groom bouts need 0.3 s = 3 frames at 10 fps (drops frame 18)
    post = PostProcess(LABELS, {"Head/Body TWITCH": ClassRule(threshold=0.6),
                                GROOM_NAME: ClassRule(threshold=0.5, min_duration_s=0.3)})
    r = evaluate([y], [p], LABELS, 10.0, ["v1.mp4"], post=post)
    assert r["pred_labels"] == [y.tolist()]
    s = r["summary"]
    assert s["frame_macro_f1"] == 1.0
    assert s["frame_accuracy"] == 1.0
    for name in ("Head-Body_TWITCH", "Self-Grooming"):
        assert s[f"event_hit_f1/{name}"] == 1.0
        assert s[f"event_iou0.7_f1/{name}"] == 1.0
        assert s[f"count_mae/{name}"] == 0.0
        assert s[f"count_total_error/{name}"] == 0.0
    rules = r["postprocess"]["classes"]
    assert rules["Head/Body TWITCH"]["threshold"] == 0.6
    assert rules[GROOM_NAME]["min_duration_s"] == 0.3
    _assert_plain_json(r)


def test_evaluate_summary_keys_and_json():
    y, p = _eval_case()
    y2 = np.zeros(8, dtype=int)
    p2 = np.tile([0.9, 0.05, 0.05], (8, 1))
    r = evaluate([y, y2], [p, p2], LABELS, [10.0, 30.0], ["v1", "v2"])
    _assert_plain_json(r)
    for k, v in r["summary"].items():
        assert re.fullmatch(r"[A-Za-z0-9_./ -]+", k), k
        assert type(v) is float
    assert {"frame_macro_f1", "frame_weighted_f1", "frame_accuracy", "frame_f1/idle",
            "event_iou0.3_f1/Self-Grooming", "count_mae/Head-Body_TWITCH"} <= set(r["summary"])
    assert not any(k.endswith("/idle") and k.startswith("event") for k in r["summary"])
    assert set(r) >= {"frame", "events", "counts", "summary", "pred_labels", "pred_bouts"}
    assert [len(x) for x in r["pred_labels"]] == [20, 8]
    assert r["counts"]["per_video"][1]["video"] == "v2"


def test_evaluate_true_bouts_keep_touching_events_apart():
    # two touching annotated twitches [2,3] and [4,5] merge as frame runs; passing the
    # annotated bouts keeps them as 2 events (the single predicted run then counts 1 of 2)
    y = np.array([0, 0, 2, 2, 2, 2, 0, 0])
    p = np.tile([0.9, 0.05, 0.05], (8, 1))
    p[2:6] = [0.1, 0.1, 0.8]
    r = evaluate([y], [p], LABELS, 10.0, ["v"],
                 true_bouts=[[Bout(TWITCH, 2, 3), Bout(TWITCH, 4, 5)]])
    c = r["counts"]["per_class"]["Head/Body TWITCH"]
    assert (c["true_count"], c["pred_count"]) == (2, 1)
    r2 = evaluate([y], [p], LABELS, 10.0, ["v"])
    assert r2["counts"]["per_class"]["Head/Body TWITCH"]["true_count"] == 1


def test_evaluate_errors():
    y, p = _eval_case()
    with pytest.raises(ValueError, match="v1.mp4"):
        evaluate([y], [p[:-1]], LABELS, 10.0, ["v1.mp4"])
    with pytest.raises(ValueError, match="not in the label map"):
        evaluate([y], [p], LABELS, 10.0, ["v1"], post=PostProcess(LABELS, {"twitch": ClassRule()}))
    with pytest.raises(ValueError, match="post-processing is for classes"):
        evaluate([y], [p], LABELS, 10.0, ["v1"], post=PostProcess.default(["idle", "a", "b"]))
    with pytest.raises(ValueError, match="collide"):
        evaluate([y], [p], ["idle", "a/b", "a-b"], 10.0, ["v1"])


def test_overlap_recall_hand_worked():
    from mvd.metrics import overlap_recall

    # video 1: events [2,4] (pred frame 4 is label 2 → hit) and [8,9] (no label-2 frame → miss)
    # video 2: event [0,0] (frame 0 is label 2 → hit); label-2 frames elsewhere do not matter
    pred = [np.array([0, 0, 0, 1, 2, 0, 0, 0, 1, 1]), np.array([2, 0, 2])]
    assert overlap_recall([[(2, 4), (8, 9)], [(0, 0)]], pred, 2) == pytest.approx(2 / 3)
    assert overlap_recall([[], []], pred, 2) is None
