"""The dataset manifest: every video with id, source, sha256, fps, frame count, size, split,
labelled intervals (inclusive) and a reference to its boxes. Versioned and validated on read."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mvd.atomic import atomic_write

SCHEMA = 1
FILENAME = "manifest.json"


class ManifestError(ValueError):
    """A manifest that cannot be used; names the file and the key."""


@dataclass
class Interval:
    label: str
    start: int
    end: int  # inclusive


@dataclass
class VideoRecord:
    id: str  # "<dataset path>/<video name>"
    dataset: str
    name: str
    source: str  # where it came from (path or URI)
    file: str  # path relative to the manifest directory
    sha256: str
    fps: float
    num_frames: int
    width: int
    height: int
    split: str = ""  # train | test
    intervals: list[Interval] = field(default_factory=list)
    boxes: str = ""  # relative .npy of (N, 5) boxes from annotation objects, "" = detect

    def ranges_by_label(self, labels: list[str]) -> dict[int, list[tuple[int, int]]]:
        out: dict[int, list[tuple[int, int]]] = {}
        for iv in self.intervals:
            out.setdefault(labels.index(iv.label), []).append((iv.start, iv.end))
        return out


@dataclass
class Manifest:
    labels: list[str]
    source: str
    videos: list[VideoRecord]
    data_version: str = ""
    schema: int = SCHEMA

    def split(self, name: str) -> list[VideoRecord]:
        return [v for v in self.videos if v.split == name]

    def compute_version(self) -> str:
        payload = json.dumps(
            {"labels": self.labels, "videos": [[v.sha256, v.split, [asdict(i) for i in v.intervals]] for v in self.videos]},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def write(self, directory: str | Path) -> Path:
        self.data_version = self.compute_version()
        return write_json(Path(directory) / FILENAME, asdict(self))


def read_manifest(directory: str | Path) -> Manifest:
    path = Path(directory) / FILENAME
    if not path.is_file():
        raise ManifestError(f"{path} not found: run the ingest stage first")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path} is not valid JSON: {e}") from e
    if raw.get("schema") != SCHEMA:
        raise ManifestError(f"{path} has schema {raw.get('schema')!r}; this version reads schema {SCHEMA}")
    for key in ("labels", "source", "videos"):
        if key not in raw:
            raise ManifestError(f"{path} lacks key {key!r}")
    videos = []
    for i, v in enumerate(raw["videos"]):
        try:
            rec = VideoRecord(**{**v, "intervals": [Interval(**iv) for iv in v.get("intervals", [])]})
        except TypeError as e:
            raise ManifestError(f"{path}: video #{i} is malformed: {e}") from e
        for iv in rec.intervals:
            if iv.label not in raw["labels"]:
                raise ManifestError(f"{path}: video {rec.id} has interval label {iv.label!r} not in labels")
            if not 0 <= iv.start <= iv.end < rec.num_frames:
                raise ManifestError(f"{path}: video {rec.id} interval {iv} outside 0..{rec.num_frames - 1}")
        if rec.split not in ("train", "test"):
            raise ManifestError(f"{path}: video {rec.id} has split {rec.split!r} (expected train or test)")
        videos.append(rec)
    m = Manifest(labels=raw["labels"], source=raw["source"], videos=videos,
                 data_version=raw.get("data_version", ""), schema=raw["schema"])
    return m


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (a temporary name, then a rename)."""
    text = json.dumps(obj, indent=1, default=str)
    return atomic_write(path, lambda tmp: tmp.write_text(text), needed=len(text.encode()))
