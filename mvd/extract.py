"""Cropped windows streamed out of a video in one sequential decode.

Training samples and benchmark windows are made the same way: the frames a window samples
are cropped with the union of the boxes over exactly those frames (squared, padded, clipped
to the image) and resized to the model's input size. Frames are kept only until the last
window that needs them has been emitted, so memory holds about one window span of frames.
"""

from collections.abc import Iterator, Sequence

import numpy as np

from .crop import crop_for_frames, crop_resize
from .video import VideoReadError, iter_frames


def stream_windows(
    video: str,
    windows: Sequence[np.ndarray],
    boxes: np.ndarray | None,
    *,
    width: int,
    height: int,
    size: int,
    pad: float,
    end: int | None = None,
) -> Iterator[tuple[int, np.ndarray, tuple[int, int, int, int]]]:
    """Yield ``(window position, frames (T, size, size, 3) uint8, crop box)`` as each window completes.

    ``windows`` holds the frame indices of each window. Windows are emitted in order of their
    last frame. Raises :class:`VideoReadError` if the video ends before a window's frames.
    """
    if not len(windows):
        return
    ready_at: dict[int, list[int]] = {}
    needed_until: dict[int, int] = {}
    for w, idx in enumerate(windows):
        last = int(np.max(idx))
        ready_at.setdefault(last, []).append(w)
        for f in idx:
            needed_until[int(f)] = max(needed_until.get(int(f), -1), last)
    first = min(needed_until)
    last_needed = max(ready_at) if end is None else min(end, max(ready_at))
    keep: dict[int, np.ndarray] = {}
    emitted = 0
    for idx, frame in iter_frames(video, first, last_needed):
        if idx in needed_until:
            keep[idx] = frame
        for w in ready_at.get(idx, ()):
            ind = windows[w]
            crop = crop_for_frames(boxes, ind, width, height, pad) if boxes is not None else (0, 0, width, height)
            yield w, crop_resize(np.stack([keep[int(f)] for f in ind]), crop, size), crop
            emitted += 1
        for f in [f for f in keep if needed_until[f] <= idx]:
            del keep[f]
    if emitted < len(windows):
        raise VideoReadError(f"{video} ended before frame {max(ready_at)}: "
                             f"{len(windows) - emitted} of {len(windows)} windows could not be cut")
