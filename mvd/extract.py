"""Cropped windows streamed out of a video in one sequential decode.

Training samples and benchmark windows are made the same way: the frames a window samples
are cropped by the rule of ``mode`` (:data:`mvd.crop.CROP_MODES`: the union of the boxes over
exactly those frames, squared, padded and clipped to the image; or one square per frame that
follows the animal) and resized to the model's input size. Frames are kept only until the last
window that needs them has been emitted, so memory holds about one window span of frames.

Only the frames some window samples are converted to RGB. Converting and resizing full frames
cost far more than decoding them, so with ``workers`` both run in that many threads (OpenCV
releases the GIL) while decoding goes on; windows still come out in the same order with the same
pixels, and at most a few per thread wait at a time.
"""

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from .crop import CROP_MODES, crop_resize, window_crops
from .video import VideoReadError, decode_frames, frame_to_rgb


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
    mode: str = "union",
) -> Iterator[tuple[int, np.ndarray, tuple[int, int, int, int]]]:
    """Yield ``(window position, frames (T, size, size, 3) uint8, crop box)`` as each window completes.

    ``windows`` holds the frame indices of each window. Windows are emitted in order of their
    last frame. ``workers`` > 0 crops and resizes in that many threads (same output, same order).
    The crop box is the window's crop under ``mode``; for ``track`` the box around its per-frame
    crops. Raises :class:`VideoReadError` if the video ends before a window's frames.
    """
    if mode not in CROP_MODES:
        raise ValueError(f"crop mode must be one of {CROP_MODES}, got {mode!r}")
    if not len(windows):
        return
    kw = dict(width=width, height=height, size=size, pad=pad, end=end, mode=mode)
    if workers <= 0:
        yield from _stream(video, windows, boxes, frame_to_rgb, lambda frames, crop: crop_resize(frames, crop, size),
                           **kw)
        return
    pending: deque[tuple[int, Future, tuple[int, int, int, int]]] = deque()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="crop")
    try:
        # a window's job is queued after the conversions of its frames, so the pool's
        # first-in-first-out queue has started all of them before the job waits on them
        stopped: VideoReadError | None = None
        try:
            for item in _stream(video, windows, boxes, lambda frame: pool.submit(frame_to_rgb, frame),
                                lambda frames, crop: pool.submit(_crop_converted, frames, crop, size), **kw):
                pending.append(item)
                while pending and (len(pending) > 4 * workers or pending[0][1].done()):
                    yield _result(pending.popleft())
        except VideoReadError as e:  # the windows cut before the video ended still come out first
            stopped = e
        while pending:
            yield _result(pending.popleft())
        if stopped is not None:
            raise stopped
    finally:  # stopped early (an error, or the consumer closed us): drop the work not yet started
        pool.shutdown(wait=True, cancel_futures=True)


def _result(item: tuple[int, Future, tuple[int, int, int, int]]) -> tuple[int, np.ndarray, tuple[int, int, int, int]]:
    w, job, crop = item
    return w, job.result(), crop


def _crop_converted(frames: list[Future], crop: Any, size: int) -> np.ndarray:
    return crop_resize([f.result() for f in frames], crop, size)


def _outer(crop: Any) -> tuple[int, int, int, int]:
    """One box for a window's crop: itself, or the box around its per-frame crops."""
    if isinstance(crop, tuple):
        return crop
    c = np.asarray(crop, dtype=np.float64)
    return (int(np.floor(c[:, 0].min())), int(np.floor(c[:, 1].min())), int(np.ceil(c[:, 2].max())),
            int(np.ceil(c[:, 3].max())))


def _stream(video: str, windows: Sequence[np.ndarray], boxes: np.ndarray | None, convert: Callable[[Any], Any],
            resize: Callable[[list[Any], Any], Any], *, width: int, height: int,
            size: int, pad: float, end: int | None, mode: str) -> Iterator[tuple[int, Any, tuple[int, int, int, int]]]:
    """The sequential decode behind :func:`stream_windows`: ``convert(decoded frame)`` makes each
    sampled frame (RGB, or a future of it) and ``resize(frames, crop)`` each window's output (the
    resized frames, or a future of them)."""
    ready_at: dict[int, list[int]] = {}
    needed_until: dict[int, int] = {}
    for w, idx in enumerate(windows):
        last = int(np.max(idx))
        ready_at.setdefault(last, []).append(w)
        for f in idx:
            needed_until[int(f)] = max(needed_until.get(int(f), -1), last)
    last_needed = max(ready_at) if end is None else min(end, max(ready_at))
    keep: dict[int, Any] = {}
    emitted = 0
    for idx, frame in decode_frames(video, last_needed):
        if idx in needed_until:
            keep[idx] = convert(frame)
        for w in ready_at.get(idx, ()):
            ind = windows[w]
            crop = window_crops(mode, boxes, ind, width, height, pad) if boxes is not None else (0, 0, width, height)
            yield w, resize([keep[int(f)] for f in ind], crop), _outer(crop)
            emitted += 1
        for f in [f for f in keep if needed_until[f] <= idx]:
            del keep[f]
    if emitted < len(windows):
        raise VideoReadError(f"{video} ended before frame {max(ready_at)}: "
                             f"{len(windows) - emitted} of {len(windows)} windows could not be cut")
