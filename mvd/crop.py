"""The crop rule around the mouse, as pure functions.

For a clip or a sliding window: union of the mouse boxes over exactly its frames → grow the
short side to a square (centred) → pad by ``pad_frac`` of the side on each side (0.10 for
training, 0.05 for inference) → clip to the image → resize to ``size`` × ``size``. Without
any box in those frames the crop is the full frame.

``track`` (``data.crop_mode``) follows the animal instead: squares of the union rule's size,
centred on the straight line that best fits the box centres over the clip's frames and one clip
span on each side, placed between pixels. A walking animal then stays put in the crop while a
twitch, far quicker than the line, still moves in it; in the union rule's crop the whole body of
a walking animal sweeps across, and that sweep drowns the twitch.

Boxes are ``x1, y1, x2, y2(, score)`` in original-frame pixels with ``x2``/``y2`` the right and
bottom edges; union crop boxes are integer ``(x1, y1, x2, y2)`` usable as ``frame[y1:y2, x1:x2]``,
track crop boxes have fractional corners and whole-pixel sides.
Clipping keeps the box inside the image, so a crop near a border can be non-square and is
stretched to the square output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from .config import CROP_MODES

# bumped when a rule's code cuts other pixels from the same boxes, so cached windows it cut are not reused
# (track 2: the line sees a clip span on each side, corners between pixels)
CROP_RULE_VERSIONS = {"union": 1, "track": 2}

__all__ = ["CROP_MODES", "CROP_RULE_VERSIONS", "union_box", "square_crop_box", "crop_resize", "crop_for_frames",
           "track_crop_boxes", "window_crops"]


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


def crop_resize(frames: np.ndarray | Sequence[np.ndarray], crop_xyxy: Sequence[float] | Sequence[Sequence[float]],
                size: int) -> np.ndarray:
    """Crop ``frames`` (T, H, W, 3), an array or a list of equal (H, W, 3) frames (never stacked at
    full size), to ``crop_xyxy`` (one box, or T boxes: one per frame) and resize to (T, size, size, 3) uint8.

    A box with whole-pixel corners is cut as ``frame[y1:y2, x1:x2]``; one with fractional corners
    (whole-pixel width and height) is sampled between pixels (bilinear) at its place. INTER_AREA
    when the crop shrinks in both directions, INTER_LINEAR otherwise.
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
    boxes = np.asarray(crop_xyxy, dtype=np.float64)
    if boxes.ndim == 1:
        boxes = np.broadcast_to(boxes, (len(f), boxes.size))
    if boxes.shape != (len(f), 4):
        raise ValueError(f"crop must be one (x1, y1, x2, y2) box or one per frame ({len(f)}), got shape {boxes.shape}")
    out = np.empty((len(f), size, size, 3), np.uint8)
    for t, frame in enumerate(f):
        x1, y1, x2, y2 = (float(v) for v in boxes[t])
        if not (0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H):
            raise ValueError(f"crop {(x1, y1, x2, y2)} is empty or outside the {W}x{H} frame")
        if frame.dtype != np.uint8:
            frame = np.clip(frame, 0, 255).astype(np.uint8)
        if all(v == int(v) for v in (x1, y1, x2, y2)):
            part = frame[int(y1):int(y2), int(x1):int(x2)]
        else:
            w, h = round(x2 - x1), round(y2 - y1)
            if abs(w - (x2 - x1)) > 1e-6 or abs(h - (y2 - y1)) > 1e-6:
                raise ValueError(f"crop {(x1, y1, x2, y2)} with fractional corners must be whole pixels wide and high")
            # pixel centres lie on whole coordinates: the patch's centre is its first pixel + (w - 1) / 2
            part = cv2.getRectSubPix(frame, (w, h), (x1 + (w - 1) / 2.0, y1 + (h - 1) / 2.0))
        shrink = part.shape[1] >= size and part.shape[0] >= size
        out[t] = cv2.resize(part, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out


def crop_for_frames(
    boxes_video: np.ndarray, frame_indices: Sequence[int], frame_w: int, frame_h: int, pad_frac: float
) -> tuple[int, int, int, int]:
    """Crop box for a clip: union of ``boxes_video`` rows at exactly ``frame_indices`` → square → pad → clip."""
    return square_crop_box(union_box(_rows(boxes_video, frame_indices)), frame_w, frame_h, pad_frac)


def _rows(boxes_video: np.ndarray, frame_indices: Sequence[int]) -> np.ndarray:
    """The ``(k, 4)`` float64 boxes of a clip's frames, the indices checked."""
    b = np.asarray(boxes_video)
    if b.ndim != 2 or b.shape[1] < 4:
        raise ValueError(f"boxes must have shape (N, 5), got {b.shape}")
    idx = np.asarray(list(frame_indices), dtype=np.int64)
    if idx.size == 0:
        raise ValueError("a clip's crop needs at least one frame index")
    bad = idx[(idx < 0) | (idx >= len(b))]
    if bad.size:
        raise IndexError(f"frame {int(bad[0])} is outside the {len(b)} frames that have boxes")
    return b[idx, :4].astype(np.float64)


def track_crop_boxes(
    boxes_video: np.ndarray, frame_indices: Sequence[int], frame_w: int, frame_h: int, pad_frac: float
) -> list[tuple[float, float, float, float]]:
    """One crop box per frame of a clip that follows the animal (``data.crop_mode=track``).

    Every box is a square centred on the least-squares line through the box centres against the
    frame index, fitted over the clip's frames and one clip span of frames on each side: steady
    walking is taken out, while a twitch or a grooming stroke, far shorter than the three spans the
    line sees, hardly bends it and so still moves in the crop. All squares have one side: the union
    rule's (:func:`crop_for_frames`, the same field of view), or, if larger, the smallest that holds
    every box of the clip around its frame's point of the line, padded by ``pad_frac`` of it on each
    side (at most the frame's short side); a square is shifted to lie inside the image. Corners are
    not rounded (:func:`crop_resize` samples between pixels), so a slowly walking animal does not
    jump by whole pixels from frame to frame. Frames without a box take the line's value; a clip
    with no box at all gets full frames.
    """
    b = _rows(boxes_video, frame_indices)
    n = len(b)
    ok = np.isfinite(b).all(axis=1)
    if not ok.any():
        return [(0.0, 0.0, float(frame_w), float(frame_h))] * n
    if not pad_frac >= 0:
        raise ValueError(f"pad_frac must be >= 0, got {pad_frac}")
    v = b[ok]
    if (v[:, 2] < v[:, 0]).any() or (v[:, 3] < v[:, 1]).any():
        raise ValueError("boxes must have x2 >= x1 and y2 >= y1")
    idx = np.asarray(list(frame_indices), dtype=np.int64)
    span = int(idx.max() - idx.min()) + 1
    lo, hi = max(0, int(idx.min()) - span), min(len(boxes_video), int(idx.max()) + span + 1)
    ctx = np.asarray(boxes_video[lo:hi, :4], dtype=np.float64)
    cok = np.isfinite(ctx).all(axis=1)
    t = np.arange(lo, hi, dtype=np.float64)[cok]
    centres = np.stack([(ctx[cok, 0] + ctx[cok, 2]) / 2.0, (ctx[cok, 1] + ctx[cok, 3]) / 2.0], axis=1)
    if len(t) >= 2:
        coef = np.polyfit(t, centres, 1)  # (2, 2): slope and intercept of x and of y
        line = idx.astype(np.float64)[:, None] * coef[0] + coef[1]
    else:
        line = np.repeat(centres.mean(axis=0, keepdims=True), n, axis=0)
    # the side: the union rule's (the same view of the animal), and at least what holds every box
    # around its frame's point of the line
    on = line[ok]
    half = float(np.max(np.concatenate([on - v[:, :2], v[:, 2:] - on], axis=1)))
    union = union_box(v)
    side = max(2.0 * half, union[2] - union[0], union[3] - union[1], 1.0) * (1.0 + 2.0 * pad_frac)
    s = int(min(max(1, math.ceil(round(side, 6))), frame_w, frame_h))
    # rounded to 1e-6 px so float noise (74.99999999999994) does not make a whole-pixel corner fractional
    x1 = np.round(np.clip(line[:, 0] - s / 2.0, 0.0, frame_w - s), 6)
    y1 = np.round(np.clip(line[:, 1] - s / 2.0, 0.0, frame_h - s), 6)
    return [(float(a), float(c), float(a) + s, float(c) + s) for a, c in zip(x1, y1)]


def window_crops(
    mode: str, boxes_video: np.ndarray, frame_indices: Sequence[int], frame_w: int, frame_h: int, pad_frac: float
) -> tuple[int, int, int, int] | list[tuple[float, float, float, float]]:
    """The crop of a clip under ``mode`` (:data:`CROP_MODES`): one box (union) or one per frame (track)."""
    if mode == "union":
        return crop_for_frames(boxes_video, frame_indices, frame_w, frame_h, pad_frac)
    if mode == "track":
        return track_crop_boxes(boxes_video, frame_indices, frame_w, frame_h, pad_frac)
    raise ValueError(f"crop mode must be one of {CROP_MODES}, got {mode!r}")
