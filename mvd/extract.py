"""Cut training clips out of one video: one sequential decode, each clip cropped with the union
of the boxes over its own frames (square, padded, clipped) and resized to the stored size."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from .clips import Clip
from .crop import crop_for_frames, crop_resize
from .video import VideoReadError, iter_frames


def extract_clips(
    video: str,
    clips: Sequence[Clip],
    boxes: np.ndarray | None,
    *,
    width: int,
    height: int,
    size: int,
    pad: float,
) -> Iterator[tuple[Clip, np.ndarray, tuple[int, int, int, int]]]:
    """Yield ``(clip, frames (T, size, size, 3) uint8, crop box)`` in order of clip end."""
    if not clips:
        return
    crops = []
    for c in clips:
        idx = np.arange(c.start, c.end + 1)
        crops.append(crop_for_frames(boxes, idx, width, height, pad) if boxes is not None else (0, 0, width, height))
    order = sorted(range(len(clips)), key=lambda i: clips[i].end)
    parts: dict[int, list[np.ndarray]] = {i: [] for i in range(len(clips))}
    last = max(c.end for c in clips)
    first = min(c.start for c in clips)
    k = 0
    for idx, frame in iter_frames(video, first, last):
        for i, c in enumerate(clips):
            if c.start <= idx <= c.end:
                parts[i].append(crop_resize(frame[None], crops[i], size)[0])
        while k < len(order) and clips[order[k]].end == idx:
            i = order[k]
            yield clips[i], np.stack(parts.pop(i)), crops[i]
            k += 1
    if k < len(order):
        raise VideoReadError(f"{video} ended before frame {clips[order[k]].end}; its clips cannot be cut")
