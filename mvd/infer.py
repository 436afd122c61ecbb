"""Sliding-window inference over a full-length video, decoded once, in order.

Windows of ``num_frames`` frames every ``sampling_rate`` frames advance ``stride`` frames; a
last window is aligned to the video's end. The video streams through once
(:func:`mvd.extract.stream_windows`): each window is cropped by the model's crop rule from the
boxes of exactly the frames it samples (their union, squared, padded, clipped; or, with
``crop_mode`` track, a square per frame that follows the animal), resized, as soon as its last
frame is decoded, and windows are batched through the model. A frame's class probabilities are the mean of the softmax of
every window whose span covers it: of the window's clip prediction (clip head), or of the
prediction of the time step the frame falls in (dense head, :mod:`mvd.dense`); with
``stitch_sigma`` > 0 a weighted mean, each window weighed by a Gaussian of the frame's distance
from the window's centre (:func:`window_weights`). With ``tta_views`` > 1 a
window's softmax is itself the mean over that many flips and transposes of its crop
(:func:`mvd.transforms.square_views`): a top-view animal may face any way, the model was trained on
every orientation (``train.flip``), and averaging its views steadies what one view gets wrong.

:func:`label_video` is the inference contract: the window, stride, crop pad and batch size of a
model card's ``inference`` section (:class:`mvd.card.InferenceSpec`), then its post-processor
(:class:`mvd.postprocess.PostProcess`). The benchmark, calibration and ``mar predict`` call it
and nothing else, so a promoted model labels new videos exactly as it was benchmarked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from .card import InferenceSpec
from .clips import sliding_windows
from .cores import usable_cores
from .dense import span_positions
from .extract import stream_windows
from .postprocess import Processed
from .timebase import TimeBase
from .transforms import TTA_VIEWS, square_views, to_model_input
from .video import VideoInfo, VideoReadError, probe

logger = logging.getLogger(__name__)

# default crop threads: each holds a few windows' full-size frames alive, and 4 threads already
# kept pace with 16 on the 16-core GPU machine, so a many-core node gains nothing from more
MAX_CROP_WORKERS = 8
WEIGHT_FLOOR = 1e-12  # a frame only a window's edge covers (a video's first and last) still counts


def window_weights(length: int, sigma: float) -> np.ndarray:
    """Weights of the ``length`` frames of a window's span in the stitched mean: a Gaussian of each
    frame's distance from the span's centre, ``sigma`` × the span wide (ones when ``sigma`` is 0).

    A window's prediction for a frame near its edge rests on context from one side only; one centred
    on the frame sees both. So with stride 1 a frame takes most from the windows centred on it, as
    overlapping tiles are blended in sliding-window segmentation (MONAI's
    ``sliding_window_inference(mode="gaussian", sigma_scale=0.125)``). Distances are fractions of the
    span, so the weights are the same at every frame rate."""
    if sigma <= 0:
        return np.ones(length)
    d = (np.arange(length) - (length - 1) / 2) / length
    return np.maximum(np.exp(-0.5 * (d / sigma) ** 2), WEIGHT_FLOOR)


class WindowBatcher:
    """Collects cropped windows and runs them through the model in batches.

    On a GPU a batch's probabilities are copied back without waiting: they are handed on when the
    next batch has been launched (or at :meth:`finish`), so decoding and cropping go on while the
    GPU works. Results reach ``on_result`` in the order the windows were added."""

    def __init__(self, model: nn.Module, batch_size: int, device: torch.device, amp: bool,
                 on_result: Callable[[list[int], np.ndarray], None], dense: bool = False, views: int = 1):
        self.model, self.batch_size, self.device, self.amp = model, batch_size, device, amp
        self.dense, self.views = dense, views
        self.on_result = on_result
        self.items: list[np.ndarray] = []
        self.keys: list[int] = []
        self.in_flight: tuple[list[int], torch.Tensor, torch.cuda.Event | None] | None = None

    def add(self, key: int, clip: np.ndarray) -> None:
        self.items.append(clip)
        self.keys.append(key)
        if len(self.items) >= self.batch_size:
            self.flush()

    @torch.no_grad()
    def flush(self) -> None:
        """Launch the collected windows, then hand on the batch launched before them."""
        if not self.items:
            return
        x = to_model_input(torch.from_numpy(np.stack(self.items)).to(self.device, non_blocking=True))
        x = square_views(x, self.views)  # (views × B, 3, T, S, S), view-major
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = self.model(x, dense=True)[1] if self.dense else self.model(x)
        probs = torch.softmax(logits.float(), dim=-1)  # (B, C), or (B, steps, C) dense, per view
        if self.views > 1:
            probs = probs.unflatten(0, (self.views, -1)).mean(0)
        done = None
        if probs.is_cuda:
            probs = probs.to("cpu", non_blocking=True)  # into pinned memory, complete once `done` is
            done = torch.cuda.Event()
            done.record()
        self._hand_on()
        self.in_flight = (self.keys, probs, done)
        self.items, self.keys = [], []

    def finish(self) -> None:
        """Run what is left and hand on every result."""
        self.flush()
        self._hand_on()

    def _hand_on(self) -> None:
        if self.in_flight is None:
            return
        keys, probs, done = self.in_flight
        self.in_flight = None
        if done is not None:
            done.synchronize()
        self.on_result(keys, probs.numpy())


@torch.no_grad()
def predict_video(
    model: nn.Module,
    video: str | Path,
    boxes: np.ndarray | None,
    *,
    frames: int | None = None,
    num_frames: int,
    sampling_rate: int,
    input_size: int,
    num_classes: int,
    stride: int = 0,
    pad: float = 0.05,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    amp: bool = True,
    progress: bool = False,
    head: str = "clip",
    timebase: TimeBase | None = None,
    crop_workers: int = -1,
    tta_views: int = 1,
    crop_mode: str = "union",
    stitch_sigma: float = 0.0,
) -> np.ndarray:
    """Per-frame class probabilities (frames, num_classes) for one video; ``frames`` is the
    video's frame count (probed when not given). With a ``timebase`` the windows and ``stride``
    are in model frames (:mod:`mvd.timebase`); the output is per video frame. Windows are cropped
    in ``crop_workers`` threads while the video decodes (-1: one per usable core, at most
    ``MAX_CROP_WORKERS``; 0: inline). ``tta_views`` > 1 averages each window's softmax over that
    many symmetries of its square crop (:func:`mvd.transforms.square_views`: 1, 2, 4 or 8).
    ``crop_mode`` is the crop rule (:data:`mvd.crop.CROP_MODES`) the model was trained with.
    ``stitch_sigma`` > 0 weighs each window's frames by :func:`window_weights`."""
    device = torch.device(device)
    amp = bool(amp and device.type == "cuda")
    model.eval()
    info = probe(video)
    n = frames or info.num_frames
    span = num_frames * sampling_rate
    stride = stride or max(1, span // 2)
    if boxes is not None and len(boxes) < n:
        raise ValueError(f"{video}: {len(boxes)} boxes for {n} frames; recompute the boxes for this video")
    windows = sliding_windows(n, num_frames, sampling_rate, stride, timebase)
    sums = np.zeros((n, num_classes), dtype=np.float64)
    weights = np.zeros(n, dtype=np.float64)  # > 0 on every frame a window covers (WEIGHT_FLOOR)

    if head not in ("clip", "dense"):
        raise ValueError(f"head must be 'clip' or 'dense', got {head!r}")
    if tta_views not in TTA_VIEWS:
        raise ValueError(f"tta_views must be one of {TTA_VIEWS}, got {tta_views!r}")
    dense = head == "dense"
    tubelet = int(getattr(model, "tubelet_size", 2))

    def on_result(keys: list[int], probs: np.ndarray) -> None:
        for w_id, p in zip(keys, probs):
            w = windows[w_id]
            end = min(w.end, n - 1)
            # a clip head labels the whole span; a dense head each frame by its time step
            wt = window_weights(w.end - w.start + 1, stitch_sigma)[:end + 1 - w.start]
            sums[w.start:end + 1] += wt[:, None] * (p[span_positions(w.indices, w.start, end, tubelet)] if dense else p)
            weights[w.start:end + 1] += wt

    batcher = WindowBatcher(model, batch_size, device, amp, on_result, dense=dense, views=tta_views)
    workers = crop_workers if crop_workers >= 0 else min(usable_cores(), MAX_CROP_WORKERS)
    bar = tqdm(total=len(windows), desc=Path(video).name, unit="window", disable=not progress, leave=False)
    for w_id, frames, _ in stream_windows(str(video), [w.indices for w in windows], boxes, width=info.width,
                                          height=info.height, size=input_size, pad=pad, workers=workers,
                                          mode=crop_mode):
        batcher.add(w_id, frames)
        bar.update(1)
    bar.close()
    batcher.finish()
    missing = weights == 0
    if missing.any():
        raise VideoReadError(f"{video}: {int(missing.sum())} frames not covered by any window (decode stopped early)")
    return (sums / weights[:, None]).astype(np.float32)


class Labelled(NamedTuple):
    info: VideoInfo
    probs: np.ndarray  # (N, C) float32 per-frame class probabilities
    result: Processed  # final per-frame labels and bouts


def label_video(model: nn.Module, spec: InferenceSpec, video: str | Path, boxes: np.ndarray | None, *,
                device: torch.device | str = "cpu", amp: bool = True, progress: bool = False) -> Labelled:
    """Probabilities, final labels and bouts of one video under a model's inference contract.

    ``boxes`` come from a full decode of the video, so their number is the number of frames that
    decode: a damaged file whose container claims more frames is scored over the frames it has."""
    info = probe(video, decode=boxes is None)
    if boxes is not None and len(boxes) < info.num_frames:
        logger.warning("%s: the container holds %d frames but %d decode; scoring the %d that decode",
                       video, info.num_frames, len(boxes), len(boxes))
        info = info._replace(num_frames=len(boxes))
    probs = predict_video(model, video, boxes, frames=info.num_frames, num_frames=spec.num_frames,
                          sampling_rate=spec.sampling_rate,
                          input_size=spec.img_size, num_classes=len(spec.postprocess.labels), stride=spec.stride,
                          pad=spec.crop_pad, batch_size=spec.batch_size, device=device, amp=amp, progress=progress,
                          head=spec.head, timebase=TimeBase(info.fps, spec.target_fps), tta_views=spec.tta_views,
                          crop_mode=spec.crop_mode, stitch_sigma=spec.stitch_sigma)
    return Labelled(info, probs, spec.postprocess.apply(probs, info.fps))
