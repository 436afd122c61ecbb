"""Read a Supervisely video project on disk with the Supervisely SDK.

Yields one item per video: dataset path (nested datasets joined with '/'), name, video path,
annotation (tags with inclusive frame ranges) and, when the project has rectangle objects of
the box class, per-frame boxes.

Nested datasets (SDK 6.74.51): ``VideoProject.datasets`` lists every dataset at any depth;
a dataset stored at ``train/datasets/idle`` has ``name`` ``"train/idle"``, ``short_name``
``"idle"`` and ``path`` ``"train/datasets/idle"``. A parent folder that holds only
``datasets/`` (no ``video/``) is skipped by the SDK with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


class ProjectError(ValueError):
    """The source is not a usable Supervisely video project."""


@dataclass
class ProjectItem:
    dataset: str
    name: str
    video_path: Path
    ann_path: Path
    tags: list[tuple[str, int, int]] = field(default_factory=list)  # (tag name, start, end inclusive)
    frames_count: int | None = None
    boxes: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)
    error: str = ""


def _is_video_project(root: Path) -> bool:
    return (root / "meta.json").is_file()


def read_project(root: str | Path, box_class: str = "mouse") -> tuple[list[ProjectItem], list[str]]:
    """All items of the project and the tag names its meta declares."""
    import supervisely as sly  # heavy import, only where needed

    root = Path(root)
    if not root.exists():
        raise ProjectError(f"source {root} does not exist. Expected a Supervisely video project directory "
                           "(meta.json plus dataset folders with video/ and ann/), an s3:// prefix or sly://<project id>.")
    if not _is_video_project(root):
        raise ProjectError(f"source {root} is not a Supervisely video project: it has no meta.json. "
                           "Expected meta.json and dataset folders each holding video/<name> and ann/<name>.json "
                           "(export the project from Supervisely in 'Supervisely format').")
    try:
        project = sly.VideoProject(str(root), sly.OpenMode.READ)
    except Exception as e:  # the SDK raises many kinds of errors for malformed projects
        raise ProjectError(f"source {root} could not be read as a Supervisely video project: {e}") from e
    meta = project.meta
    undeclared: dict[str, str] = {}  # tag name -> first annotation that uses it
    items: list[ProjectItem] = []
    for ds in project.datasets:
        ds_name = getattr(ds, "name", None) or ds.short_name
        for name in ds.get_items_names():
            video_path, ann_path = (Path(p) for p in ds.get_item_paths(name))
            item = ProjectItem(ds_name, name, video_path, ann_path)
            if not ann_path.is_file():
                item.error = f"annotation file {ann_path} is missing"
                items.append(item)
                continue
            try:
                meta = _declare_used_tags(sly, meta, ann_path, root, undeclared)
                ann = sly.VideoAnnotation.load_json_file(str(ann_path), meta)
            except Exception as e:  # malformed JSON or geometry the SDK rejects
                item.error = f"annotation {ann_path} cannot be read: {e}"
                items.append(item)
                continue
            item.frames_count = ann.frames_count
            for tag in ann.tags:
                if tag.frame_range is None:
                    continue
                s, e = tag.frame_range
                item.tags.append((tag.name, int(s), int(e)))
            for frame in ann.frames:
                for fig in frame.figures:
                    if fig.video_object.obj_class.name.lower() != box_class.lower():
                        continue
                    if not isinstance(fig.geometry, sly.Rectangle):
                        continue
                    g = fig.geometry
                    item.boxes[int(frame.index)] = (float(g.left), float(g.top), float(g.right + 1), float(g.bottom + 1))
            items.append(item)
    tag_names = [t.name for t in meta.tag_metas]  # declared ones, then the undeclared ones in use
    return items, tag_names


def _declare_used_tags(sly, meta, ann_path: Path, root: Path, undeclared: dict[str, str]):
    """``meta`` plus a tag meta for each tag the annotation uses that meta.json does not declare
    (the SDK would drop the whole video with "TagMeta is None"); each such tag is named once in a
    warning. Whether the tag is then used or ignored is decided like any other tag (ingest's
    ``data.tag_map`` / ``data.unknown_tags``)."""
    import json

    try:
        raw = json.loads(ann_path.read_text())
    except (OSError, ValueError):
        return meta  # the SDK's own error names the file
    used = {t.get("name") for t in raw.get("tags", []) if isinstance(t, dict) and t.get("name")}
    values = {t.get("name"): t.get("value") for t in raw.get("tags", []) if isinstance(t, dict)}
    for name in sorted(n for n in used if meta.get_tag_meta(n) is None):
        value = values.get(name)
        kind = (sly.TagValueType.NONE if value is None else
                sly.TagValueType.ANY_NUMBER if isinstance(value, (int, float)) else sly.TagValueType.ANY_STRING)
        meta = meta.add_tag_meta(sly.TagMeta(name, kind))
        if name not in undeclared:
            undeclared[name] = str(ann_path)
            logger.warning("tag %r is used in %s but not declared in %s; reading it anyway (declare it in "
                           "meta.json to silence this)", name, ann_path, root / "meta.json")
    return meta


def boxes_array(boxes: dict[int, tuple[float, float, float, float]], num_frames: int) -> np.ndarray:
    """(num_frames, 5) float32, NaN rows for frames without a box, score 1."""
    out = np.full((num_frames, 5), np.nan, dtype=np.float32)
    for f, (x1, y1, x2, y2) in boxes.items():
        if 0 <= f < num_frames:
            out[f] = (x1, y1, x2, y2, 1.0)
    return out
