"""The dataset manifest: every video with id, source, sha256, fps, frame count, size, split,
labelled intervals (inclusive) and a reference to its boxes. Versioned and validated on read.

Splits are by whole video: ``train`` (training clips), ``val`` (held out from training: the
best epoch is chosen and the post-processing fitted on them) and ``test`` (the benchmark only).
Schema 1 manifests (train/test only) are still read.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .atomic import read_json_artifact, write_json, write_text

__all__ = ["Interval", "Manifest", "ManifestError", "VideoRecord", "read_manifest", "safe_name",
           "sha256_file", "write_json", "SPLITS"]

SCHEMA = 2
READABLE_SCHEMAS = (1, 2)
SPLITS = ("train", "val", "test")
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
    split: str = ""  # train | val | test
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
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        return write_text(d / FILENAME, json.dumps(asdict(self), indent=1))


def read_manifest(directory: str | Path) -> Manifest:
    path = Path(directory) / FILENAME
    raw = read_json_artifact(path, ManifestError, "ingest")
    if raw.get("schema") not in READABLE_SCHEMAS:
        raise ManifestError(f"{path} has schema {raw.get('schema')!r}; this version reads schemas "
                            f"{list(READABLE_SCHEMAS)}: run the ingest stage again")
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
        if rec.split not in SPLITS:
            raise ManifestError(f"{path}: video {rec.id} has split {rec.split!r} (expected one of {list(SPLITS)})")
        videos.append(rec)
    ids = [v.id for v in videos]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ManifestError(f"{path}: video ids {dup} appear more than once; run the ingest stage again")
    files = [v.file for v in videos]
    if len(set(files)) != len(files):
        dup = sorted({f for f in files if files.count(f) > 1})
        raise ManifestError(f"{path}: videos share the files {dup}; run the ingest stage again")
    m = Manifest(labels=raw["labels"], source=raw["source"], videos=videos,
                 data_version=raw.get("data_version", ""), schema=raw["schema"])
    return m


def safe_name(video_id: str, taken: set[str]) -> str:
    """A file-system-safe name for a video id, unique among ``taken`` (which it joins).

    ``cohort A/a.mp4`` and ``cohort_A/a.mp4`` clean to the same characters; the second gets a
    short hash of its id so two videos never share a file.
    """
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", video_id.replace("/", "__")).strip("_") or "video"
    name = base
    if name in taken:
        stem, dot, ext = base.rpartition(".")
        tag = hashlib.sha256(video_id.encode()).hexdigest()[:8]
        name = f"{stem}-{tag}.{ext}" if dot else f"{base}-{tag}"
        i = 2
        while name in taken:
            name = f"{stem}-{tag}-{i}.{ext}" if dot else f"{base}-{tag}-{i}"
            i += 1
    taken.add(name)
    return name


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
