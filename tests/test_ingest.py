"""Ingest: tag mapping, validation decisions, deterministic stratified split by video."""

import json

import pytest

from components.ingest import IngestError, run_ingest, split_videos, tag_to_class
from components.manifest import ManifestError, read_manifest
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

    from pipeline.demo_data import render_video

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
