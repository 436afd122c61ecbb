"""The bbox-crop cache: per-video entries reused across runs, partial entries never trusted,
on a local directory and on a real S3 server."""

import json
from pathlib import Path

import numpy as np
import pytest

from components.bbox_crop import run_bbox_crop
from components.integrations.cache import MARKER, Cache
from components.ingest import run_ingest
from mvd.config import build_config


def _shard_bytes(crops: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((crops / "clips").iterdir())}


def _cfg(cache: str, **over):
    return build_config("cpu", overrides={"data.cache": cache, **over})


@pytest.fixture
def training_data(tmp_path, training_data_project):
    return training_data_project(tmp_path / "Training Data", tmp_path)


def _entries(cache_root: Path, kind: str) -> list[Path]:
    return sorted(p for p in cache_root.glob(f"v1/*/*/{kind}-*") if not p.name.startswith("."))


def test_second_run_reuses_everything_and_a_new_video_computes_alone(tmp_path, training_data):
    cache = tmp_path / "cache"
    cfg = _cfg(str(cache))
    run_ingest(str(training_data), cfg, tmp_path / "m1")
    first = run_bbox_crop(tmp_path / "m1", cfg, tmp_path / "c1")
    assert first["cache"]["videos_computed"] == 6 and first["cache"]["videos_reused"] == 0
    assert first["cache"]["boxes"]["computed"] == 6
    n_windows = sum(first["windows_per_class"].values())
    assert first["cache"]["windows"] == {"reused": 0, "computed": n_windows}

    second = run_bbox_crop(tmp_path / "m1", cfg, tmp_path / "c2")
    assert (second["cache"]["videos_computed"], second["cache"]["videos_reused"]) == (0, 6)
    assert second["cache"]["windows"] == {"reused": n_windows, "computed": 0}
    assert json.loads((tmp_path / "c2" / "boxes.json").read_text())["cache"]["videos_reused"] == 6
    assert _shard_bytes(tmp_path / "c2") == _shard_bytes(tmp_path / "c1")
    for rec_id, b in first["boxes"].items():
        again = np.load(tmp_path / "c2" / second["boxes"][rec_id]["file"])
        assert np.array_equal(np.load(tmp_path / "c1" / b["file"]), again, equal_nan=True)

    # one more clip in the project: only it is processed
    import supervisely as sly

    from pipeline.demo import render_video

    render_video(tmp_path / "g3.mp4", num_frames=40, size=(64, 48), seed=21)
    ds = next(d for d in sly.VideoProject(str(training_data), sly.OpenMode.READ).datasets
              if d.name == "train/Self-Grooming")
    ds.add_item_file("g3.mp4", str(tmp_path / "g3.mp4"), ann=sly.VideoAnnotation(img_size=(48, 64), frames_count=40),
                     _validate_item=False)
    run_ingest(str(training_data), cfg, tmp_path / "m2")
    third = run_bbox_crop(tmp_path / "m2", cfg, tmp_path / "c3")
    assert third["cache"]["computed"] == ["train/Self-Grooming/g3.mp4"]
    assert (third["cache"]["videos_computed"], third["cache"]["videos_reused"]) == (1, 6)
    assert third["windows_per_class"]["Self-Grooming"] > first["windows_per_class"]["Self-Grooming"]

    # another crop rule: the boxes are reused, every window is cut anew
    other = "union" if cfg.data.crop_mode == "track" else "track"
    tracked = run_bbox_crop(tmp_path / "m1", _cfg(str(cache), **{"data.crop_mode": other}), tmp_path / "ct")
    assert tracked["cache"]["boxes"]["computed"] == 0
    assert tracked["cache"]["windows"] == {"reused": 0, "computed": n_windows}
    assert _shard_bytes(tmp_path / "ct") != _shard_bytes(tmp_path / "c1")


def test_a_new_crop_rule_version_does_not_reuse_windows_the_old_code_cut(tmp_path, training_data, monkeypatch):
    from mvd import crop

    cache = tmp_path / "cache"
    # in this process, where the version is patched
    cfg = _cfg(str(cache), **{"data.crop_mode": "track", "data.crop_workers": 1})
    run_ingest(str(training_data), cfg, tmp_path / "m")
    first = run_bbox_crop(tmp_path / "m", cfg, tmp_path / "c1")["cache"]["windows"]
    assert first["computed"] > 0 and first["reused"] == 0
    assert run_bbox_crop(tmp_path / "m", cfg, tmp_path / "c2")["cache"]["windows"]["computed"] == 0
    monkeypatch.setitem(crop.CROP_RULE_VERSIONS, "track", crop.CROP_RULE_VERSIONS["track"] + 1)
    again = run_bbox_crop(tmp_path / "m", cfg, tmp_path / "c3")["cache"]
    assert again["windows"] == {"reused": 0, "computed": first["computed"]} and again["boxes"]["computed"] == 0


def test_a_new_detector_version_does_not_reuse_boxes_the_old_code_cached(tmp_path, training_data, monkeypatch):
    from mvd.background import BackgroundDetector

    cache = tmp_path / "cache"
    cfg = _cfg(str(cache))
    run_ingest(str(training_data), cfg, tmp_path / "m")
    assert run_bbox_crop(tmp_path / "m", cfg, tmp_path / "c1")["cache"]["boxes"]["computed"] == 6
    monkeypatch.setattr(BackgroundDetector, "VERSION", BackgroundDetector.VERSION + 1)
    again = run_bbox_crop(tmp_path / "m", cfg, tmp_path / "c2")
    assert again["cache"]["boxes"]["computed"] == 6 and again["cache"]["videos_reused"] == 0


def test_a_video_the_detector_barely_finds_is_named(tmp_path, training_data, monkeypatch, caplog):
    from mvd.background import BackgroundDetector

    real = BackgroundDetector.detect_video

    def lose_one(self, path):
        boxes = real(self, path)
        if "g1" in str(path):
            boxes[: int(0.7 * len(boxes))] = np.nan
        return boxes

    monkeypatch.setattr(BackgroundDetector, "detect_video", lose_one)
    cfg = _cfg("", **{"data.crop_workers": 1})  # in this process, where the detector is patched
    run_ingest(str(training_data), cfg, tmp_path / "m")
    with caplog.at_level("WARNING"):
        r = run_bbox_crop(tmp_path / "m", cfg, tmp_path / "c")
    lost = [v for v in r["boxes"] if "g1" in v]
    assert lost and all(r["boxes"][v]["detected"] < 0.5 for v in lost)
    warned = [m for m in caplog.messages if "found the mouse in only" in m]
    # every video under half, and only those, is named, with what to do
    low = sorted(v for v, b in r["boxes"].items() if b["detected"] < 0.5)
    assert sorted(next(v for v in r["boxes"] if f" {v}:" in m) for m in warned) == low
    assert all("mar boxes" in m for m in warned)


def test_clip_rules_change_cuts_only_missing_clips_and_matches_a_cold_run(tmp_path, make_project):
    root = make_project(tmp_path / "proj", [
        ("ds", "a.mp4", [("Self-Grooming", 40, 69)], 150, 1),
        ("ds", "b.mp4", [("Head/Body TWITCH", 70, 72)], 150, 2),
        ("ds", "c.mp4", [("Self-Grooming", 10, 30)], 150, 3),
    ], tmp_path)
    rules = {"data.idle_min_s": 0.5, "data.idle_max_s": 1.0}
    cache = str(tmp_path / "cache")
    run_ingest(str(root), _cfg(cache), tmp_path / "m")
    run_bbox_crop(tmp_path / "m", _cfg(cache, **rules, **{"data.idle_ratio": 0.5}), tmp_path / "c1")
    more = _cfg(cache, **rules, **{"data.idle_ratio": 2.0})
    warm = run_bbox_crop(tmp_path / "m", more, tmp_path / "c2")
    assert warm["cache"]["boxes"] == {"reused": 3, "computed": 0, "annotation": 0}
    assert warm["cache"]["windows"]["reused"] > 0 and warm["cache"]["windows"]["computed"] > 0
    cold = run_bbox_crop(tmp_path / "m", _cfg("", **rules, **{"data.idle_ratio": 2.0}), tmp_path / "c3")
    assert cold["cache"]["videos_computed"] == 3 and cold["cache"]["uri"] is None
    assert not (tmp_path / "c3" / ".cache-run").exists()
    w = warm["cache"]["windows"]
    assert w["reused"] + w["computed"] == cold["cache"]["windows"]["computed"]
    assert _shard_bytes(tmp_path / "c2") == _shard_bytes(tmp_path / "c3")


def test_entry_without_marker_is_not_trusted(tmp_path, training_data):
    cache = tmp_path / "cache"
    cfg = _cfg(str(cache))
    run_ingest(str(training_data), cfg, tmp_path / "m")
    first = run_bbox_crop(tmp_path / "m", cfg, tmp_path / "c1")
    windows = _entries(cache, "windows")
    boxes = _entries(cache, "boxes")
    assert len(windows) == 4 and len(boxes) == 6
    # a half-written windows entry: shard truncated, marker never written
    bad = windows[0]
    (bad / MARKER).unlink()
    shard = next(bad.glob("shard-*.u8"))
    shard.write_bytes(shard.read_bytes()[:100])
    # a boxes entry that lost its marker, with garbage in place of the boxes
    (boxes[0] / MARKER).unlink()
    np.save(boxes[0] / "boxes.npy", np.zeros((3, 5), np.float32))
    second = run_bbox_crop(tmp_path / "m", cfg, tmp_path / "c2")
    assert second["cache"]["boxes"]["computed"] == 1 and second["cache"]["boxes"]["reused"] == 5
    assert second["cache"]["windows"]["computed"] > 0
    assert 1 <= second["cache"]["videos_computed"] <= 2
    assert _shard_bytes(tmp_path / "c2") == _shard_bytes(tmp_path / "c1")
    assert (bad / MARKER).is_file() and (boxes[0] / MARKER).is_file()  # rewritten
    assert sum(first["windows_per_class"].values()) == sum(second["windows_per_class"].values())


def test_cache_entries_ignore_staging_and_unmarked(tmp_path):
    c = Cache(tmp_path / "cache", tmp_path / "scratch")
    sha = "ab" * 32
    stage = c.staging(sha, "boxes-x")
    (stage / "f.bin").write_bytes(b"1")
    assert c.entries(sha) == {} and c.get(sha, "boxes-x") is None
    final = c.commit(sha, "boxes-x", stage, {"kind": "boxes"})
    assert not stage.exists() and (final / "f.bin").read_bytes() == b"1"
    assert c.entries(sha) == {"boxes-x": {"kind": "boxes", "name": "boxes-x", "video_sha256": sha}}
    assert c.entries(sha, "windows-") == {}
    unmarked = final.parent / "windows-y"
    unmarked.mkdir()
    (unmarked / "index.json").write_text("{}")
    assert set(c.entries(sha)) == {"boxes-x"} and c.get(sha, "windows-y") is None
    with pytest.raises(ValueError, match="hex sha256"):
        c.get("../etc", "boxes-x")


@pytest.mark.s3
def test_cache_on_s3(tmp_path, s3_server, monkeypatch, training_data):
    from components.integrations import storage

    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    uri = f"s3://{s3_server.bucket()}/mar/cache"
    cfg = _cfg(uri)
    run_ingest(str(training_data), cfg, tmp_path / "m")
    first = run_bbox_crop(tmp_path / "m", cfg, tmp_path / "c1")
    assert first["cache"]["videos_computed"] == 6 and first["cache"]["uri"] == uri
    objects = storage.list_uris(uri)
    markers = [u for u in objects if u.endswith("/" + MARKER)]
    assert len(markers) == 6 + 4  # boxes of every video, windows of every train video
    assert not any("/." in u for u in objects)  # no staging names on the server
    assert not (tmp_path / "c1" / ".cache-scratch").exists()

    second = run_bbox_crop(tmp_path / "m", cfg, tmp_path / "c2")
    assert (second["cache"]["videos_computed"], second["cache"]["videos_reused"]) == (0, 6)
    assert _shard_bytes(tmp_path / "c2") == _shard_bytes(tmp_path / "c1")

    # an entry whose marker object is missing (upload cut short) is recomputed and completed
    victim = next(u for u in markers if "/windows-" in u)
    bucket, key = storage.split_s3(victim)
    storage.s3_client().delete_object(Bucket=bucket, Key=key)
    third = run_bbox_crop(tmp_path / "m", cfg, tmp_path / "c3")
    assert third["cache"]["videos_computed"] == 1 and third["cache"]["boxes"]["computed"] == 0
    assert storage.exists(victim)
    assert _shard_bytes(tmp_path / "c3") == _shard_bytes(tmp_path / "c1")


def test_videos_prepared_side_by_side_give_the_sequential_shards(tmp_path, make_project):
    """bbox-crop with several processes writes the same shards, boxes and counts as with one; a
    file that appears twice (same bytes in two datasets) is prepared by one process."""
    tags = [("Self-Grooming", 5, 30), ("Head/Body TWITCH", 40, 43)]
    root = make_project(tmp_path / "proj", [
        ("a", "m1.mp4", tags, 60, 31), ("a", "m2.mp4", tags, 60, 32), ("a", "m3.mp4", [], 60, 33),
        ("b", "m1.mp4", tags, 60, 31),  # the same bytes as a/m1.mp4
        ("b", "m4.mp4", [("Self-Grooming", 0, 50)], 60, 34), ("b", "m5.mp4", tags, 60, 35),
    ], tmp_path)
    cfg1 = _cfg("", **{"data.crop_workers": 1, "data.test_ratio": 0.3})
    run_ingest(str(root), cfg1, tmp_path / "m")
    one = run_bbox_crop(tmp_path / "m", cfg1, tmp_path / "c1")
    many = run_bbox_crop(tmp_path / "m", _cfg("", **{"data.crop_workers": 3, "data.test_ratio": 0.3}), tmp_path / "c3")
    assert sum(one["windows_per_class"].values()) > 0
    assert many["windows_per_class"] == one["windows_per_class"]
    assert _shard_bytes(tmp_path / "c3") == _shard_bytes(tmp_path / "c1")
    assert many["boxes"].keys() == one["boxes"].keys() and {"a/m1.mp4", "b/m1.mp4"} <= set(one["boxes"])
    for rec_id, b in one["boxes"].items():
        assert np.array_equal(np.load(tmp_path / "c1" / b["file"]), np.load(tmp_path / "c3" / many["boxes"][rec_id]["file"]),
                              equal_nan=True)


def test_crop_workers_default_to_the_usable_cores():
    from components.bbox_crop import crop_workers

    assert crop_workers(3, videos=10) == 3
    assert crop_workers(4, videos=2) == 2  # never more processes than files
    assert 1 <= crop_workers(0, videos=100) <= 8
