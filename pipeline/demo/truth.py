"""What a demo video holds: the class names, default sizes and frame rates, and the rendered truth."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


GROOMING = "Self-Grooming"
TWITCH = "Head/Body TWITCH"
BEHAVIOURS = (GROOMING, TWITCH)
MOUSE_CLASS = "mouse"
DATASETS = ("cohort_A", "cohort_B")
DEFAULT_SIZES = ((320, 240), (384, 288), (352, 264))
DEFAULT_FPS = (25, 30, 50, 60)

# Per-frame activity codes stored in VideoTruth.activity.
ACTIVITIES = ("rest", "walk", "groom", "twitch")
REST, WALK, GROOM, TWITCH_ACT = range(4)


@dataclass(frozen=True, kw_only=True)
class VideoTruth:
    """What was rendered into one video (frame indices 0-based, ranges inclusive)."""

    path: Path
    fps: float
    num_frames: int
    width: int
    height: int
    behaviours: list[tuple[str, int, int]]
    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2 (whole pixels, x2/y2 exclusive) around the animal, tail excluded
    head_xy: np.ndarray  # (N, 2) float32 centre of the head
    activity: np.ndarray  # (N,) uint8 index into ACTIVITIES
    background: np.ndarray  # (H, W, 3) uint8 static scene without animal, flicker, noise


@dataclass(frozen=True, kw_only=True)
class DemoVideo(VideoTruth):
    """One video of a demo project."""

    dataset: str
    name: str


@dataclass(frozen=True)
class DemoProject:
    """A demo Supervisely video project written on disk."""

    root: Path
    videos: list[DemoVideo] = field(default_factory=list)
    tag_names: tuple[str, ...] = BEHAVIOURS

    def video(self, name: str) -> DemoVideo:
        """The video called ``name`` (file name incl. extension)."""
        for v in self.videos:
            if v.name == name:
                return v
        raise KeyError(f"no video {name!r} in demo project {self.root}")
