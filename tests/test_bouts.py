"""Tests for mvd.bouts: labels <-> bouts, thresholds, minimum bout length."""

from __future__ import annotations

import numpy as np
import pytest

from mvd.bouts import (
    Bout,
    apply_min_bout,
    bouts_from_labels,
    intervals_to_frame_labels,
    labels_from_probs,
)


def _runs_bruteforce(labels):
    """Independent run finder: walk the list, close a run when the value changes."""
    runs = []
    for i, x in enumerate(labels):
        if runs and runs[-1][0] == x and runs[-1][2] == i - 1:
            runs[-1][2] = i
        else:
            runs.append([x, i, i])
    return [tuple(r) for r in runs]


# ------------------------------------------------------------------ labels_from_probs


def test_labels_from_probs_argmax_without_thresholds():
    probs = np.array([[0.7, 0.2, 0.1],
                      [0.1, 0.5, 0.4],
                      [0.2, 0.3, 0.5]])
    assert labels_from_probs(probs).tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    "thresholds, expected",
    [
        # frame 1: argmax class 1 at 0.50; frame 2: argmax class 2 at 0.55; frame 3: class 2 at 0.9
        ({}, [0, 1, 2, 2]),
        ({1: 0.6}, [0, 0, 2, 2]),           # 0.50 < 0.6 -> idle
        ({1: 0.5}, [0, 1, 2, 2]),           # 0.50 is not below 0.5 -> kept
        ({2: 0.6}, [0, 1, 0, 2]),           # 0.55 < 0.6 -> idle, 0.9 kept
        ({1: 0.6, 2: 0.95}, [0, 0, 0, 0]),  # everything falls back to idle
    ],
)
def test_labels_from_probs_thresholds(thresholds, expected):
    probs = np.array([[0.8, 0.1, 0.1],
                      [0.2, 0.5, 0.3],
                      [0.1, 0.35, 0.55],
                      [0.05, 0.05, 0.9]])
    assert labels_from_probs(probs, thresholds=thresholds).tolist() == expected


def test_labels_from_probs_custom_background_and_errors():
    probs = np.array([[0.1, 0.4, 0.5]])
    assert labels_from_probs(probs, thresholds={2: 0.9}, background=1).tolist() == [1]
    with pytest.raises(ValueError, match="class 5"):
        labels_from_probs(probs, thresholds={5: 0.5})
    with pytest.raises(ValueError, match="shape"):
        labels_from_probs(np.zeros(3))


# ------------------------------------------------------------------ bouts_from_labels


@pytest.mark.parametrize(
    "labels",
    [
        [0, 0, 1, 1, 1, 0, 2, 2, 0],
        [1],
        [2, 2, 2],
        [0, 1, 0, 1, 0],
        [1, 2, 2, 1, 1, 0],
    ],
)
def test_bouts_match_bruteforce_runs(labels):
    got = [(b.label, b.start, b.end) for b in bouts_from_labels(np.array(labels))]
    assert got == _runs_bruteforce(labels)
    # Every frame is covered exactly once (inclusive ends).
    assert sum(b.length for b in bouts_from_labels(np.array(labels))) == len(labels)


def test_bouts_one_frame_bout_is_inclusive():
    bouts = bouts_from_labels(np.array([0, 2, 0]))
    assert bouts[1] == Bout(2, 1, 1, 1.0)
    assert bouts[1].length == 1


def test_bouts_include_and_scores():
    labels = np.array([0, 1, 1, 0, 2])
    probs = np.array([[0.9, 0.05, 0.05],
                      [0.2, 0.6, 0.2],
                      [0.1, 0.8, 0.1],
                      [0.5, 0.3, 0.2],
                      [0.3, 0.3, 0.4]])
    bouts = bouts_from_labels(labels, probs, include=[1, 2])
    assert [(b.label, b.start, b.end) for b in bouts] == [(1, 1, 2), (2, 4, 4)]
    assert bouts[0].score == pytest.approx((0.6 + 0.8) / 2)   # mean prob of class 1 over frames 1-2
    assert bouts[1].score == pytest.approx(0.4)
    assert all(b.score == 1.0 for b in bouts_from_labels(labels))
    assert bouts_from_labels(np.array([], dtype=int)) == []


def test_bouts_probs_length_mismatch():
    with pytest.raises(ValueError, match="match frame_labels"):
        bouts_from_labels(np.array([0, 1]), np.zeros((3, 2)))


# ------------------------------------------------------------------ apply_min_bout


@pytest.mark.parametrize(
    "labels, min_len, expected",
    [
        # int: every non-background class needs >= 2 frames; the 1-frame bouts go to idle
        ([0, 1, 0, 2, 2, 0, 1, 1, 1], 2, [0, 0, 0, 2, 2, 0, 1, 1, 1]),
        # per class: class 1 needs 3, class 2 unconstrained
        ([0, 1, 1, 0, 2, 0, 1, 1, 1], {1: 3}, [0, 0, 0, 0, 2, 0, 1, 1, 1]),
        # background runs are never removed, even if short
        ([1, 1, 0, 1, 1], 2, [1, 1, 0, 1, 1]),
        # a short bout between two other classes becomes background (no merging)
        ([1, 1, 1, 2, 1, 1, 1], {2: 2}, [1, 1, 1, 0, 1, 1, 1]),
        # min length 1 keeps everything
        ([0, 1, 2, 1, 0], 1, [0, 1, 2, 1, 0]),
    ],
)
def test_apply_min_bout(labels, min_len, expected):
    src = np.array(labels)
    out = apply_min_bout(src, min_len)
    assert out.tolist() == expected
    assert src.tolist() == labels  # input untouched


def test_apply_min_bout_custom_background():
    # background=2: class-0 bout of 1 frame becomes 2
    assert apply_min_bout(np.array([2, 0, 2, 1, 1]), 2, background=2).tolist() == [2, 2, 2, 1, 1]


# ------------------------------------------------------------------ intervals_to_frame_labels


def test_intervals_to_frame_labels_inclusive():
    out = intervals_to_frame_labels(8, [(1, 1, 3), (2, 5, 5), (1, 7, 7)])
    assert out.tolist() == [0, 1, 1, 1, 0, 2, 0, 1]
    # Back to intervals via bouts: same inclusive ranges.
    got = [(b.label, b.start, b.end) for b in bouts_from_labels(out, include=[1, 2])]
    assert got == [(1, 1, 3), (2, 5, 5), (1, 7, 7)]


def test_intervals_later_overwrites():
    assert intervals_to_frame_labels(5, [(1, 0, 3), (2, 2, 4)]).tolist() == [1, 1, 2, 2, 2]


@pytest.mark.parametrize(
    "interval, match",
    [
        ((1, 3, 10), r"start=3, end=10.*0\.\.9"),   # end == num_frames
        ((1, -1, 2), r"start=-1"),
        ((1, 5, 4), r"start > end"),
        ((-1, 0, 1), r"negative label"),
    ],
)
def test_intervals_validation(interval, match):
    with pytest.raises(ValueError, match=match):
        intervals_to_frame_labels(10, [(1, 0, 0), interval])
