"""Streamed windows and sliding-window inference against direct computations."""

import csv
import json
import math

import numpy as np
import pytest
import torch

from mvd.clips import sliding_windows
from mvd.crop import crop_resize, window_crops
from mvd.extract import stream_windows
from mvd.infer import predict_video, window_weights
from mvd.model import create_model
from mvd.video import VideoReadError, read_frames
from mvd.weights import save_model
from pipeline.demo import render_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    p = tmp_path_factory.mktemp("v") / "v.mp4"
    truth = render_video(p, num_frames=45, size=(96, 72), seed=2, behaviours=[("Head/Body TWITCH", 20, 25)])
    return p, truth


@pytest.mark.parametrize("mode", ["union", "track"])
def test_stream_windows_crop_each_window_with_its_own_frames(video, mode):
    path, truth = video
    boxes = np.concatenate([truth.boxes, np.ones((len(truth.boxes), 1), np.float32)], 1)
    windows = sliding_windows(truth.num_frames, 4, 3, 5)
    got = {k: (f, c) for k, f, c in stream_windows(str(path), [w.indices for w in windows], boxes,
                                                  width=96, height=72, size=32, pad=0.05, mode=mode)}
    assert sorted(got) == list(range(len(windows)))
    for k, w in enumerate(windows):
        crop = window_crops(mode, boxes, w.indices, 96, 72, 0.05)
        expected = crop_resize(read_frames(path, w.indices), crop, 32)
        frames, c = got[k]
        per_frame = np.asarray(crop).reshape(-1, 4)  # the yielded box: whole pixels around the frames' crops
        assert tuple(c) == (math.floor(per_frame[:, 0].min()), math.floor(per_frame[:, 1].min()),
                            math.ceil(per_frame[:, 2].max()), math.ceil(per_frame[:, 3].max()))
        np.testing.assert_array_equal(frames, expected)
    with pytest.raises(ValueError, match="crop mode"):
        next(stream_windows(str(path), [windows[0].indices], boxes, width=96, height=72, size=32, pad=0.05,
                            mode="follow"))


@pytest.mark.parametrize("workers, mode", [(1, "union"), (3, "union"), (3, "track")])
def test_windows_cropped_in_threads_are_the_inline_windows_in_the_same_order(video, workers, mode):
    path, truth = video
    boxes = np.concatenate([truth.boxes, np.ones((len(truth.boxes), 1), np.float32)], 1)
    windows = [w.indices for w in sliding_windows(truth.num_frames, 4, 3, 2)]
    kw = dict(width=96, height=72, size=32, pad=0.05, mode=mode)
    inline = list(stream_windows(str(path), windows, boxes, **kw))
    threaded = list(stream_windows(str(path), windows, boxes, workers=workers, **kw))
    assert [(k, c) for k, _, c in threaded] == [(k, c) for k, _, c in inline]
    for (_, a, _), (_, b, _) in zip(inline, threaded):
        np.testing.assert_array_equal(a, b)
    # a window past the video's end: the windows cut before it still come out, then the error
    past = windows + [np.array([40, 44, 48, 52])]
    got = []
    with pytest.raises(VideoReadError, match="v.mp4 ended before frame 52"):
        for k, _, _ in stream_windows(str(path), past, None, workers=workers, **kw):
            got.append(k)
    assert got == [k for k, _, _ in inline]
    # a consumer that stops early closes the stream without waiting for the rest of the video
    it = stream_windows(str(path), windows, boxes, workers=workers, **kw)
    assert next(it)[0] == inline[0][0]
    it.close()


class _Const(torch.nn.Module):
    """Logits that depend on the window's mean brightness, to check per-frame averaging."""

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3, 4))
        return torch.stack([m, -m, torch.zeros_like(m)], 1)


@pytest.mark.parametrize("mode,sigma", [(None, 0.0), ("union", 0.0), ("track", 0.0), ("union", 0.125), ("track", 0.3)])
def test_frame_probabilities_are_mean_of_covering_windows(video, mode, sigma):
    path, truth = video
    boxes = None if mode is None else np.concatenate([truth.boxes, np.ones((len(truth.boxes), 1), np.float32)], 1)
    probs = predict_video(_Const(), path, boxes, num_frames=4, sampling_rate=2, input_size=32, num_classes=3,
                          stride=3, batch_size=5, crop_mode=mode or "union", stitch_sigma=sigma)
    assert probs.shape == (truth.num_frames, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    # independent: run each window alone and average per frame
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1, 1)

    windows = sliding_windows(truth.num_frames, 4, 2, 3)
    acc = np.zeros((truth.num_frames, 3))
    cnt = np.zeros(truth.num_frames)
    for w in windows:
        box = (0, 0, 96, 72) if mode is None else window_crops(mode, boxes, w.indices, 96, 72, 0.05)
        crop = torch.from_numpy(crop_resize(read_frames(path, w.indices), box, 32))
        x = ((crop.permute(3, 0, 1, 2).float() / 255 - mean) / std)[None]
        p = torch.softmax(_Const()(x), 1)[0].numpy()
        for f in range(w.start, w.end + 1):  # weighed by the frame's distance from the window's centre
            wt = 1.0 if sigma == 0 else math.exp(-((f - (w.start + w.end) / 2) / (w.end - w.start + 1)) ** 2 / (2 * sigma ** 2))
            acc[f] += wt * p
            cnt[f] += wt
    np.testing.assert_allclose(probs, acc / cnt[:, None], rtol=1e-4, atol=1e-5)
    if sigma:  # the weights change the result
        plain = predict_video(_Const(), path, boxes, num_frames=4, sampling_rate=2, input_size=32, num_classes=3,
                              stride=3, batch_size=5, crop_mode=mode or "union")
        assert not np.allclose(probs, plain, atol=1e-4)


def test_window_weights_peak_at_the_centre_alike_at_every_frame_rate():
    w30, w60 = window_weights(8, 0.125), window_weights(16, 0.125)  # one window at 30 and at 60 fps
    assert len(w30) == 8 and len(w60) == 16
    np.testing.assert_allclose(w30, w30[::-1])  # symmetric about the centre
    assert w30[3] == w30[4] == w30.max() and w30[0] == w30.min()
    # frame k of the 30 fps window and frames 2k, 2k+1 at 60 fps lie at about the same fraction of the span
    np.testing.assert_allclose(w30, (w60[0::2] + w60[1::2]) / 2, atol=0.06)
    assert np.array_equal(window_weights(8, 0.0), np.ones(8))
    assert (window_weights(100, 0.05) > 0).all()  # a frame only an edge covers still has a weight


class _Oriented(torch.nn.Module):
    """Logits that depend on where in the crop the bright pixels are: flips and transposes change them."""

    def forward(self, x):
        h = x.shape[-1]
        left, top = x[..., : h // 2].mean(dim=(1, 2, 3, 4)), x[..., : h // 2, :].mean(dim=(1, 2, 3, 4))
        diag = torch.triu(x).mean(dim=(1, 2, 3, 4))
        return torch.stack([left - top, 3 * diag, top], 1)


@pytest.mark.parametrize("views", [2, 4, 8])
def test_test_time_views_average_the_softmax_over_flips_and_transposes(video, views):
    path, truth = video
    kw = dict(num_frames=4, sampling_rate=2, input_size=32, num_classes=3, stride=3, batch_size=5)
    plain = predict_video(_Oriented(), path, None, **kw)
    probs = predict_video(_Oriented(), path, None, tta_views=views, **kw)
    assert probs.shape == plain.shape and not np.allclose(probs, plain, atol=1e-4)
    # independent: each window alone, its softmax averaged over the flips written out here
    flips = [lambda c: c, lambda c: c.flip(-1), lambda c: c.flip(-2), lambda c: c.rot90(2, (-2, -1)),
             lambda c: c.transpose(-2, -1), lambda c: c.rot90(1, (-2, -1)), lambda c: c.rot90(-1, (-2, -1)),
             lambda c: c.flip(-1).flip(-2).transpose(-2, -1)][:views]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1, 1)
    acc, cnt = np.zeros((truth.num_frames, 3)), np.zeros(truth.num_frames)
    for w in sliding_windows(truth.num_frames, 4, 2, 3):
        crop = torch.from_numpy(crop_resize(read_frames(path, w.indices), (0, 0, 96, 72), 32))
        x = ((crop.permute(3, 0, 1, 2).float() / 255 - mean) / std)[None]
        p = torch.stack([torch.softmax(_Oriented()(f(x)), 1)[0] for f in flips]).mean(0).numpy()
        acc[w.start:w.end + 1] += p
        cnt[w.start:w.end + 1] += 1
    np.testing.assert_allclose(probs, acc / cnt[:, None], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="tta_views must be one of"):
        predict_video(_Oriented(), path, None, tta_views=3, **kw)


def test_predict_cli_writes_outputs_and_reports_bad_videos(video, tmp_path):
    from components.predict import PredictError, run_predict

    path, truth = video
    model = create_model("vit_tiny", num_classes=3, num_frames=4, img_size=32)
    card = {"arch": "vit_tiny", "num_classes": 3, "labels": ["idle", "Self-Grooming", "Head/Body TWITCH"],
            "input": {"num_frames": 4, "sampling_rate": 2, "img_size": 32, "tubelet_size": 2,
                      "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
            "model_kwargs": {}, "train_config": {}, "data_version": "t"}
    save_model(model, tmp_path / "model", card)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    s = run_predict(str(tmp_path / "model"), [str(path), str(bad)], tmp_path / "out")
    rows = list(csv.DictReader(open(tmp_path / "out" / "v.mp4.frames.csv")))
    assert len(rows) == truth.num_frames and set(rows[0]) == {"frame", "label", "p_idle", "p_Self-Grooming",
                                                                 "p_Head/Body TWITCH"}
    assert (tmp_path / "out" / "v.mp4.ethogram.png").stat().st_size > 0
    assert (tmp_path / "out" / "v.mp4.bouts.csv").is_file()
    assert [f["video"] for f in s["failures"]] == [str(bad)]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["labels"][0] == "idle"
    with pytest.raises(PredictError, match="neither a model directory"):
        run_predict(str(tmp_path / "nope"), [str(path)], tmp_path / "o2")
