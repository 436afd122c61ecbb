"""Ingest: tag mapping, validation decisions, deterministic stratified split by video."""

import json

import pytest

from components.ingest import IngestError, run_ingest, split_videos, tag_to_class
from mvd.manifest import ManifestError, read_manifest
from mvd.config import build_config

LABELS = ["idle", "Self-Grooming", "Head/Body TWITCH"]


@pytest.mark.parametrize("tag,expected", [
    ("Self-Grooming", "Self-Grooming"), ("self-grooming", "Self-Grooming"), ("Self-Grooming (face)", "Self-Grooming"),
    ("Head/Body TWITCH", "Head/Body TWITCH"), ("Head-Body_TWITCH", "Head/Body TWITCH"), ("head body twitch", "Head/Body TWITCH"),
    ("idle", "idle"), ("rearing", None), ("Grooming", None),
])
def test_tag_to_class(tag, expected):
    assert tag_to_class(tag, LABELS, {}) == expected


def test_tag_map_overrides_prefixes():
    assert tag_to_class("HTR", LABELS, {"htr": "Head/Body TWITCH"}) == "Head/Body TWITCH"


def test_split_is_deterministic_stratified_and_groups_duplicates():
    classes = [{"Self-Grooming"}] * 6 + [{"Head/Body TWITCH"}] * 3 + [{"Self-Grooming", "Head/Body TWITCH"}]
    hashes = [f"h{i}" for i in range(9)] + ["h0"]  # the last video is a byte-identical copy of the first
    a = split_videos(classes, hashes, 0.2, seed=7)
    assert a == split_videos(classes, hashes, 0.2, seed=7)
    assert a[0] == a[9]
    test_classes = set().union(*(c for c, s in zip(classes, a) if s == "test"))
    assert test_classes == {"Self-Grooming", "Head/Body TWITCH"}
    train_classes = set().union(*(c for c, s in zip(classes, a) if s == "train"))
    assert train_classes == {"Self-Grooming", "Head/Body TWITCH"}


def _project(tmp_path, videos):
    """videos: list of (name, tags [(tag, s, e)], kind) with kind in {"ok", "corrupt", "empty"}."""
    import supervisely as sly

    from pipeline.demo import render_video

    root = tmp_path / "proj"
    project = sly.VideoProject(str(root), sly.OpenMode.CREATE)
    names = sorted({t for _, tags, _ in videos for t, _, _ in tags})
    metas = {n: sly.TagMeta(n, sly.TagValueType.NONE) for n in names}
    project.set_meta(sly.ProjectMeta(tag_metas=list(metas.values())))
    ds = project.create_dataset("ds")
    for name, tags, kind in videos:
        src = tmp_path / name
        if kind == "ok":
            render_video(src, num_frames=40, size=(64, 48), seed=ord(name[0]))
        elif kind == "corrupt":
            src.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
        else:
            src.write_bytes(b"")
        ann = sly.VideoAnnotation(img_size=(48, 64), frames_count=40, tags=sly.VideoTagCollection(
            [sly.VideoTag(metas[t], frame_range=(s, e)) for t, s, e in tags]))
        ds.add_item_file(name, str(src), ann=ann, _validate_item=False)
    return root


def test_ingest_decisions_and_manifest(tmp_path):
    root = _project(tmp_path, [
        ("a.mp4", [("Self-Grooming", 5, 20), ("rearing", 1, 3)], "ok"),
        ("b.mp4", [("Head-Body_TWITCH", 10, 12), ("Self-Grooming", 30, 45)], "ok"),  # 45 > last frame 39
        ("c.mp4", [("Self-Grooming", 0, 9)], "ok"),
        ("d.mp4", [], "ok"),
        ("e.mp4", [("Self-Grooming", 0, 9)], "corrupt"),
        ("f.mp4", [("Self-Grooming", 0, 9)], "empty"),
    ])
    cfg = build_config("cpu")
    out = tmp_path / "out"
    m = run_ingest(str(root), cfg, out, tmp_path / "report.json")
    report = json.loads((tmp_path / "report.json").read_text())
    used = {v.name for v in m.videos}
    assert used == {"a.mp4", "b.mp4", "c.mp4"}
    reasons = {d["video"]: d["reason"] for d in report["decisions"] if d["video"]}
    assert "no action tag" in reasons["ds/d.mp4"]
    assert "unreadable" in reasons["ds/e.mp4"] and "unreadable" in reasons["ds/f.mp4"]
    assert any(d["decision"] == "tag_clipped" and d["video"] == "ds/b.mp4" for d in report["decisions"])
    assert any(d["decision"] == "tags_ignored" and "rearing" in d["reason"] for d in report["decisions"])
    b = next(v for v in m.videos if v.name == "b.mp4")
    assert [(i.label, i.start, i.end) for i in b.intervals] == [("Head/Body TWITCH", 10, 12), ("Self-Grooming", 30, 39)]
    back = read_manifest(out)
    assert back.data_version == m.data_version and len(back.videos) == 3
    assert all((out / v.file).is_file() for v in back.videos)
    assert {v.split for v in back.videos} == {"train", "test"}

    cfg.data.unknown_tags = "error"
    with pytest.raises(IngestError, match="rearing"):
        run_ingest(str(root), cfg, tmp_path / "out2")


def test_manifest_validation_names_the_problem(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": 1, "labels": LABELS, "source": "x", "videos": [
        {"id": "d/v.mp4", "dataset": "d", "name": "v.mp4", "source": "s", "file": "f", "sha256": "0", "fps": 30.0,
         "num_frames": 10, "width": 8, "height": 8, "split": "train",
         "intervals": [{"label": "Self-Grooming", "start": 5, "end": 12}]}]}))
    with pytest.raises(ManifestError, match="d/v.mp4"):
        read_manifest(tmp_path)


# ----------------------------------------------------------------------------- nested datasets, shapes


def test_nested_datasets_are_read(tmp_path, make_project):
    import supervisely as sly

    root = make_project(tmp_path / "proj", [
        ("cohort", "top.mp4", [("Self-Grooming", 5, 30)], 60, 1),
        ("cohort/day1", "a.mp4", [("Self-Grooming", 5, 30)], 60, 2),
        ("cohort/day1/cage3", "b.mp4", [("Head/Body TWITCH", 10, 12)], 60, 3),
        ("other", "c.mp4", [("Self-Grooming", 0, 20)], 60, 4),
    ], tmp_path)
    assert (root / "cohort/datasets/day1/datasets/cage3/video/b.mp4").is_file()  # the SDK's nested layout
    # what SDK 6.74.51 yields for nested datasets: full names joined with "/", paths with /datasets/
    got = {(ds.name, ds.path) for ds in sly.VideoProject(str(root), sly.OpenMode.READ).datasets}
    assert ("cohort/day1/cage3", "cohort/datasets/day1/datasets/cage3") in got
    assert ("cohort/day1", "cohort/datasets/day1") in got
    m = run_ingest(str(root), build_config("cpu"), tmp_path / "out", tmp_path / "report.json")
    assert {v.id for v in m.videos} == {"cohort/top.mp4", "cohort/day1/a.mp4", "cohort/day1/cage3/b.mp4", "other/c.mp4"}
    b = next(v for v in m.videos if v.name == "b.mp4")
    assert b.dataset == "cohort/day1/cage3"
    assert [(i.label, i.start, i.end) for i in b.intervals] == [("Head/Body TWITCH", 10, 12)]
    assert json.loads((tmp_path / "report.json").read_text())["shape"] == "videos"


@pytest.mark.parametrize("labels", [LABELS, ["Self-Grooming", "Head/Body TWITCH", "idle"]])
def test_explicit_idle_tags_are_kept_minus_action_frames(tmp_path, make_project, labels):
    """Idle is the class named idle wherever the label map puts it, not the first class."""
    root = make_project(tmp_path / "proj", [
        ("ds", "a.mp4", [("idle", 0, 59), ("Self-Grooming", 20, 29)], 60, 1),
        ("ds", "b.mp4", [("idle", 0, 39)], 60, 2),  # only idle: annotated, all-idle frames 0..39
        ("ds", "c.mp4", [("Self-Grooming", 0, 9)], 60, 3),
    ], tmp_path)
    m = run_ingest(str(root), build_config("cpu", overrides={"data.labels": labels}), tmp_path / "out")
    by = {v.name: [(i.label, i.start, i.end) for i in v.intervals] for v in m.videos}
    assert by["a.mp4"] == [("idle", 0, 19), ("Self-Grooming", 20, 29), ("idle", 30, 59)]
    assert by["b.mp4"] == [("idle", 0, 39)]
    assert read_manifest(tmp_path / "out").videos[0].intervals  # idle intervals validate on read


@pytest.mark.parametrize("ranges,cut,expected", [
    ([(0, 59)], [(20, 29)], [(0, 19), (30, 59)]),
    ([(0, 9)], [(0, 9)], []),
    ([(5, 9)], [(0, 5), (9, 20)], [(6, 8)]),
    ([(0, 4), (10, 14)], [], [(0, 4), (10, 14)]),
])
def test_subtract_ranges(ranges, cut, expected):
    from components.ingest import subtract_ranges

    assert subtract_ranges(ranges, cut) == expected


@pytest.mark.parametrize("datasets,shape", [
    (["train/Self-Grooming", "train/idle", "test"], "training_data"),
    (["train/Head-Body_TWITCH", "test"], "training_data"),
    (["Train/self-grooming"], "training_data"),
    (["train", "test"], "videos"),  # flat train/test datasets of annotated videos
    (["train/cohort_A", "test"], "videos"),  # nested, but not named after classes
    (["cohort_A", "cohort_B/day1"], "videos"),
])
def test_detect_shape(datasets, shape):
    from components.ingest import detect_shape

    assert detect_shape(datasets, LABELS, {}) == shape


def test_training_data_shape_ingest(tmp_path, training_data_project):
    root = training_data_project(tmp_path / "Training Data", tmp_path)
    cfg = build_config("cpu")
    m = run_ingest(str(root), cfg, tmp_path / "out", tmp_path / "report.json")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["shape"] == "training_data"
    by = {v.id: v for v in m.videos}
    assert set(by) == {"train/Self-Grooming/g1.mp4", "train/Self-Grooming/g2.mp4", "train/Head-Body_TWITCH/t1.mp4",
                       "train/idle/i1.mp4", "test/full1.mp4", "test/full2.mp4"}
    whole = {vid: [(i.label, i.start, i.end) for i in v.intervals] for vid, v in by.items() if v.split == "train"}
    assert whole == {"train/Self-Grooming/g1.mp4": [("Self-Grooming", 0, 39)],
                     "train/Self-Grooming/g2.mp4": [("Self-Grooming", 0, 39)],
                     "train/Head-Body_TWITCH/t1.mp4": [("Head/Body TWITCH", 0, 19)],
                     "train/idle/i1.mp4": [("idle", 0, 69)]}
    assert {vid for vid, v in by.items() if v.split == "test"} == {"test/full1.mp4", "test/full2.mp4"}
    assert [(i.label, i.start, i.end) for i in by["test/full1.mp4"].intervals] == [
        ("Self-Grooming", 10, 40), ("Head/Body TWITCH", 60, 62)]
    reasons = {d["video"]: d["reason"] for d in report["decisions"] if d["video"]}
    assert "rearing" in reasons["train/rearing/r1.mp4"] and "no action tag" in reasons["test/untagged.mp4"]
    assert report["split"] == {"train": 4, "val": 0, "test": 2}
    assert any(d["decision"] == "no_val" for d in report["decisions"])

    # bbox-crop cuts idle windows from the explicitly idle clip, positives from the class clips
    from components.bbox_crop import run_bbox_crop
    from mvd.clips import plan_clips
    from mvd.shards import ShardReader

    plans = plan_clips(read_manifest(tmp_path / "out"), cfg)
    assert [tuple(c) for c in plans["train/idle/i1.mp4"]] == [(0, 0, 69, 0, 69)]
    s = run_bbox_crop(tmp_path / "out", cfg, tmp_path / "crops")
    per_video = {}
    for c in ShardReader(tmp_path / "crops" / "clips").clips:
        per_video.setdefault(c["video"], set()).add(c["label"])
    assert per_video == {"train/Self-Grooming/g1.mp4": {1}, "train/Self-Grooming/g2.mp4": {1},
                         "train/Head-Body_TWITCH/t1.mp4": {2}, "train/idle/i1.mp4": {0}}
    assert all(v > 0 for v in s["windows_per_class"].values())
    assert set(s["boxes"]) == set(by)  # test videos keep per-frame boxes for the benchmark


def test_training_data_without_test_videos_is_a_clear_error(tmp_path, make_project):
    root = make_project(tmp_path / "proj", [("train/idle", "i.mp4", [], 30, 1),
                                            ("train/Self-Grooming", "g.mp4", [], 30, 2)], tmp_path)
    with pytest.raises(IngestError, match="no usable test video"):
        run_ingest(str(root), build_config("cpu"), tmp_path / "out")
