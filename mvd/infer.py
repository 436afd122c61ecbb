"""Sliding-window inference over a full-length video, decoded once, in order.

Windows of ``num_frames`` frames every ``sampling_rate`` frames advance ``stride`` frames; a
last window is aligned to the video's end. A ring buffer keeps the frames of the windows
still open while the video streams through, each window is cropped with the union of the
boxes of exactly the frames it samples (then squared, padded, clipped, resized) and windows
are batched through the model. A frame's class probabilities are the mean of the softmax of
every window whose span covers it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from .clips import sliding_windows
from .crop import crop_for_frames, crop_resize
from .transforms import normalize, to_tensor
from .video import VideoReadError, iter_frames, probe

logger = logging.getLogger(__name__)


class WindowBatcher:
    """Collects cropped windows and runs them through the model in batches."""

    def __init__(self, model: nn.Module, batch_size: int, device: torch.device, amp: bool,
                 on_result: Callable[[list[int], np.ndarray], None]):
        self.model, self.batch_size, self.device, self.amp = model, batch_size, device, amp
        self.on_result = on_result
        self.items: list[np.ndarray] = []
        self.keys: list[int] = []

    def add(self, key: int, clip: np.ndarray) -> None:
        self.items.append(clip)
        self.keys.append(key)
        if len(self.items) >= self.batch_size:
            self.flush()

    @torch.no_grad()
    def flush(self) -> None:
        if not self.items:
            return
        x = torch.stack([to_tensor(c) for c in self.items]).to(self.device, non_blocking=True)
        x = normalize(x)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = self.model(x)
        probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
        self.on_result(self.keys, probs)
        self.items, self.keys = [], []


@torch.no_grad()
def predict_video(
    model: nn.Module,
    video: str | Path,
    boxes: np.ndarray | None,
    *,
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
) -> np.ndarray:
    """Per-frame class probabilities (num_frames_in_video, num_classes) for one video."""
    device = torch.device(device)
    amp = bool(amp and device.type == "cuda")
    model.eval()
    info = probe(video)
    n = info.num_frames
    span = num_frames * sampling_rate
    stride = stride or max(1, span // 2)
    if boxes is not None and len(boxes) < n:
        raise ValueError(f"{video}: {len(boxes)} boxes for {n} frames; recompute the boxes for this video")
    windows = sliding_windows(n, num_frames, sampling_rate, stride)
    # the window is complete once its last sampled frame has been decoded
    ready_at: dict[int, list[int]] = {}
    for w_id, w in enumerate(windows):
        ready_at.setdefault(int(w.indices.max()), []).append(w_id)
    keep = {}  # frame index -> frame, only frames some open window still needs
    needed_until: dict[int, int] = {}
    for w_id, w in enumerate(windows):
        last = int(w.indices.max())
        for f in w.indices:
            needed_until[int(f)] = max(needed_until.get(int(f), -1), last)

    sums = np.zeros((n, num_classes), dtype=np.float64)
    counts = np.zeros(n, dtype=np.int64)

    def on_result(keys: list[int], probs: np.ndarray) -> None:
        for w_id, p in zip(keys, probs):
            w = windows[w_id]
            lo, hi = w.start, min(w.end, n - 1)
            sums[lo:hi + 1] += p
            counts[lo:hi + 1] += 1

    batcher = WindowBatcher(model, batch_size, device, amp, on_result)
    decoded = 0
    bar = tqdm(total=n, desc=Path(video).name, unit="frame", disable=not progress, leave=False)
    for idx, frame in iter_frames(video):
        decoded = idx + 1
        if idx >= n:
            break
        if idx in needed_until:
            keep[idx] = frame
        for w_id in ready_at.get(idx, ()):
            w = windows[w_id]
            frames = np.stack([keep[int(f)] for f in w.indices])
            crop = crop_for_frames(boxes, w.indices, info.width, info.height, pad) if boxes is not None else \
                (0, 0, info.width, info.height)
            batcher.add(w_id, crop_resize(frames, crop, input_size))
        for f in [f for f in keep if needed_until[f] <= idx]:
            del keep[f]
        bar.update(1)
    bar.close()
    batcher.flush()
    if decoded < n:
        if decoded == 0:
            raise VideoReadError(f"{video}: no frame could be decoded")
        logger.warning("%s: container claims %d frames but %d decoded; scoring the decoded ones", video, n, decoded)
        sums, counts = sums[:decoded], counts[:decoded]
        # windows that needed missing frames never ran: cover the tail with what exists
    missing = counts == 0
    if missing.any():
        raise VideoReadError(f"{video}: {int(missing.sum())} frames not covered by any window (decode stopped early)")
    return (sums / counts[:, None]).astype(np.float32)
