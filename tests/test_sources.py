"""Ingest sources: local directory, s3:// prefix (real S3 server), sly://<project id>."""

import json

import pytest

from components.ingest import IngestError, run_ingest
from components.integrations.sources import SourceError, resolve_source
from mvd.config import build_config


def test_local_source_is_used_in_place(tmp_path):
    src = resolve_source(str(tmp_path), tmp_path / "scratch")
    assert (src.kind, src.path, src.downloaded) == ("local", tmp_path, False)
    assert src.origin(tmp_path / "a.mp4") == str(tmp_path / "a.mp4")
    assert not (tmp_path / "scratch").exists()


@pytest.mark.parametrize("source,match", [
    ("ftp://host/project", "unknown scheme"), ("sly://abc", "numeric project id"), ("sly://", "numeric project id"),
    ("", "empty --source"),
])
def test_bad_sources_are_named(tmp_path, source, match):
    with pytest.raises(SourceError, match=match):
        resolve_source(source, tmp_path)


def test_sly_without_credentials_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("SERVER_ADDRESS", raising=False)
    monkeypatch.setenv("API_TOKEN", "")
    with pytest.raises(IngestError, match=r"sly://123 needs Supervisely credentials: set SERVER_ADDRESS and API_TOKEN"):
        run_ingest("sly://123", build_config("cpu"), tmp_path / "out")
    monkeypatch.setenv("SERVER_ADDRESS", "https://sly.example")
    with pytest.raises(IngestError, match=r"set API_TOKEN in the environment"):
        run_ingest("sly://123", build_config("cpu"), tmp_path / "out")


def test_sly_download_over_http_then_ingests(tmp_path, sly_server):
    out = tmp_path / "out"
    m = run_ingest("sly://77", build_config("cpu"), out, tmp_path / "report.json")
    methods = set(sly_server.methods())
    assert {"projects.meta", "datasets.list", "videos.list", "videos.annotations.bulk.info",
            "videos.download"} <= methods
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["source_kind"], report["shape"]) == ("sly", "training_data")
    assert m.source == "sly://77" and len(m.videos) == 6
    assert all(v.source.startswith("sly://77/") for v in m.videos)
    local = run_ingest(str(sly_server.project), build_config("cpu"), tmp_path / "local")
    assert [(v.id, v.sha256, v.split, v.intervals) for v in m.videos] == \
        [(v.id, v.sha256, v.split, v.intervals) for v in local.videos]  # same bytes, tags, split as on disk
    assert all((out / v.file).is_file() for v in m.videos)
    assert not (out / ".source").exists()  # the downloaded project is not left in the artifact


def test_sly_download_retries_then_resumes(tmp_path, sly_server):
    sly_server.fail_downloads = 3  # the SDK's own 3 tries of one video all fail: our retry resumes
    src = resolve_source("sly://77", tmp_path / "scratch", retries=3, backoff_s=2.0)
    assert [w for w in sly_server.waits if w] == [2.0]  # ours, bounded exponential (the SDK waits 0 s here)
    assert (src.path / "meta.json").is_file()
    assert len(list(src.path.rglob("*.mp4"))) == 8
    assert not any(p.name.startswith(".project.tmp") for p in (tmp_path / "scratch").iterdir())


def test_sly_download_gives_up_after_bounded_retries(tmp_path, sly_server):
    sly_server.fail_downloads = 100
    with pytest.raises(SourceError, match="failed after 2 attempts"):
        resolve_source("sly://77", tmp_path / "scratch", retries=2, backoff_s=0)
    assert sly_server.methods().count("videos.download") == 2 * 2  # 2 SDK tries in each of 2 attempts
    assert not any(p.name.startswith(".project.tmp") for p in (tmp_path / "scratch").iterdir())


def test_sly_unknown_project_and_wrong_token_are_named(tmp_path, sly_server, monkeypatch):
    with pytest.raises(SourceError, match="project 78 was not found on http://127.0.0.1"):
        resolve_source("sly://78", tmp_path / "scratch", retries=3, backoff_s=0)
    monkeypatch.setenv("API_TOKEN", "x" * 128)
    with pytest.raises(SourceError, match=r"refused API_TOKEN \(HTTP 401\)"):
        resolve_source("sly://77", tmp_path / "scratch", retries=3, backoff_s=0)


@pytest.mark.s3
def test_s3_source_round_trip(tmp_path, s3_server, monkeypatch, make_project):
    from components.integrations import storage

    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    bucket = s3_server.bucket()
    root = make_project(tmp_path / "proj", [
        ("cohort/day1", "a.mp4", [("Self-Grooming", 5, 30)], 50, 1),
        ("cohort/day1", "b.mp4", [("Head/Body TWITCH", 10, 12)], 50, 2),
        ("cohort", "c.mp4", [("Self-Grooming", 0, 20), ("Head/Body TWITCH", 30, 31)], 50, 3),
    ], tmp_path)
    uri = f"s3://{bucket}/exports/my project"
    storage.upload_dir(root, uri)
    cfg = build_config("cpu")
    local = run_ingest(str(root), cfg, tmp_path / "local")
    out = tmp_path / "remote"
    remote = run_ingest(uri, cfg, out, tmp_path / "report.json")
    assert remote.data_version == local.data_version  # same content, same split
    assert [(v.id, v.sha256, v.split) for v in remote.videos] == [(v.id, v.sha256, v.split) for v in local.videos]
    assert {v.source for v in remote.videos} == {f"{uri}/cohort/datasets/day1/video/a.mp4",
                                                 f"{uri}/cohort/datasets/day1/video/b.mp4",
                                                 f"{uri}/cohort/video/c.mp4"}
    assert all((out / v.file).read_bytes() == (tmp_path / "local" / v.file).read_bytes() for v in remote.videos)
    assert json.loads((tmp_path / "report.json").read_text())["source_kind"] == "s3"
    assert not (out / ".source").exists()

    with pytest.raises(IngestError, match="holds no objects"):
        run_ingest(f"s3://{bucket}/nothing/here", cfg, tmp_path / "none")
    storage.upload_file(root / "cohort" / "video" / "c.mp4", f"s3://{bucket}/loose/c.mp4")
    with pytest.raises(IngestError, match="no s3://.*/loose/meta.json"):
        run_ingest(f"s3://{bucket}/loose", cfg, tmp_path / "loose")
