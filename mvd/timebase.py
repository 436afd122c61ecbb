"""The model's time base: every video is seen at one frame rate, the model's ``target_fps``.

A model that counts frames rather than seconds sees a twitch filmed at 120 fps four times
slower than the one it learnt at 30 fps. So windows are laid out in *model frames* (at
``target_fps``) and each model frame reads the nearest video frame: model frame ``t`` of a video
at ``fps`` is video frame ``round(t × fps / target_fps)``. Nothing is re-encoded: only the frame
indices a window samples change. Outputs stay in each video's own frames (every video frame
takes the prediction of the model frame at or before it) and its own seconds.

``target_fps = 0`` means no resampling (one model frame per video frame).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["TimeBase", "target_fps_for"]


class TimeBase(NamedTuple):
    video_fps: float
    target_fps: float = 0.0  # 0 = the video's own rate

    @property
    def ratio(self) -> float:
        """Video frames per model frame."""
        if not self.target_fps:
            return 1.0
        if not (math.isfinite(self.video_fps) and self.video_fps > 0):
            raise ValueError(f"video frame rate {self.video_fps!r} is not usable; it must be > 0")
        return float(self.video_fps) / float(self.target_fps)

    def to_video(self, model_frames: np.ndarray | int, video_frames: int | None = None) -> np.ndarray:
        """Video frame index of each model frame (nearest, halves up; clipped to the video when its length is given)."""
        f = np.floor(np.asarray(model_frames, dtype=np.float64) * self.ratio + 0.5).astype(np.int64)
        return np.clip(f, 0, video_frames - 1) if video_frames is not None else f

    def to_model(self, video_frames: np.ndarray | int) -> np.ndarray:
        """Model frame index of each video frame: the model frame at or before it."""
        t = np.floor(np.asarray(video_frames, dtype=np.float64) / self.ratio + 1e-9)
        return t.astype(np.int64)

    def model_length(self, video_frames: int) -> int:
        """Model frames covering a video of ``video_frames`` frames."""
        if video_frames < 1:
            return 0
        return int(self.to_model(video_frames - 1)) + 1


def target_fps_for(configured: float, training_fps: list[float]) -> float:
    """The model's frame rate: the configured one, else the lowest rate among the training videos
    (faster videos are subsampled to it; no video is stretched with repeated frames, which would
    shorten the time a window covers)."""
    if configured:
        return float(configured)
    if not training_fps:
        return 0.0
    return float(np.min(np.asarray(training_fps, dtype=np.float64)))
