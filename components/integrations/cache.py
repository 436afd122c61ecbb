"""Content-addressed cache of per-video data-preparation results, in a local directory or under
an ``s3://`` prefix.

Layout: ``<root>/v1/<sha256[:2]>/<sha256>/<entry name>/<files>`` where ``sha256`` is the video
file's hash and the entry name encodes the settings that produced the entry (the caller builds
it with :func:`settings_key`). An entry is complete only when its marker ``_COMPLETE.json``
exists; the marker is written after every other file and holds the entry's description.
Entries without a marker (a run stopped half-way) are ignored and rewritten.

Writes: an entry is built in a staging directory (:meth:`Cache.staging`) and published with
:meth:`Cache.commit`. On a local disk the staging directory sits beside the entry, gets its
marker and is renamed into place in one step; on S3 the files are uploaded under the entry's
prefix, then the marker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from . import storage

logger = logging.getLogger(__name__)

LAYOUT = "v1"
MARKER = "_COMPLETE.json"


def settings_key(obj: Any, length: int = 20) -> str:
    """Short stable hash of a JSON-serialisable description."""
    payload = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def _check_sha(sha: str) -> str:
    if len(sha) < 8 or any(c not in "0123456789abcdef" for c in sha):
        raise ValueError(f"cache entries are addressed by a hex sha256, got {sha!r}")
    return sha


def _check_name(name: str) -> str:
    if not name or "/" in name or name.startswith(".") or name == MARKER:
        raise ValueError(f"bad cache entry name {name!r}: a non-empty name without '/' not starting with '.'")
    return name


class Cache:
    """Per-video entries under ``root`` (a directory or ``s3://bucket/prefix``).

    ``scratch`` is a local directory for staging S3 writes and for entries fetched from S3.
    """

    def __init__(self, root: str | os.PathLike[str], scratch: str | os.PathLike[str]):
        root = str(root).strip()
        if not root:
            raise ValueError("cache root is empty: give a directory or an s3://bucket/prefix")
        self.root = root.rstrip("/")
        self.remote = storage.is_s3(self.root)
        self.scratch = Path(scratch)

    def __repr__(self) -> str:
        return f"Cache({self.root!r})"

    def _base(self, sha: str) -> str:
        return storage.join(self.root, LAYOUT, _check_sha(sha)[:2], sha)

    # -- reading ---------------------------------------------------------------------

    def entries(self, sha: str, prefix: str = "") -> dict[str, dict[str, Any]]:
        """Complete entries of video ``sha`` whose name starts with ``prefix``: name -> marker content."""
        base = self._base(sha)
        out: dict[str, dict[str, Any]] = {}
        if not self.remote:
            d = Path(base)
            if not d.is_dir():
                return out
            for e in sorted(d.iterdir()):
                if e.name.startswith(".") or not e.name.startswith(prefix) or not (e / MARKER).is_file():
                    continue
                out[e.name] = self._read_marker(e / MARKER)
            return out
        names = set()
        for uri in storage.list_uris(base + "/" + prefix):
            rel = uri[len(base) + 1:].split("/")
            if len(rel) == 2 and rel[1] == MARKER and not rel[0].startswith("."):
                names.add(rel[0])
        for name in sorted(names):
            local = self.scratch / "markers" / sha / f"{name}.json"
            storage.download_file(storage.join(base, name, MARKER), local)
            out[name] = self._read_marker(local)
        return out

    @staticmethod
    def _read_marker(path: Path) -> dict[str, Any]:
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            logger.warning("cache marker %s is unreadable (%s); the entry is ignored", path, e)
            return {"unreadable": True}

    def get(self, sha: str, name: str) -> Path | None:
        """Local directory holding the complete entry, or None when there is none."""
        _check_name(name)
        base = self._base(sha)
        if not self.remote:
            d = Path(base) / name
            return d if (d / MARKER).is_file() else None
        local = self.scratch / "entries" / sha / name
        if (local / MARKER).is_file():
            return local
        if not storage.exists(storage.join(base, name, MARKER)):
            return None
        tmp = local.with_name(f".{name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            storage.download_dir(storage.join(base, name), tmp)
            if not (tmp / MARKER).is_file():
                return None
            if local.exists():
                shutil.rmtree(local)
            os.replace(tmp, local)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return local

    # -- writing ---------------------------------------------------------------------

    def staging(self, sha: str, name: str) -> Path:
        """A fresh empty directory to build entry ``name`` of video ``sha`` in."""
        _check_name(name)
        parent = Path(self._base(sha)) if not self.remote else self.scratch / "staging" / sha
        d = parent / f".{name}.tmp-{uuid.uuid4().hex[:8]}"
        d.mkdir(parents=True)
        return d

    def commit(self, sha: str, name: str, staging: Path, info: dict[str, Any]) -> Path:
        """Publish ``staging`` as entry ``name`` with marker content ``info``; returns a local
        directory holding the entry. ``staging`` is consumed."""
        _check_name(name)
        staging = Path(staging)
        if (staging / MARKER).exists():
            raise ValueError(f"{staging} already holds {MARKER}; it is written by commit()")
        marker = {**info, "name": name, "video_sha256": sha}
        if not self.remote:
            tmp = staging / (MARKER + ".tmp")
            tmp.write_text(json.dumps(marker, indent=1, default=str))
            os.replace(tmp, staging / MARKER)
            final = Path(self._base(sha)) / name
            if final.exists():
                if (final / MARKER).is_file():  # written meanwhile by another run: same content
                    shutil.rmtree(staging)
                    return final
                logger.info("cache: rewriting incomplete entry %s", final)
                shutil.rmtree(final)
            os.replace(staging, final)
            return final
        prefix = storage.join(self._base(sha), name)
        for f in sorted(p for p in staging.rglob("*") if p.is_file()):
            storage.upload_file(f, storage.join(prefix, f.relative_to(staging).as_posix()))
        marker_file = staging / MARKER
        marker_file.write_text(json.dumps(marker, indent=1, default=str))
        storage.upload_file(marker_file, storage.join(prefix, MARKER))
        local = self.scratch / "entries" / sha / name
        if local.exists():
            shutil.rmtree(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, local)
        return local
