"""components.integrations.storage against a real S3 server (SeaweedFS) and on local paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.integrations import storage


def _tree(root: Path) -> dict[str, bytes]:
    files = {"a.txt": b"alpha", "sub/b.bin": bytes(range(256)) * 40, "sub/deeper/c.json": b'{"c": 1}'}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    monkeypatch.delenv("MLFLOW_S3_ENDPOINT_URL", raising=False)
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    return s3_server


def test_split_and_is_s3():
    assert storage.is_s3("s3://b/k") and not storage.is_s3("/tmp/x") and not storage.is_s3("b/s3://")
    assert storage.split_s3("s3://bucket/a/b/c.txt") == ("bucket", "a/b/c.txt")
    assert storage.split_s3("s3://bucket") == ("bucket", "")
    with pytest.raises(ValueError, match="s3://"):
        storage.split_s3("/local/path")
    with pytest.raises(ValueError, match="no bucket"):
        storage.split_s3("s3:///key")


def test_endpoint_from_env(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:1")
    assert storage.s3_client().meta.endpoint_url == "http://127.0.0.1:1"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:2")
    c = storage.s3_client(max_attempts=4)
    assert c.meta.endpoint_url == "http://127.0.0.1:2"
    assert c.meta.config.retries["total_max_attempts"] == 5 and c.meta.config.retries["mode"] == "standard"


@pytest.mark.s3
def test_s3_round_trip(s3_env, tmp_path):
    bucket = s3_env.bucket()
    src = tmp_path / "src"
    files = _tree(src)
    prefix = f"s3://{bucket}/runs/r1"
    uris = storage.upload_dir(src, prefix)
    assert sorted(uris) == sorted(f"{prefix}/{rel}" for rel in files)
    assert storage.list_uris(prefix + "/") == sorted(uris)
    assert storage.list_uris(f"s3://{bucket}/runs/r1/sub/") == sorted(f"{prefix}/{r}" for r in files if r.startswith("sub/"))
    assert storage.exists(f"{prefix}/a.txt") and not storage.exists(f"{prefix}/zzz.txt")
    out = storage.download_dir(prefix, tmp_path / "dst")
    assert sorted(p.relative_to(tmp_path / "dst").as_posix() for p in out) == sorted(files)
    for rel, data in files.items():
        assert (tmp_path / "dst" / rel).read_bytes() == data
    assert not list((tmp_path / "dst").rglob("*.tmp"))
    one = storage.download_file(f"{prefix}/sub/deeper/c.json", tmp_path / "one" / "c.json")
    assert one.read_bytes() == b'{"c": 1}'
    storage.upload_file(src / "a.txt", f"s3://{bucket}/single.txt")
    assert s3_env.client().get_object(Bucket=bucket, Key="single.txt")["Body"].read() == b"alpha"


@pytest.mark.s3
def test_s3_errors_name_the_uri(s3_env, tmp_path):
    bucket = s3_env.bucket()
    missing = f"s3://{bucket}/no/such/key.bin"
    with pytest.raises(storage.ObjectNotFoundError, match=missing):
        storage.download_file(missing, tmp_path / "x.bin")
    assert not (tmp_path / "x.bin").exists() and not list(tmp_path.glob("*.tmp"))
    with pytest.raises(FileNotFoundError, match=f"s3://{bucket}/empty"):
        storage.download_dir(f"s3://{bucket}/empty", tmp_path / "d")
    (tmp_path / "a.txt").write_bytes(b"a")
    with pytest.raises(storage.ObjectNotFoundError, match="s3://no-such-bucket-x1/a.txt"):
        storage.download_file("s3://no-such-bucket-x1/a.txt", tmp_path / "b.txt")


@pytest.mark.s3
def test_s3_bad_credentials(s3_env, tmp_path, monkeypatch):
    bucket = s3_env.bucket()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(storage.StorageError, match=f"s3://{bucket}/k.*access denied"):
        storage.download_file(f"s3://{bucket}/k", tmp_path / "k")


def test_unreachable_endpoint_fails_after_bounded_retries(monkeypatch, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("MAR_S3_MAX_ATTEMPTS", "2")
    with pytest.raises(storage.StorageError, match=r"s3://b/x\.bin.*EndpointConnectionError"):
        storage.download_file("s3://b/x.bin", tmp_path / "x.bin")


def test_local_paths(tmp_path):
    src = tmp_path / "src"
    files = _tree(src)
    dst_prefix = str(tmp_path / "mirror" / "m")
    uris = storage.upload_dir(src, dst_prefix)
    assert sorted(uris) == sorted(f"{dst_prefix}/{r}" for r in files)
    assert storage.list_uris(dst_prefix) == sorted(uris)
    assert storage.exists(f"{dst_prefix}/a.txt") and not storage.exists(f"{dst_prefix}/nope")
    out = storage.download_dir(dst_prefix, tmp_path / "back")
    assert {p.relative_to(tmp_path / "back").as_posix(): p.read_bytes() for p in out} == files
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        storage.download_file(str(tmp_path / "nope.txt"), tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        storage.upload_dir(tmp_path / "missing_dir", dst_prefix)
    assert storage.list_uris(str(tmp_path / "none")) == []
