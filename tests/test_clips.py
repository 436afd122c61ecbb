"""Clip and window sampling against independent formulas."""

import numpy as np
import pytest

from mvd.clips import (Clip, clip_windows, idle_clips, merge_ranges, pad_range, positive_clips, sliding_windows,
                       split_range, window_indices)


@pytest.mark.parametrize("ranges,expected", [
    ([(0, 5), (3, 9)], [(0, 9)]),
    ([(0, 5), (6, 9)], [(0, 9)]),          # adjacent merge
    ([(0, 5), (7, 9)], [(0, 5), (7, 9)]),  # one-frame gap stays
    ([(10, 12), (0, 1), (2, 2)], [(0, 2), (10, 12)]),
    ([(4, 4)], [(4, 4)]),
])
def test_merge_ranges(ranges, expected):
    assert merge_ranges(ranges) == expected


@pytest.mark.parametrize("start,end,max_len", [(0, 149, 150), (0, 150, 150), (10, 309, 150), (0, 999, 150), (5, 5, 3)])
def test_split_range_pieces_cover_exactly(start, end, max_len):
    pieces = split_range(start, end, max_len)
    n = end - start + 1
    assert len(pieces) == -(-n // max_len)  # ceil
    frames = [f for s, e in pieces for f in range(s, e + 1)]
    assert frames == list(range(start, end + 1))
    lengths = [e - s + 1 for s, e in pieces]
    assert max(lengths) <= max_len and max(lengths) - min(lengths) <= 1


@pytest.mark.parametrize("start,end,min_len,n", [
    (50, 50, 30, 200), (0, 0, 30, 200), (199, 199, 30, 200), (10, 14, 30, 200), (0, 99, 30, 200), (3, 3, 30, 10)])
def test_pad_range(start, end, min_len, n):
    s, e = pad_range(start, end, min_len, n)
    length = end - start + 1
    assert 0 <= s <= start and end <= e <= n - 1
    assert e - s + 1 == max(length, min(min_len, n))
    if length < min_len and 0 < s and e < n - 1:  # not clamped: centred within one frame
        assert abs((start - s) - (e - end)) <= 1


def test_positive_clips_apply_all_rules():
    ranges = {1: [(100, 109), (110, 119), (400, 799)], 2: [(50, 50)]}
    clips = positive_clips(ranges, 1000, min_len=30, max_len=150)
    by_label = {lab: [c for c in clips if c.label == lab] for lab in (1, 2)}
    # merged 100..119 (20 frames) padded to 30; 400..799 (400 frames) split into 3 pieces ≤ 150
    assert [(c.event_start, c.event_end) for c in by_label[1]][0] == (100, 119)
    assert by_label[1][0].end - by_label[1][0].start + 1 == 30
    assert len(by_label[1]) == 4
    assert sum(c.event_end - c.event_start + 1 for c in by_label[1][1:]) == 400
    (tw,) = by_label[2]
    assert (tw.event_start, tw.event_end) == (50, 50) and tw.end - tw.start + 1 == 30 and tw.start <= 50 <= tw.end


def test_idle_clips_stay_in_gaps_and_reach_target():
    rng = np.random.default_rng(0)
    positives = [(100, 199), (500, 520)]
    clips = idle_clips(positives, 1200, target_frames=400, min_len=90, max_len=150, rng=rng)
    pos_frames = {f for s, e in positives for f in range(s, e + 1)}
    total = 0
    used = set()
    for c in clips:
        frames = set(range(c.start, c.end + 1))
        assert not frames & pos_frames and not frames & used
        assert 90 <= len(frames) <= 150 and c.label == 0
        used |= frames
        total += len(frames)
    assert 400 <= total < 400 + 150


def test_idle_clips_take_short_gaps_whole_when_allowed():
    positives = [(0, 49), (100, 149), (190, 299)]  # gaps of 50 and 40 frames, both < min_len 90
    none = idle_clips(positives, 300, target_frames=500, min_len=90, max_len=150, rng=np.random.default_rng(0))
    assert none == []
    got = idle_clips(positives, 300, target_frames=500, min_len=90, max_len=150, rng=np.random.default_rng(0),
                     shortest=16)
    assert sorted((c.start, c.end) for c in got) == [(50, 99), (150, 189)]


def test_idle_clips_stop_when_gaps_run_out():
    clips = idle_clips([(0, 900)], 1000, target_frames=10_000, min_len=90, max_len=150, rng=np.random.default_rng(1))
    assert all(c.start > 900 for c in clips) and sum(c.end - c.start + 1 for c in clips) <= 99


@pytest.mark.parametrize("clip,n", [(Clip(1, 0, 29, 10, 12), 300), (Clip(1, 100, 249, 100, 249), 300),
                                    (Clip(2, 40, 69, 55, 55), 300), (Clip(1, 0, 10, 3, 4), 11), (Clip(2, 280, 299, 297, 299), 300)])
def test_clip_windows_keep_event_in_view(clip, n):
    nf, sr = 8, 2
    span = nf * sr
    ws = clip_windows(clip, nf, sr, n)
    ev_len = clip.event_end - clip.event_start + 1
    assert ws and len(ws) == len({w.start for w in ws})
    inside = []
    for w in ws:
        assert list(w.indices) == [min(w.start + sr * k, n - 1) for k in range(nf)]
        assert 0 <= w.start <= max(0, n - span)
        if n < span:
            assert w.start == 0
            continue
        shown = min(w.end, clip.event_end) - max(w.start, clip.event_start) + 1
        if ev_len <= span:  # the whole event, or at least half of it at a window edge
            assert shown >= min(ev_len, -(-ev_len // 2))
        else:  # tiles inside the event, plus one window on each of its edges
            assert shown >= span // 2 - 1
        inside.append(clip.event_start <= w.start and w.end <= clip.event_end or
                      w.start <= clip.event_start and clip.event_end <= w.end)
    if ev_len > span:
        assert sum(inside) == ev_len // span
    elif n >= span:
        assert any(inside)


def test_short_event_is_seen_whole_and_straddling_both_edges():
    ws = clip_windows(Clip(1, 0, 299, 100, 105), 8, 2, 300)  # a 6-frame event, 16-frame windows
    whole = [w for w in ws if w.start <= 100 and 105 <= w.end]
    leaving = [w for w in ws if 100 <= w.end < 105]  # the event runs past the window's end
    entering = [w for w in ws if 100 < w.start <= 105]  # ... starts before the window
    assert len(whole) == 4 and len(leaving) == 2 and len(entering) == 2
    assert all(w.end - 100 + 1 >= 3 for w in leaving) and all(105 - w.start + 1 >= 3 for w in entering)
    assert len(clip_windows(Clip(1, 0, 299, 100, 105), 8, 2, 300, edge_positions=0)) == 4


def test_interval_targets_label_every_event_in_a_window():
    from mvd.dense import frame_targets, interval_targets

    idx = np.arange(10, 26, 2)  # frames 10, 12, ..., 24
    got = interval_targets(idx, [(2, 11, 13), (1, 20, 30), (2, 50, 60)], idle=0)
    assert got.tolist() == [0, 2, 0, 0, 0, 1, 1, 1]
    assert frame_targets(idx, 1, 20, 30).tolist() == [0, 0, 0, 0, 0, 1, 1, 1]  # the clip's own event only


@pytest.mark.parametrize("n,nf,sr,stride", [(100, 8, 2, 8), (32, 16, 2, 16), (10, 16, 2, 16), (1000, 16, 2, 7),
                                            (33, 8, 1, 4)])
def test_sliding_windows_cover_every_frame(n, nf, sr, stride):
    ws = sliding_windows(n, nf, sr, stride)
    span = nf * sr
    covered = np.zeros(n, int)
    for w in ws:
        assert w.end - w.start + 1 == span
        assert list(w.indices) == [min(w.start + sr * k, n - 1) for k in range(nf)]
        covered[w.start:min(w.end, n - 1) + 1] += 1
    assert covered.min() >= 1
    starts = [w.start for w in ws]
    assert starts[0] == 0 and starts[-1] == max(0, n - span)
    assert all(b - a <= stride for a, b in zip(starts, starts[1:]))


def test_window_indices_clamped():
    assert list(window_indices(5, 4, 3, 12)) == [5, 8, 11, 11]
