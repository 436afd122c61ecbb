"""Video decoding: probe a file and stream its frames sequentially as RGB uint8.

PyAV is the backend. Frames are never seeked one window at a time: random access costs a
keyframe interval per call, so every reader here decodes forward in one pass. For the common
``yuv420p`` layout the colour conversion is done by OpenCV on the raw I420 buffer, which is
markedly faster than PyAV's own ``rgb24`` conversion; other layouts (``yuv444p``, ``gray``,
10-bit…) fall back to PyAV's converter.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import av
import cv2
import numpy as np

logger = logging.getLogger(__name__)

_I420 = {"yuv420p", "yuvj420p"}


class VideoReadError(RuntimeError):
    """A video cannot be opened or decoded; the message names the file and what to do."""


class VideoInfo(NamedTuple):
    path: str
    fps: float
    num_frames: int
    width: int
    height: int
    codec: str
    pix_fmt: str


def _open(path: str | Path) -> av.container.InputContainer:
    p = Path(path)
    if not p.is_file():
        raise VideoReadError(f"video {p} does not exist or is not a file")
    if p.stat().st_size == 0:
        raise VideoReadError(f"video {p} is empty (0 bytes): re-export or re-upload it")
    try:
        container = av.open(str(p))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise VideoReadError(
            f"cannot open video {p}: {e}. Check that it is a video file (mp4/avi/mov/mkv) "
            "that ffmpeg can read, or transcode it: ffmpeg -i IN -pix_fmt yuv420p -c:v libx264 OUT.mp4"
        ) from e
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"{p} has no video stream")
    return container


def count_decodable(path: str | Path) -> int:
    """Frames that actually decode (no colour conversion). A damaged or truncated file can hold
    more packets than frames its decoder gives back."""
    n = 0
    for n, _ in enumerate(decode_frames(path), start=1):
        pass
    return n


def probe(path: str | Path, *, decode: bool = False) -> VideoInfo:
    """Size, frame rate and frame count: packets counted by demuxing, nothing decoded; with
    ``decode`` the count is of the frames that decode (slower, exact for damaged files too)."""
    info = _probe(path)
    if not decode:
        return info
    n = count_decodable(path)
    if n == 0:
        raise VideoReadError(f"video {path}: no frame decodes; re-export or transcode it")
    if n != info.num_frames:
        logger.warning("%s: the container holds %d frames but %d decode; using the %d that decode",
                       path, info.num_frames, n, n)
    return info._replace(num_frames=n)


def _probe(path: str | Path) -> VideoInfo:
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or float(rate) <= 0:
            raise VideoReadError(f"video {path} has no usable frame rate; re-mux it with an explicit rate")
        n = 0
        pts: list[int] = []
        try:
            for packet in container.demux(stream):
                if packet.size:
                    n += 1
                    if packet.pts is not None:
                        pts.append(int(packet.pts))
        except av.error.FFmpegError as e:
            raise VideoReadError(f"video {path} is corrupt after {n} frames: {e}") from e
        ctx = stream.codec_context
        if n == 0:
            raise VideoReadError(f"video {path} holds no frames")
        if _variable_rate(pts):
            raise VideoReadError(
                f"video {path} has a variable frame rate (its frame timestamps are unevenly spaced), so frame "
                "numbers are not a time base; convert it to a constant rate first, e.g. "
                "ffmpeg -i IN -fps_mode cfr -r <fps> -c:v libx264 OUT.mp4")
        return VideoInfo(str(path), float(rate), n, int(ctx.width), int(ctx.height), ctx.name, str(ctx.pix_fmt))
    finally:
        container.close()


def _variable_rate(pts: list[int], tolerance: float = 0.25, share: float = 0.05) -> bool:
    """True when more than ``share`` of the frame intervals differ from the typical one by more than
    ``tolerance`` of it (a constant-rate stream has equal intervals, B-frames or not)."""
    if len(pts) < 8:
        return False
    d = np.diff(np.sort(np.asarray(pts, dtype=np.int64)))
    d = d[d > 0]
    if d.size < 7:
        return False
    typical = float(np.median(d))
    return float(np.mean(np.abs(d - typical) > tolerance * typical)) > share


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """One decoded frame as an (H, W, 3) RGB uint8 array."""
    if frame.format.name in _I420 and frame.width % 2 == 0 and frame.height % 2 == 0:
        return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
    return frame.to_ndarray(format="rgb24")


def decode_frames(path: str | Path, end: int | None = None) -> Iterator[tuple[int, av.VideoFrame]]:
    """``(index, decoded frame)`` in order, up to ``end`` inclusive, not yet converted to RGB
    (:func:`frame_to_rgb`); errors name the file and frame."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        idx = -1
        try:
            for frame in container.decode(stream):
                idx += 1
                if end is not None and idx > end:
                    break
                yield idx, frame
        except av.error.FFmpegError as e:
            raise VideoReadError(f"decoding {path} failed at frame {idx + 1}: {e}") from e
    finally:
        container.close()


def iter_frames(
    path: str | Path, start: int = 0, end: int | None = None, step: int = 1
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, rgb)`` for frames ``start, start+step, …`` up to ``end`` inclusive.

    Decodes forward from the first frame; frames before ``start`` are decoded but not converted.
    """
    if start < 0 or step < 1 or (end is not None and end < start):
        raise ValueError(f"bad frame range start={start} end={end} step={step} for {path}")
    for idx, frame in decode_frames(path, end):
        if idx >= start and (idx - start) % step == 0:
            yield idx, frame_to_rgb(frame)


def read_frames(path: str | Path, indices: Sequence[int]) -> np.ndarray:
    """Frames at ``indices`` (any order, repeats allowed) as (len, H, W, 3), decoded in one pass.

    Raises :class:`VideoReadError` if the video ends before the largest index.
    """
    if len(indices) == 0:
        raise ValueError("read_frames needs at least one index")
    wanted = sorted(set(int(i) for i in indices))
    want = frozenset(wanted)
    got: dict[int, np.ndarray] = {}
    for idx, rgb in iter_frames(path, wanted[0], wanted[-1]):
        if idx in want:
            got[idx] = rgb
    missing = [i for i in wanted if i not in got]
    if missing:
        raise VideoReadError(
            f"video {path} ended before frame {missing[0]} ({len(got)} of {len(wanted)} requested frames decoded)"
        )
    return np.stack([got[int(i)] for i in indices])


def iter_frames_resized(path: str | Path, width: int, height: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, rgb)`` of every frame scaled to ``width`` × ``height`` by the decoder's
    scaler (area interpolation) in the same step as the colour conversion — much cheaper than
    converting at full size and shrinking afterwards."""
    for idx, frame in decode_frames(path):
        yield idx, frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
