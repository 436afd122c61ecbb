"""The crops index (``boxes.json`` beside the training shards): per video its per-frame mouse boxes
file, where the boxes came from, and the bbox-crop summary. Versioned and validated on read; stages
read boxes only through :func:`read_crops_index` and :meth:`CropsIndex.load_boxes`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import read_json_artifact, write_json

SCHEMA = 1
FILENAME = "boxes.json"


class CropsIndexError(ValueError):
    """A crops index that cannot be used; names the file and the field."""


@dataclass
class BoxesEntry:
    file: str  # .npy of (N, 5) boxes, relative to the index's directory
    origin: str  # annotation | detector
    cache: str = ""  # annotation | reused | computed
    detected: float = 0.0  # share of frames with a box


@dataclass
class CropsIndex:
    labels: list[str]
    data_version: str
    boxes: dict[str, BoxesEntry]  # video id -> entry
    windows_per_class: dict[str, int] = field(default_factory=dict)
    videos: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA
    directory: str = field(default="", compare=False, repr=False)

    def write(self, directory: str | Path) -> Path:
        d = dict(asdict(self))
        d.pop("directory")
        return write_json(Path(directory) / FILENAME, d)

    def load_boxes(self, video_id: str, num_frames: int | None = None) -> np.ndarray | None:
        """The (N, 5) boxes of a video (None when the index has none for it); with ``num_frames``,
        at least that many rows must be there."""
        e = self.boxes.get(video_id)
        if e is None:
            return None
        path = Path(self.directory) / e.file
        try:
            arr = np.load(path)
        except (OSError, ValueError) as err:
            raise CropsIndexError(f"{path}: boxes of video {video_id!r} cannot be read ({err}); "
                                  "run the bbox-crop stage again") from err
        if arr.ndim != 2 or arr.shape[1] != 5:
            raise CropsIndexError(f"{path}: boxes of video {video_id!r} have shape {arr.shape}, expected (frames, 5)")
        if num_frames is not None and len(arr) < num_frames:
            raise CropsIndexError(f"{path}: {len(arr)} boxes for the {num_frames} frames of video {video_id!r}; "
                                  "run the bbox-crop stage again")
        return arr


def read_crops_index(directory: str | Path) -> CropsIndex:
    path = Path(directory) / FILENAME
    raw = read_json_artifact(path, CropsIndexError, "bbox-crop")
    if raw.get("schema", SCHEMA) != SCHEMA:
        raise CropsIndexError(f"{path} has schema {raw.get('schema')!r}; this version reads schema {SCHEMA}")
    for key in ("labels", "boxes"):
        if key not in raw:
            raise CropsIndexError(f"{path} lacks key {key!r}; run the bbox-crop stage again")
    entries = {}
    for vid, e in raw["boxes"].items():
        try:
            entries[vid] = BoxesEntry(**e)
        except TypeError as err:
            raise CropsIndexError(f"{path}: boxes entry of video {vid!r} is malformed: {err}") from err
    known = {f.name for f in CropsIndex.__dataclass_fields__.values()} - {"boxes", "directory"}
    rest = {k: v for k, v in raw.items() if k in known}
    rest.setdefault("data_version", "")
    return CropsIndex(boxes=entries, directory=str(Path(directory)), **rest)
