"""The dense head: per-frame targets, per-time-step output mapped to frames, and two twitches 0.5 s
apart counted as two events where a window-wide clip label merges them."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from mvd.card import spec_from_config
from mvd.config import build_config
from mvd.dense import frame_targets, span_positions, step_targets
from mvd.infer import label_video
from mvd.model import create_model

LABELS = ["idle", "Self-Grooming", "Head/Body TWITCH"]


@pytest.mark.parametrize("indices, label, s, e, expected", [
    ([0, 2, 4, 6], 2, 3, 4, [0, 0, 2, 0]),
    ([10, 11, 12, 13], 1, 0, 100, [1, 1, 1, 1]),
    ([5, 7, 9, 11], 2, 12, 14, [0, 0, 0, 0]),
])
def test_frame_targets(indices, label, s, e, expected):
    assert frame_targets(np.array(indices), label, s, e).tolist() == expected


def test_step_targets_are_class_shares_per_tubelet():
    st = step_targets(torch.tensor([[0, 2, 2, 2]]), 3)
    assert st.tolist() == [[[0.5, 0.0, 0.5], [0.0, 0.0, 1.0]]]


def test_span_positions_take_the_last_sample_at_or_before_each_frame():
    # 4 samples every 3 frames from 10: frames 10..21 map to samples 0,0,0,1,1,1,2,2,2,3,3,3 -> steps //2
    got = span_positions(np.array([10, 13, 16, 19]), 10, 21)
    assert got.tolist() == [0] * 6 + [1] * 6
    # clamped indices at a video's end repeat the last frame
    assert span_positions(np.array([8, 9, 9, 9]), 8, 11).tolist() == [0, 0, 0, 0]
    # a tubelet of 1 frame: every sample is its own time step
    assert span_positions(np.array([10, 13, 16, 19]), 10, 21, tubelet=1).tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3


def test_model_dense_output_and_gradients():
    m = create_model("vit_tiny", num_classes=3, num_frames=8, img_size=32, dense_head=True)
    x = torch.randn(2, 3, 8, 32, 32)
    clip, steps = m(x, dense=True)
    assert clip.shape == (2, 3) and steps.shape == (2, 4, 3)
    torch.testing.assert_close(clip, m(x))
    (clip.sum() + steps.sum()).backward()
    assert all(p.grad is not None for p in m.parameters())


class _Flash(torch.nn.Module):
    """Twitch wherever frames are bright: per time step (dense) or anywhere in the window (clip)."""

    has_dense_head = True

    def forward(self, x: torch.Tensor, dense: bool = False):
        b = x.mean(dim=(1, 3, 4))  # (B, T) normalised brightness
        steps = b.reshape(len(b), -1, 2).mean(-1)  # (B, T/2)
        step_logits = torch.stack([-4 * steps, torch.full_like(steps, -9.0), 4 * steps], -1)
        clip_logits = torch.stack([-4 * b.max(1).values, torch.full_like(b[:, 0], -9.0), 4 * b.max(1).values], -1)
        return (clip_logits, step_logits) if dense else clip_logits


def _flash_video(path, fps: int, flashes: list[tuple[int, int]], n: int):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(fps))
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.options = {"crf": "10"}
        for i in range(n):
            v = 220 if any(a <= i <= b for a, b in flashes) else 30
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), v, np.uint8), format="rgb24")
            for pkt in s.encode(frame):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def test_two_twitches_half_a_second_apart_are_two_events(tmp_path):
    """16 frames × sampling 2 (the reference window, 32 frames > 1 s at 30 fps), stride 16: a clip
    label spans each window and merges twitches 0.5 s apart; the dense head keeps them apart."""
    fps = 30
    flashes = [(45, 50), (60, 65)]  # 0.2 s twitches whose starts are 0.5 s apart
    video = tmp_path / "flash.mp4"
    _flash_video(video, fps, flashes, 120)
    cfg = build_config("cpu", overrides={"model.num_frames": 16, "model.sampling_rate": 2, "benchmark.stride": 16,
                                         "benchmark.thresholds": "{'Head/Body TWITCH': 0.5}"})
    spec = spec_from_config(cfg, LABELS)
    assert spec.head == "dense"
    dense = label_video(_Flash(), spec, video, None)
    twitches = [(b.start, b.end) for b in dense.result.bouts if b.label == 2]
    assert len(twitches) == 2
    for (s, e), (ts, te) in zip(twitches, flashes):
        assert abs(s - ts) <= 2 and abs(e - te) <= 2  # within a sampling step of the true edges
    spec.head = "clip"
    clip = label_video(_Flash(), spec, video, None)
    assert sum(b.label == 2 for b in clip.result.bouts) == 1  # the window-wide label merges them
