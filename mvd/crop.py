"""The crop rule around the mouse, as pure functions.

For a clip or a sliding window: union of the mouse boxes over exactly its frames → grow the
short side to a square (centred) → pad by ``pad_frac`` of the side on each side (0.10 for
training, 0.05 for inference) → clip to the image → resize to ``size`` × ``size``. Without
any box in those frames the crop is the full frame.

Boxes are ``x1, y1, x2, y2(, score)`` in original-frame pixels with ``x2``/``y2`` the right and
bottom edges; crop boxes are integer ``(x1, y1, x2, y2)`` usable as ``frame[y1:y2, x1:x2]``.
Clipping keeps the box inside the image, so a crop near a border can be non-square and is
stretched to the square output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["union_box", "square_crop_box", "crop_resize", "crop_for_frames"]


def union_box(boxes: np.ndarray) -> np.ndarray | None:
    """Smallest ``(x1, y1, x2, y2)`` float64 box holding every non-NaN row of ``boxes`` (k, 4+); None if none."""
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] < 4:
        raise ValueError(f"boxes must have shape (k, 5) = x1, y1, x2, y2, score; got {b.shape}")
    valid = np.isfinite(b[:, :4]).all(axis=1)
    if not valid.any():
        return None
    v = b[valid, :4]
    return np.array([v[:, 0].min(), v[:, 1].min(), v[:, 2].max(), v[:, 3].max()], dtype=np.float64)


def square_crop_box(
    box_xyxy: np.ndarray | Sequence[float] | None, frame_w: int, frame_h: int, pad_frac: float
) -> tuple[int, int, int, int]:
    """Square (short side grown, centred), padded by ``pad_frac`` × side per side, clipped; int pixels.

    ``None`` or a box with NaN gives the full frame. Edges are rounded outwards.
    """
    if frame_w <= 0 or frame_h <= 0:
        raise ValueError(f"frame size must be positive, got {frame_w}x{frame_h}")
    if not pad_frac >= 0:
        raise ValueError(f"pad_frac must be >= 0, got {pad_frac}")
    if box_xyxy is None:
        return 0, 0, int(frame_w), int(frame_h)
    b = np.asarray(box_xyxy, dtype=np.float64).ravel()
    if b.size < 4:
        raise ValueError(f"box must be x1, y1, x2, y2; got {b.tolist()}")
    x1, y1, x2, y2 = (float(v) for v in b[:4])
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return 0, 0, int(frame_w), int(frame_h)
    if x2 < x1 or y2 < y1:
        raise ValueError(f"box {b[:4].tolist()} has x2 < x1 or y2 < y1")
    side = max(x2 - x1, y2 - y1)
    half = side * (0.5 + pad_frac)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    # round to 1e-6 px first so float noise (200 * 0.55 = 110.00000000000001) cannot add a pixel
    ox1 = min(max(0, math.floor(round(cx - half, 6))), frame_w - 1)
    oy1 = min(max(0, math.floor(round(cy - half, 6))), frame_h - 1)
    ox2 = max(min(frame_w, math.ceil(round(cx + half, 6))), ox1 + 1)
    oy2 = max(min(frame_h, math.ceil(round(cy + half, 6))), oy1 + 1)
    return int(ox1), int(oy1), int(ox2), int(oy2)


def crop_resize(frames: np.ndarray | Sequence[np.ndarray], crop_xyxy: Sequence[int], size: int) -> np.ndarray:
    """Crop ``frames`` (T, H, W, 3), an array or a list of equal (H, W, 3) frames (never stacked at
    full size), to ``crop_xyxy`` and resize to (T, size, size, 3) uint8.

    INTER_AREA when the crop shrinks in both directions, INTER_LINEAR otherwise.
    """
    f = list(frames) if isinstance(frames, (list, tuple)) else np.asarray(frames)
    shapes = {np.shape(x) for x in f}
    shape = shapes.pop() if len(shapes) == 1 else ()
    if len(shape) != 3 or shape[2] != 3:
        got = np.shape(f) if isinstance(f, np.ndarray) else f"{len(f)} frames of shapes {sorted(shapes | {shape})}"
        raise ValueError(f"frames must have shape (T, H, W, 3), got {got}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    H, W, _ = shape
    x1, y1, x2, y2 = (int(v) for v in crop_xyxy)
    if not (0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H):
        raise ValueError(f"crop {(x1, y1, x2, y2)} is empty or outside the {W}x{H} frame")
    shrink = (x2 - x1) >= size and (y2 - y1) >= size
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = np.empty((len(f), size, size, 3), np.uint8)
    for t, frame in enumerate(f):
        part = frame[y1:y2, x1:x2]
        if part.dtype != np.uint8:
            part = np.clip(part, 0, 255).astype(np.uint8)
        out[t] = cv2.resize(part, (size, size), interpolation=interp)
    return out


def crop_for_frames(
    boxes_video: np.ndarray, frame_indices: Sequence[int], frame_w: int, frame_h: int, pad_frac: float
) -> tuple[int, int, int, int]:
    """Crop box for a clip: union of ``boxes_video`` rows at exactly ``frame_indices`` → square → pad → clip."""
    b = np.asarray(boxes_video)
    if b.ndim != 2 or b.shape[1] < 4:
        raise ValueError(f"boxes must have shape (N, 5), got {b.shape}")
    idx = np.asarray(list(frame_indices), dtype=np.int64)
    if idx.size == 0:
        raise ValueError("crop_for_frames needs at least one frame index")
    bad = idx[(idx < 0) | (idx >= len(b))]
    if bad.size:
        raise IndexError(f"frame {int(bad[0])} is outside the {len(b)} frames that have boxes")
    return square_crop_box(union_box(b[idx]), frame_w, frame_h, pad_frac)
