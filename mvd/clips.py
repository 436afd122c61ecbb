"""Clip and window sampling as pure functions returning small NamedTuples.

Training clips follow the reference preprocessing: positive ranges of one class that overlap
or touch are merged; a range longer than ``max_len`` is split into equal pieces no longer than
``max_len``; a range shorter than ``min_len`` is padded around its centre to ``min_len``
(clamped to the video); idle clips of ``idle_min``–``idle_max`` frames are cut from the gaps
between positives until the video's idle frames reach a target. Frame ranges are inclusive.

Training windows are cut from clips so that the labelled frames stay in view. Windows: a model window samples ``num_frames`` frames every ``sampling_rate`` frames, so it
spans ``num_frames × sampling_rate`` frames. Sliding windows advance ``stride`` frames and a
last window is aligned to the video's end so every frame is covered.
"""

from __future__ import annotations

import math
import zlib
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .labels import idle_index
from .timebase import TimeBase

if TYPE_CHECKING:
    from .config import Config
    from .manifest import Manifest


class Clip(NamedTuple):
    label: int
    start: int  # first stored frame (inclusive)
    end: int  # last stored frame (inclusive)
    event_start: int  # labelled frames inside the clip (inclusive)
    event_end: int


class Window(NamedTuple):
    start: int  # first frame of the span
    end: int  # last frame of the span (inclusive, may exceed the video for short videos)
    indices: np.ndarray  # frames the model sees, clamped to the video


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge overlapping or adjacent inclusive ranges; result sorted."""
    out: list[list[int]] = []
    for s, e in sorted((int(s), int(e)) for s, e in ranges):
        if e < s:
            raise ValueError(f"range ({s}, {e}) ends before it starts")
        if out and s <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def split_range(start: int, end: int, max_len: int) -> list[tuple[int, int]]:
    """Split an inclusive range into the fewest equal pieces no longer than ``max_len``."""
    n = end - start + 1
    k = max(1, math.ceil(n / max_len))
    edges = [start + round(i * n / k) for i in range(k + 1)]
    return [(edges[i], edges[i + 1] - 1) for i in range(k)]


def pad_range(start: int, end: int, min_len: int, num_frames: int) -> tuple[int, int]:
    """Grow an inclusive range around its centre to ``min_len`` frames, kept inside the video."""
    n = end - start + 1
    if n >= min_len or num_frames <= 0:
        return start, end
    target = min(min_len, num_frames)
    extra = target - n
    s = start - extra // 2
    e = s + target - 1
    if s < 0:
        s, e = 0, target - 1
    if e > num_frames - 1:
        e = num_frames - 1
        s = e - target + 1
    return s, e


def positive_clips(
    ranges_by_label: dict[int, list[tuple[int, int]]], num_frames: int, *, min_len: int, max_len: int
) -> list[Clip]:
    """Training clips for the labelled (non-idle) ranges of one video."""
    clips = []
    for label, ranges in sorted(ranges_by_label.items()):
        for s, e in merge_ranges(ranges):
            for ps, pe in split_range(s, e, max_len):
                cs, ce = pad_range(ps, pe, min_len, num_frames)
                clips.append(Clip(label, cs, ce, ps, pe))
    return clips


def idle_clips(
    positive_ranges: list[tuple[int, int]],
    num_frames: int,
    *,
    target_frames: int,
    min_len: int,
    max_len: int,
    rng: np.random.Generator,
    label: int = 0,
    shortest: int | None = None,
) -> list[Clip]:
    """Idle clips cut from the gaps between positives until ``target_frames`` is reached.

    Clips are ``min_len``–``max_len`` frames; a gap shorter than ``min_len`` but at least
    ``shortest`` frames long (default ``min_len``) is taken whole, so densely annotated videos
    still yield idle examples.
    """
    shortest = min_len if shortest is None else min(shortest, min_len)
    merged = merge_ranges(positive_ranges)
    gaps, prev = [], 0
    for s, e in merged:
        if s - prev >= shortest:
            gaps.append((prev, s - 1))
        prev = e + 1
    if num_frames - prev >= shortest:
        gaps.append((prev, num_frames - 1))
    clips: list[Clip] = []
    total = 0
    order = rng.permutation(len(gaps)) if gaps else []
    free = [[gaps[i]] for i in order]  # the unused pieces of each gap, split as clips are cut
    progress = True
    while total < target_frames and progress:
        progress = False
        for pieces in free:
            if total >= target_frames:
                break
            pieces.sort(key=lambda g: g[1] - g[0], reverse=True)
            if not pieces or pieces[0][1] - pieces[0][0] + 1 < shortest:
                continue
            gs, ge = pieces.pop(0)
            glen = ge - gs + 1
            length = int(rng.integers(min(min_len, glen), min(max_len, glen) + 1))
            start = gs + int(rng.integers(0, glen - length + 1))
            end = start + length - 1
            clips.append(Clip(label, start, end, start, end))
            total += length
            progress = True
            if start - gs >= shortest:
                pieces.append((gs, start - 1))
            if ge - end >= shortest:
                pieces.append((end + 1, ge))
    return sorted(clips, key=lambda c: c.start)


def window_indices(start: int, num_frames: int, sampling_rate: int, video_frames: int | None = None,
                   timebase: TimeBase | None = None) -> np.ndarray:
    """The ``num_frames`` video frame indices a window starting at model frame ``start`` samples,
    clamped to the video (model frames are video frames without a ``timebase``)."""
    t = start + sampling_rate * np.arange(num_frames)
    if timebase is not None:
        return timebase.to_video(t, video_frames)
    idx = t if video_frames is None else np.clip(t, 0, video_frames - 1)
    return idx.astype(np.int64)


def _window(start: int, num_frames: int, sampling_rate: int, video_frames: int, tb: TimeBase) -> Window:
    """The window at model frame ``start``: its span in video frames and the frames it samples."""
    span = num_frames * sampling_rate
    first = int(tb.to_video(start))
    end = int(tb.to_video(start + span)) - 1
    return Window(first, max(first, end), window_indices(start, num_frames, sampling_rate, video_frames, tb))


def clip_windows(clip: Clip, num_frames: int, sampling_rate: int, video_frames: int, *,
                 short_positions: int = 4, edge_positions: int = 2,
                 timebase: TimeBase | None = None) -> list[Window]:
    """The training windows cut from one clip, each keeping labelled frames in view.

    An event shorter than a window span lies wholly inside ``short_positions`` windows (evenly
    spaced offsets, early to late in the window) and straddles a window's edge in
    ``edge_positions`` more on each side, with at least half of the event in view: at inference the
    sliding window meets every event at every offset, cut by the window's edges too, and the dense
    head learns there where the event starts and ends. A longer event is tiled by windows that lie
    inside it, one every span, plus a window centred on its start and one on its end. Spans and
    offsets are in model frames (:mod:`mvd.timebase`); the windows sample video frames.
    """
    tb = timebase or TimeBase(1.0)
    span = num_frames * sampling_rate
    ev_start, ev_end = int(tb.to_model(clip.event_start)), int(tb.to_model(clip.event_end))
    n = tb.model_length(video_frames)
    ev_len = ev_end - ev_start + 1
    last_start = max(0, n - span)

    def spread(a: int, b: int, k: int) -> list[int]:
        return [int(round(x)) for x in np.linspace(a, b, k)] if k > 0 and a <= b else []

    if ev_len <= span:
        lo = min(max(0, ev_end - span + 1), last_start)
        hi = min(ev_start, last_start)
        starts = spread(lo, max(lo, hi), short_positions)
        seen = -(-ev_len // 2)  # frames of the event a straddling window keeps in view
        starts += spread(ev_start + seen - span, ev_end - span, edge_positions)  # the event leaves at the end
        starts += spread(ev_start + 1, ev_end - seen + 1, edge_positions)  # ... enters at the start
    else:
        starts = list(range(ev_start, ev_end - span + 2, span))
        starts += [ev_start - span // 2, ev_end + 1 - span // 2] if edge_positions > 0 else []
    starts = sorted({min(max(0, s), last_start) for s in starts})
    return [_window(s, num_frames, sampling_rate, video_frames, tb) for s in starts]


def sliding_windows(video_frames: int, num_frames: int, sampling_rate: int, stride: int,
                    timebase: TimeBase | None = None) -> list[Window]:
    """Windows over a whole video, ``stride`` model frames apart; the last one is aligned to the end
    so every frame is covered."""
    if video_frames < 1:
        raise ValueError("video has no frames")
    if stride < 1:
        raise ValueError(f"stride must be ≥ 1, got {stride}")
    tb = timebase or TimeBase(1.0)
    span = num_frames * sampling_rate
    last = max(0, tb.model_length(video_frames) - span)
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    windows = [_window(s, num_frames, sampling_rate, video_frames, tb) for s in starts]
    w = windows[-1]
    windows[-1] = Window(w.start, max(w.end, video_frames - 1), w.indices)
    return windows


def explicit_idle_clips(idle_ranges: list[tuple[int, int]], positive_ranges: list[tuple[int, int]],
                        num_frames: int, *, max_len: int, span: int, label: int = 0) -> list[Clip]:
    """Idle clips from explicitly idle-labelled frames: pieces of at most ``max_len`` frames.

    In a video that also has positives, pieces shorter than a window span are dropped (their
    windows would reach labelled frames); in an all-idle video every piece is kept.
    """
    clips = []
    for s, e in merge_ranges(idle_ranges):
        for ps, pe in split_range(s, min(e, num_frames - 1), max_len):
            if positive_ranges and pe - ps + 1 < span:
                continue
            clips.append(Clip(label, ps, pe, ps, pe))
    return clips


def plan_clips(manifest: Manifest, cfg: Config, splits: tuple[str, ...] = ("train", "val"),
               target_fps: float = 0.0) -> dict[str, list[Clip]]:
    """Positive and idle clips per video of ``splits`` (training and validation videos), by the
    reference rules (DESIGN.md).

    Explicit idle intervals become idle clips as labelled; idle clips are also cut from the
    unlabelled gaps of videos with positives until each such video holds ≈ ``idle_ratio`` ×
    the mean positive frames per video (over videos with positives). A gap shorter than the
    idle minimum but at least one window span long is taken whole.
    """
    d = cfg.data
    videos = [v for v in manifest.videos if v.split in splits]
    idle = idle_index(manifest.labels)

    def window_span(rec) -> int:  # noqa: ANN001 - a VideoRecord: a window's span in this video's frames
        return int(math.ceil(cfg.model.num_frames * cfg.model.sampling_rate * TimeBase(rec.fps, target_fps).ratio))

    plans: dict[str, list[Clip]] = {}
    pos_frames: dict[str, int] = {}
    idle_frames: dict[str, int] = {}
    for rec in videos:
        span = window_span(rec)
        min_len = max(span, int(round(d.min_clip_s * rec.fps)))
        max_len = max(min_len, int(round(d.max_clip_s * rec.fps)))
        idle_max = max(span, int(round(d.idle_max_s * rec.fps)))
        by_label = rec.ranges_by_label(manifest.labels)
        idle_ranges = by_label.pop(idle, [])
        clips = positive_clips(by_label, rec.num_frames, min_len=min_len, max_len=max_len)
        positives = [r for rs in by_label.values() for r in rs]
        idle_cut = explicit_idle_clips(idle_ranges, positives, rec.num_frames, max_len=idle_max, span=span, label=idle)
        plans[rec.id] = clips + idle_cut
        pos_frames[rec.id] = sum(c.end - c.start + 1 for c in clips)
        idle_frames[rec.id] = sum(c.end - c.start + 1 for c in idle_cut)
    with_pos = [v for v in pos_frames.values() if v > 0]
    if not with_pos:
        return plans
    target = int(round(d.idle_ratio * float(np.mean(with_pos))))
    for rec in videos:
        want = target - idle_frames[rec.id]
        if pos_frames[rec.id] == 0 or want <= 0:
            continue
        span = window_span(rec)
        idle_min = max(span, int(round(d.idle_min_s * rec.fps)))
        idle_max = max(idle_min, int(round(d.idle_max_s * rec.fps)))
        ranges = [(iv.start, iv.end) for iv in rec.intervals]
        rng = np.random.default_rng([d.split_seed, zlib.crc32(rec.id.encode())])
        plans[rec.id] += idle_clips(ranges, rec.num_frames, target_frames=want, min_len=idle_min,
                                    max_len=idle_max, rng=rng, label=idle, shortest=span)
    return plans
