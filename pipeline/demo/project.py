"""A whole Supervisely video project of demo videos (``write_demo_project``)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import shutil
import uuid
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mvd.cores import usable_cores

from .render import render_video
from .truth import (
    BEHAVIOURS,
    DATASETS,
    DEFAULT_FPS,
    DEFAULT_SIZES,
    MOUSE_CLASS,
    DemoProject,
    DemoVideo,
    VideoTruth,
)

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- project


def _project_meta(sly):  # noqa: ANN001, ANN202 - the supervisely module
    applicable = sly.TagApplicableTo.IMAGES_ONLY  # tags of the item (the video), not of objects
    tags = [sly.TagMeta(name, sly.TagValueType.NONE, applicable_to=applicable, color=colour)
            for name, colour in zip(BEHAVIOURS, ([46, 204, 113], [231, 76, 60]))]
    return sly.ProjectMeta(obj_classes=[sly.ObjClass(MOUSE_CLASS, sly.Rectangle, color=[52, 152, 219])], tag_metas=tags)


class _Ids:
    """Deterministic keys and platform-style ids, as a project downloaded from Supervisely has."""

    def __init__(self, sly, seed: int):  # noqa: ANN001 - the supervisely module
        self.key_id_map = sly.KeyIdMap()
        self._rand = random.Random(seed)
        self._next = {"video": 1, "tag": 1, "object": 1, "figure": 1}

    def key(self, kind: str) -> uuid.UUID:
        key = uuid.UUID(int=self._rand.getrandbits(128), version=4)
        ident, self._next[kind] = self._next[kind], self._next[kind] + 1
        getattr(self.key_id_map, f"add_{kind}")(key, ident)
        return key


def _annotation(sly, meta, truth: VideoTruth, with_boxes: bool, ids: _Ids):  # noqa: ANN001, ANN202
    tags = [sly.VideoTag(meta.get_tag_meta(name), frame_range=(s, e), key=ids.key("tag"))
            for name, s, e in truth.behaviours]
    objects, frames = [], []
    if with_boxes:
        mouse = sly.VideoObject(meta.get_obj_class(MOUSE_CLASS), key=ids.key("object"))
        objects.append(mouse)
        for i, (x1, y1, x2, y2) in enumerate(truth.boxes.tolist()):
            # Supervisely rectangles hold inclusive pixel indices: right = x2 - 1.
            rect = sly.Rectangle(top=int(y1), left=int(x1), bottom=int(y2) - 1, right=int(x2) - 1)
            frames.append(sly.Frame(i, figures=[sly.VideoFigure(mouse, rect, i, key=ids.key("figure"))]))
    return sly.VideoAnnotation(
        img_size=(truth.height, truth.width), frames_count=truth.num_frames,
        objects=sly.VideoObjectCollection(objects), frames=sly.FrameCollection(frames),
        tags=sly.VideoTagCollection(tags), key=ids.key("video"))


def _verify(sly, root: Path, videos: list[DemoVideo]) -> None:  # noqa: ANN001
    """Read the project back with the SDK and compare the tags with the truth."""
    project = sly.VideoProject(str(root), sly.OpenMode.READ)
    by_key = {(v.dataset, v.name): v for v in videos}
    seen = 0
    for ds in project.datasets:
        for name in ds.get_items_names():
            truth = by_key[(ds.name, name)]
            ann_path = Path(ds.get_ann_path(name))
            ann = sly.VideoAnnotation.load_json_file(str(ann_path), project.meta, project.key_id_map)
            got = sorted((tag.meta.name, *tag.frame_range) for tag in ann.tags)
            if got != sorted(truth.behaviours) or ann.frames_count != truth.num_frames:
                raise RuntimeError(f"{ann_path}: annotation read back does not match what was rendered")
            seen += 1
    if seen != len(videos):
        raise RuntimeError(f"{root}: expected {len(videos)} videos, read back {seen}")


def write_demo_project(root: Path | str, *, n_videos: int = 12, seed: int = 0,
                       duration_s: tuple[float, float] = (40.0, 60.0), with_boxes: bool = False,
                       sizes: Sequence[tuple[int, int]] | None = None,
                       fps_choices: Sequence[float] | None = None, workers: int | None = None) -> DemoProject:
    """Write a Supervisely video project of ``n_videos`` synthetic mouse videos under ``root``.

    Videos are split over the datasets cohort_A / cohort_B; behaviours are video tags
    with inclusive frame ranges; ``with_boxes`` adds a "mouse" rectangle per frame.
    ``root`` must not exist or be empty; the project appears there complete or not at all.
    ``workers`` videos are rendered at a time (default: one per CPU core).
    """
    import supervisely as sly  # imported here: the SDK takes seconds to import

    root = Path(root)
    if n_videos < 1:
        raise ValueError(f"n_videos must be >= 1, got {n_videos}")
    lo, hi = duration_s
    if not 0 < lo <= hi:
        raise ValueError(f"duration_s must be (min, max) seconds with 0 < min <= max, got {duration_s}")
    sizes = tuple(tuple(s) for s in (sizes or DEFAULT_SIZES))
    fps_choices = tuple(fps_choices or DEFAULT_FPS)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(f"{root} exists and is not an empty directory; choose a new path for the demo project")

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f".{root.name}.part")
    if tmp.exists():
        shutil.rmtree(tmp)
    children = np.random.SeedSequence(seed).spawn(n_videos)
    ids = _Ids(sly, seed)
    meta = _project_meta(sly)
    videos: list[DemoVideo] = []
    try:
        project = sly.VideoProject(str(tmp), sly.OpenMode.CREATE)
        project.set_meta(meta)
        n_a = (n_videos + 1) // 2
        datasets = {name: project.create_dataset(name) for name in (DATASETS if n_videos > 1 else DATASETS[:1])}
        jobs = []
        for i, child in enumerate(children):
            rng = np.random.default_rng(child)
            ds_name = DATASETS[0] if i < n_a else DATASETS[1]
            size = sizes[int(rng.integers(len(sizes)))]
            fps = fps_choices[int(rng.integers(len(fps_choices)))]
            num_frames = max(1, int(round(rng.uniform(lo, hi) * fps)))
            name = f"mouse_{i + 1:02d}.mp4"
            path = Path(datasets[ds_name].item_dir) / name
            jobs.append((ds_name, name, dict(path=path, num_frames=num_frames, fps=fps, size=size,
                                             seed=child.spawn(1)[0])))
        # Drawing holds the GIL, so videos are rendered side by side in processes (spawned: OpenCV's
        # thread pool does not survive a fork); one video renders in this process's thread.
        n_workers = max(1, min(workers or usable_cores(), n_videos))
        pool: Executor = (ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn"))
                          if n_workers > 1 else ThreadPoolExecutor(1))
        with pool:
            futures = [pool.submit(render_video, **kw) for _, _, kw in jobs]
            for (ds_name, name, kw), fut in zip(jobs, futures):
                truth = fut.result()
                ds = datasets[ds_name]
                ann = _annotation(sly, meta, truth, with_boxes, ids)
                ds.add_item_file(name, str(kw["path"]), ann=ann.to_json(ids.key_id_map))
                final = root / ds_name / "video" / name
                videos.append(DemoVideo(**{**truth.__dict__, "path": final}, dataset=ds_name, name=name))
                logger.info("rendered %s/%s: %d frames at %g fps, %dx%d, %d tagged events", ds_name, name,
                            truth.num_frames, truth.fps, truth.width, truth.height, len(truth.behaviours))
        project.set_key_id_map(ids.key_id_map)
        if root.exists():
            root.rmdir()
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _verify(sly, root, videos)
    return DemoProject(root=root, videos=videos)
