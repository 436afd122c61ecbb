"""Synthetic demo data: a Supervisely video project of a mouse filmed from above.

Every video is a full-length top view of one animal in an arena. The animal rests or
walks (idle, untagged) and now and then self-grooms or makes a head/body twitch; those
two behaviours are written as Supervisely video tags with inclusive frame ranges, the
way labs annotate real projects. Everything is deterministic from the seed.

``render_video`` renders one clip (used by tests to make tiny videos quickly);
``write_demo_project`` writes a whole project with the Supervisely SDK.
"""

from .project import write_demo_project
from .render import open_writer, render_video
from .truth import (
    ACTIVITIES,
    BEHAVIOURS,
    DATASETS,
    DEFAULT_FPS,
    DEFAULT_SIZES,
    GROOMING,
    MOUSE_CLASS,
    TWITCH,
    DemoProject,
    DemoVideo,
    VideoTruth,
)

__all__ = ["ACTIVITIES", "BEHAVIOURS", "DATASETS", "DEFAULT_FPS", "DEFAULT_SIZES", "GROOMING", "MOUSE_CLASS", "TWITCH",
           "DemoProject", "DemoVideo", "VideoTruth", "open_writer", "render_video", "write_demo_project"]
