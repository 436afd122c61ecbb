"""Model mirrors: S3 (real SeaweedFS server), local prefix, Supervisely Team Files (local fake API)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_teamfiles import FakeTeamFiles

from components.integrations import storage
from components.integrations.mirror import (
    MirrorError,
    mirror_model,
    mirror_to_s3,
    mirror_to_team_files,
    team_files_dir,
)

TEAM_FS = ("SERVER_ADDRESS", "API_TOKEN", "TEAM_ID")


def _model_files(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.safetensors").write_bytes(b"\x00weights\x01" * 10)
    (root / "model_card.json").write_text(json.dumps({"arch": "vit_tiny"}))
    (root / "config.json").write_text(json.dumps({"train": {"epochs": 1}}))
    (root / "report.html").write_text("<html>report</html>")
    return {n: root / n for n in ("model.safetensors", "model_card.json", "config.json", "report.html")}


# ----------------------------------------------------------------------------- S3 / local prefix
@pytest.mark.s3
def test_mirror_to_s3(s3_server, tmp_path, monkeypatch):
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    bucket = s3_server.bucket()
    files = _model_files(tmp_path / "m")
    prefix = f"s3://{bucket}/mirror/models/mouse-action-mvd/3"
    uris = mirror_to_s3(files, prefix)
    assert sorted(uris) == sorted(f"{prefix}/{n}" for n in files)
    keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {f"mirror/models/mouse-action-mvd/3/{n}" for n in files}
    body = s3_server.client().get_object(Bucket=bucket, Key="mirror/models/mouse-action-mvd/3/model.safetensors")
    assert body["Body"].read() == files["model.safetensors"].read_bytes()


@pytest.mark.s3
def test_mirror_model_layout_on_s3(s3_server, tmp_path, monkeypatch):
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    for k in TEAM_FS:
        monkeypatch.delenv(k, raising=False)
    bucket = s3_server.bucket()
    monkeypatch.setenv("MAR_MIRROR_URI", f"s3://{bucket}/registry/")
    files = _model_files(tmp_path / "m")
    out = mirror_model(tmp_path / "m", '{"model": {"arch": "vit_tiny"}}', name="mvd", version="4", run_name="r",
                       report=files["report.html"])
    assert out["team_files"] is None
    assert sorted(out["s3"]) == sorted(f"s3://{bucket}/registry/models/mvd/4/{n}" for n in files)
    cfg = s3_server.client().get_object(Bucket=bucket, Key="registry/models/mvd/4/config.json")["Body"].read()
    assert json.loads(cfg) == {"model": {"arch": "vit_tiny"}}


def test_mirror_to_local_prefix_with_directory(tmp_path):
    files = _model_files(tmp_path / "m")
    ckpt = tmp_path / "ckpts"
    (ckpt / "epoch_5").mkdir(parents=True)
    (ckpt / "epoch_5" / "state.pt").write_bytes(b"abc")
    out = mirror_to_s3({**files, "checkpoints": ckpt}, str(tmp_path / "dst" / "models" / "n" / "1"))
    dst = tmp_path / "dst" / "models" / "n" / "1"
    assert (dst / "checkpoints" / "epoch_5" / "state.pt").read_bytes() == b"abc"
    assert (dst / "report.html").read_text() == "<html>report</html>"
    assert len(out) == 5


def test_mirror_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.html"):
        mirror_to_s3({"report.html": tmp_path / "nope.html"}, str(tmp_path / "dst"))


# ----------------------------------------------------------------------------- Team Files
@pytest.fixture
def team_env(monkeypatch):
    for k in TEAM_FS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("SUPERVISELY_PUBLIC_API_RETRY_SLEEP_SEC", "0")
    monkeypatch.delenv("TASK_ID", raising=False)
    return monkeypatch


def test_team_files_not_configured_is_skipped(team_env, tmp_path, caplog):
    files = _model_files(tmp_path / "m")
    caplog.set_level("INFO", logger="components.integrations.mirror")
    assert mirror_to_team_files(files, project_id=7, project_name="mice", run_name="r1") is None
    assert "Team Files mirror skipped" in caplog.text
    team_env.setenv("SERVER_ADDRESS", "http://127.0.0.1:9")
    team_env.setenv("API_TOKEN", "x")
    assert mirror_to_team_files(files, project_id=7, project_name="mice", run_name="r1") is None  # no team id


def test_team_files_upload_layout(team_env, tmp_path):
    files = _model_files(tmp_path / "m")
    with FakeTeamFiles(existing=["/experiments/7_mice/r1_MVD/model_meta.json"]) as fake:
        team_env.setenv("SERVER_ADDRESS", fake.address)
        team_env.setenv("API_TOKEN", "test-token")
        team_env.setenv("TEAM_ID", "42")
        out = mirror_to_team_files(files, project_id=7, project_name="mice", run_name="r1")
    base = "/experiments/7_mice/r1_MVD_000/"  # r1_MVD exists already: never overwritten
    expected = {base + "checkpoints/model.safetensors", base + "model_meta.json", base + "config.json",
                base + "report.html"}
    assert set(out) == expected
    assert {u["path"] for u in fake.uploads} == expected
    assert all(u["team"] == 42 for u in fake.uploads)
    got = {u["path"]: u["content"] for u in fake.uploads}
    assert got[base + "checkpoints/model.safetensors"] == files["model.safetensors"].read_bytes()
    assert json.loads(got[base + "model_meta.json"]) == {"arch": "vit_tiny"}
    called = [p.split("?")[0] for m, p in fake.requests if m == "POST"]
    assert "/public/api/v3/file-storage.list" in called and called[-1] == "/public/api/v3/file-storage.bulk.upload"


def test_team_files_team_id_parameter_and_failure(team_env, tmp_path):
    files = _model_files(tmp_path / "m")
    with FakeTeamFiles(fail_upload=True) as fake:
        team_env.setenv("SERVER_ADDRESS", fake.address)
        team_env.setenv("API_TOKEN", "test-token")
        with pytest.raises(MirrorError, match=r"team 5 /experiments/1_p/run_MVD/"):
            mirror_to_team_files(files, project_id=1, project_name="p", run_name="run", team_id=5, retry_count=1)
    assert ("POST", "/public/api/v3/file-storage.bulk.upload?teamId=5") in fake.requests


def test_team_files_transient_5xx_is_retried_with_the_whole_body(team_env, tmp_path, monkeypatch):
    """The server fails the first upload with a 500, then accepts: the retry sends the whole body again
    (not the empty, already-read stream), a file over 20 MiB included, and every byte arrives."""
    import components.integrations.mirror as mirror

    monkeypatch.setattr(mirror, "TEAM_FILES_BACKOFF_S", 0.0)
    files = _model_files(tmp_path / "m")
    big = tmp_path / "m" / "model.safetensors"
    big.write_bytes(bytes(range(256)) * (21 * 1024 * 1024 // 256 + 7))  # 21 MiB + 1792 bytes
    with FakeTeamFiles(fail_upload=1) as fake:
        team_env.setenv("SERVER_ADDRESS", fake.address)
        team_env.setenv("API_TOKEN", "test-token")
        out = mirror_to_team_files(files, project_id=7, project_name="mice", run_name="r2", team_id=3, retry_count=3)
    base = "/experiments/7_mice/r2_MVD/"
    assert len(out) == 4
    got = {u["path"]: u["content"] for u in fake.uploads}
    assert got[base + "checkpoints/model.safetensors"] == big.read_bytes()
    for name, remote in (("model_card.json", "model_meta.json"), ("config.json", "config.json"),
                         ("report.html", "report.html")):
        assert got[base + remote] == files[name].read_bytes()
    # one request failed and was sent again in full: the same number of bytes both times
    statuses = [st for st, _ in fake.received]
    assert statuses.count(500) == 1 and statuses.count(200) >= 1
    failed_bytes = fake.received[0][1]
    assert failed_bytes > big.stat().st_size and fake.received[1][1] == failed_bytes


def test_team_files_dir_is_safe():
    assert team_files_dir(3, "a/b", "20240101-x") == "/experiments/3_a_b/20240101-x_MVD/"


def test_storage_join():
    assert storage.join("s3://b/p/", "models", "n", "1") == "s3://b/p/models/n/1"
