"""Cropped windows streamed out of a video in one sequential decode.

Training samples and benchmark windows are made the same way: the frames a window samples
are cropped with the union of the boxes over exactly those frames (squared, padded, clipped
to the image) and resized to the model's input size. Frames are kept only until the last
window that needs them has been emitted, so memory holds about one window span of frames.

Resizing full frames costs far more than decoding them, so with ``workers`` the windows are cropped
in that many threads (OpenCV releases the GIL) while decoding goes on; windows still come out in
the same order with the same pixels, and at most a few per thread wait at a time.
"""

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

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
    workers: int = 0,
) -> Iterator[tuple[int, np.ndarray, tuple[int, int, int, int]]]:
    """Yield ``(window position, frames (T, size, size, 3) uint8, crop box)`` as each window completes.

    ``windows`` holds the frame indices of each window. Windows are emitted in order of their
    last frame. ``workers`` > 0 crops and resizes in that many threads (same output, same order).
    Raises :class:`VideoReadError` if the video ends before a window's frames.
    """
    if not len(windows):
        return
    kw = dict(width=width, height=height, size=size, pad=pad, end=end)
    if workers <= 0:
        yield from _stream(video, windows, boxes, lambda frames, crop: crop_resize(frames, crop, size), **kw)
        return
    pending: deque[tuple[int, Future, tuple[int, int, int, int]]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="crop") as pool:
        try:
            stopped: VideoReadError | None = None
            try:
                for item in _stream(video, windows, boxes,
                                    lambda frames, crop: pool.submit(crop_resize, frames, crop, size), **kw):
                    pending.append(item)
                    while pending and (len(pending) > 4 * workers or pending[0][1].done()):
                        w, job, crop = pending.popleft()
                        yield w, job.result(), crop
            except VideoReadError as e:  # the windows cut before the video ended still come out first
                stopped = e
            while pending:
                w, job, crop = pending.popleft()
                yield w, job.result(), crop
            if stopped is not None:
                raise stopped
        finally:
            for _, job, _ in pending:
                job.cancel()


def _stream(video: str, windows: Sequence[np.ndarray], boxes: np.ndarray | None,
            resize: Callable[[list[np.ndarray], tuple[int, int, int, int]], Any], *, width: int, height: int,
            size: int, pad: float, end: int | None) -> Iterator[tuple[int, Any, tuple[int, int, int, int]]]:
    """The sequential decode behind :func:`stream_windows`; ``resize(frames, crop)`` makes each
    window's output (the resized frames, or a future of them)."""
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
            yield w, resize([keep[int(f)] for f in ind], crop), crop
            emitted += 1
        for f in [f for f in keep if needed_until[f] <= idx]:
            del keep[f]
    if emitted < len(windows):
        raise VideoReadError(f"{video} ended before frame {max(ready_at)}: "
                             f"{len(windows) - emitted} of {len(windows)} windows could not be cut")
