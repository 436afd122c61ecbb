"""Object storage by URI: ``s3://bucket/key`` through boto3, anything else is a local path.

The S3 endpoint comes from ``AWS_ENDPOINT_URL`` (or ``MLFLOW_S3_ENDPOINT_URL``), credentials from
the usual ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` variables. Network calls retry a
bounded number of times (``MAR_S3_MAX_ATTEMPTS``, default 3), then raise ``StorageError``
naming the URI. Downloads and local copies write to a temporary name, then ``os.replace``.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 3


class StorageError(OSError):
    """A storage operation failed; the message names the URI and the cause."""


class ObjectNotFoundError(StorageError, FileNotFoundError):
    """The URI names no object (or no local file)."""


def is_s3(uri: str | os.PathLike[str]) -> bool:
    return str(uri).startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` → ``("bucket", "a/b")``; the key may be empty."""
    if not is_s3(uri):
        raise ValueError(f"{uri!r} is not an s3:// URI (expected s3://bucket/key)")
    bucket, _, key = str(uri)[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} has no bucket name (expected s3://bucket/key)")
    return bucket, key


def endpoint_url() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None


def s3_client(max_attempts: int | None = None) -> Any:
    """A boto3 S3 client for the configured endpoint and credentials, with bounded retries.

    The environment is read on every call, so a changed endpoint or key takes effect at once.
    """
    attempts = max_attempts or int(os.environ.get("MAR_S3_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))
    env = os.environ
    return _client(endpoint_url(), env.get("AWS_ACCESS_KEY_ID") or None, env.get("AWS_SECRET_ACCESS_KEY") or None,
                   env.get("AWS_SESSION_TOKEN") or None,
                   env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or "us-east-1", attempts)


@functools.lru_cache(maxsize=8)
def _client(endpoint: str | None, key: str | None, secret: str | None, token: str | None, region: str,
            attempts: int) -> Any:
    import boto3
    from botocore.config import Config as BotoConfig

    cfg = BotoConfig(retries={"max_attempts": attempts, "mode": "standard"}, connect_timeout=10, read_timeout=60,
                     s3={"addressing_style": "path"})
    # a session per client: the default session caches credentials from the first call
    session = boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
                                    region_name=region)
    return session.client("s3", endpoint_url=endpoint, config=cfg)


def _error(op: str, uri: str, e: Exception) -> StorageError:
    from botocore.exceptions import ClientError

    where = endpoint_url() or "the default AWS endpoint"
    if isinstance(e, ClientError):
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound"):
            return ObjectNotFoundError(f"{op} {uri}: no such object (endpoint {where})")
        if code == "NoSuchBucket":
            return ObjectNotFoundError(f"{op} {uri}: bucket does not exist (endpoint {where})")
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StorageError(f"{op} {uri}: access denied ({code}); check AWS_ACCESS_KEY_ID / "
                                f"AWS_SECRET_ACCESS_KEY for endpoint {where}")
        return StorageError(f"{op} {uri}: {code or 'error'}: {e}")
    return StorageError(f"{op} {uri}: {type(e).__name__}: {e} (endpoint {where}; "
                        "set AWS_ENDPOINT_URL for a non-AWS server)")


def _s3_call(op: str, uri: str, fn, *args, **kwargs):
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(*args, **kwargs)
    except (ClientError, BotoCoreError) as e:
        raise _error(op, uri, e) from e


def _tmp_name(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.tmp")


def _copy_local(src: Path, dst: Path) -> None:
    if not src.is_file():
        raise ObjectNotFoundError(f"copy {src}: no such file")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(dst)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def join(prefix: str, *parts: str) -> str:
    """Join a URI or local prefix with relative parts using ``/``."""
    out = str(prefix).rstrip("/")
    for p in parts:
        p = str(p).strip("/")
        if p:
            out = f"{out}/{p}"
    return out


def upload_file(local: str | os.PathLike[str], uri: str) -> str:
    """Copy one local file to ``uri``; returns ``uri``."""
    src = Path(local)
    if not src.is_file():
        raise ObjectNotFoundError(f"upload to {uri}: local file {src} does not exist")
    if not is_s3(uri):
        _copy_local(src, Path(uri))
        return str(uri)
    bucket, key = split_s3(uri)
    if not key or key.endswith("/"):
        raise ValueError(f"upload {src}: {uri!r} names a prefix, not an object key")
    _s3_call("upload", uri, s3_client().upload_file, str(src), bucket, key)
    logger.debug("uploaded %s -> %s", src, uri)
    return str(uri)


def upload_dir(local_dir: str | os.PathLike[str], uri_prefix: str) -> list[str]:
    """Copy every file under ``local_dir`` to ``uri_prefix/<relative path>``; returns the URIs."""
    root = Path(local_dir)
    if not root.is_dir():
        raise ObjectNotFoundError(f"upload to {uri_prefix}: local directory {root} does not exist")
    out = []
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        out.append(upload_file(f, join(uri_prefix, f.relative_to(root).as_posix())))
    logger.info("uploaded %d files from %s to %s", len(out), root, uri_prefix)
    return out


def download_file(uri: str, local: str | os.PathLike[str]) -> Path:
    """Copy the object at ``uri`` to ``local`` (temp name, then ``os.replace``); returns the path."""
    dst = Path(local)
    if not is_s3(uri):
        _copy_local(Path(uri), dst)
        return dst
    bucket, key = split_s3(uri)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(dst)
    try:
        _s3_call("download", uri, s3_client().download_file, bucket, key, str(tmp))
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def list_uris(prefix: str) -> list[str]:
    """Every object URI (or local file path) under ``prefix``, sorted."""
    if not is_s3(prefix):
        p = Path(prefix)
        if p.is_file():
            return [str(p)]
        if not p.is_dir():
            return []
        return sorted(str(f) for f in p.rglob("*") if f.is_file())
    bucket, key = split_s3(prefix)
    paginator = s3_client().get_paginator("list_objects_v2")
    out: list[str] = []
    for page in _s3_call("list", prefix, lambda: list(paginator.paginate(Bucket=bucket, Prefix=key))):
        out.extend(f"s3://{bucket}/{o['Key']}" for o in page.get("Contents", []))
    return sorted(out)


def download_dir(uri_prefix: str, local_dir: str | os.PathLike[str]) -> list[Path]:
    """Copy every object under ``uri_prefix`` into ``local_dir`` keeping relative paths."""
    root = Path(local_dir)
    base = str(uri_prefix).rstrip("/")
    uris = list_uris(base if not is_s3(base) else base + "/")
    if not uris:
        raise ObjectNotFoundError(f"download {uri_prefix}: nothing stored under this prefix")
    out = []
    for u in uris:
        rel = Path(u).relative_to(base).as_posix() if not is_s3(base) else u[len(base) + 1:]
        if not rel or rel.startswith("/") or ".." in Path(rel).parts:
            raise StorageError(f"download {u}: refusing to write outside {root} (key {rel!r})")
        out.append(download_file(u, root / rel))
    logger.info("downloaded %d files from %s to %s", len(out), uri_prefix, root)
    return out


def exists(uri: str) -> bool:
    """Whether ``uri`` names an object (or a local file or directory)."""
    if not is_s3(uri):
        return Path(uri).exists()
    bucket, key = split_s3(uri)
    try:
        _s3_call("exists", uri, s3_client().head_object, Bucket=bucket, Key=key)
    except ObjectNotFoundError:
        return False
    return True
