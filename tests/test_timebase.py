"""Model frames <-> video frames at any frame rate, against independent formulas both ways."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from mvd.clips import Clip, clip_windows, sliding_windows
from mvd.timebase import TimeBase, target_fps_for
from mvd.video import VideoReadError, probe


@pytest.mark.parametrize("video_fps, target_fps", [(30, 30), (60, 30), (120, 30), (25, 30), (50, 27.5), (30, 0)])
def test_frame_mapping_both_ways(video_fps, target_fps):
    tb = TimeBase(video_fps, target_fps)
    r = video_fps / target_fps if target_fps else 1.0
    t = np.arange(200)
    # model frame t is the video frame nearest to the same instant t / target_fps
    expected = [int(np.floor(k * r + 0.5)) for k in t]
    assert tb.to_video(t).tolist() == expected
    # video frame f belongs to the model frame at or before its instant f / video_fps
    f = np.arange(400)
    assert tb.to_model(f).tolist() == [int(np.floor(x / r + 1e-9)) for x in f]
    # the same instant in seconds, both ways, within half a frame
    secs_model = t / (target_fps or video_fps)
    secs_video = tb.to_video(t) / video_fps
    assert np.all(np.abs(secs_model - secs_video) <= 0.5 / video_fps + 1e-12)
    n = 301
    assert tb.model_length(n) == int(np.floor((n - 1) / r + 1e-9)) + 1


@pytest.mark.parametrize("video_fps", [25, 30, 60, 120])
def test_sliding_windows_cover_every_frame_and_span_the_same_seconds(video_fps):
    tb = TimeBase(video_fps, 30)
    n = int(7.3 * video_fps)
    wins = sliding_windows(n, 16, 2, 16, tb)
    covered = np.zeros(n, bool)
    for w in wins:
        covered[w.start:min(w.end, n - 1) + 1] = True
        assert np.all(np.diff(w.indices) >= 0) and w.indices.max() < n
        # a window spans 32 model frames = 32/30 s whatever the video's rate
        assert abs((w.indices[-1] - w.indices[0]) / video_fps - 30 / 30 * (15 * 2) / 30) <= 1.0 / video_fps + 1e-9
    assert covered.all()


def test_training_windows_keep_a_short_event_in_view_at_any_rate():
    for video_fps in (30, 60, 120):
        tb = TimeBase(video_fps, 30)
        n = 10 * video_fps
        s = 4 * video_fps
        e = s + int(0.2 * video_fps) - 1  # a 0.2 s twitch
        windows = clip_windows(Clip(2, s - video_fps, e + video_fps, s, e), 16, 2, n, timebase=tb)
        whole = [w for w in windows if w.start <= s and w.end >= e]
        assert len(whole) == 4  # the whole event in view at four offsets
        for w in windows:  # the others straddle an edge of the window, at least half of the event in view
            assert w.indices[0] == w.start
            seen = min(w.end, e) - max(w.start, s) + 1
            assert seen >= (e - s + 1) / 2 - video_fps / 30, (video_fps, w.start, w.end, s, e)


def test_target_fps_defaults_to_the_lowest_training_rate():
    assert target_fps_for(0, [30, 25, 30, 60]) == 25
    assert target_fps_for(50, [25, 30]) == 50
    assert target_fps_for(0, []) == 0


def _write(path, pts_steps, fps=30):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(fps))
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i, step in enumerate(pts_steps):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), (i * 7) % 255, np.uint8), format="rgb24")
            frame.pts = t
            frame.time_base = Fraction(1, 1000)
            t += step
            for pkt in s.encode(frame):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def test_variable_frame_rate_is_a_clear_error(tmp_path):
    _write(tmp_path / "cfr.mp4", [33] * 40)
    assert probe(tmp_path / "cfr.mp4").num_frames == 40
    rng = np.random.default_rng(0)
    _write(tmp_path / "vfr.mp4", rng.choice([20, 33, 70], size=40).tolist())
    with pytest.raises(VideoReadError, match="vfr.mp4.*variable frame rate"):
        probe(tmp_path / "vfr.mp4")
