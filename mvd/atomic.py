"""Artifacts appear whole or not at all, and a full disk is said plainly.

Every file is written under a temporary name beside its target and renamed into place (a rename
within one directory is atomic on POSIX); a directory is copied into a temporary sibling and
renamed. On failure the partial file or directory is removed. ``ENOSPC`` / ``EDQUOT`` become a
``DiskFullError`` that names the path, the free space left and, when known, the space needed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["DiskFullError", "atomic_copy_tree", "atomic_write", "disk_full", "is_disk_full", "tree_size", "write_bytes",
           "write_json", "write_text", "read_json_artifact"]

_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """No space left on the device that holds ``path``."""

    def __init__(self, path: str | os.PathLike[str], needed: int | None = None):
        super().__init__(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        self.path = str(path)
        self.free = free_bytes(path)
        self.needed = needed

    def __str__(self) -> str:
        free = "unknown space" if self.free is None else _size(self.free)
        need = f", about {_size(self.needed)} needed" if self.needed else ""
        return (f"no space left on device writing {self.path}: the disk is full ({free} free{need}). "
                "Free some space or use a workdir on a larger disk, then run again")

    def __reduce__(self):  # picklable across processes
        return (DiskFullError, (self.path, self.needed))


def is_disk_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in _FULL


def disk_full(e: OSError, path: str | os.PathLike[str], needed: int | None = None) -> DiskFullError:
    """A ``DiskFullError`` for a full-disk ``OSError``, naming the file it failed on (else ``path``)."""
    if isinstance(e, DiskFullError):
        return e
    return DiskFullError(e.filename or path, needed)


def free_bytes(path: str | os.PathLike[str]) -> int | None:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def tree_size(path: str | os.PathLike[str]) -> int:
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None], needed: int | None = None) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        if is_disk_full(e):
            raise DiskFullError(path, needed) from e
        raise
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_copy_tree(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Copy the files of directory ``src`` to ``dst`` (replacing it) so that ``dst`` is complete or absent."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent))
    try:
        for p in src.iterdir():
            if p.is_file():
                shutil.copy2(p, tmp / p.name)
            elif p.is_dir():
                shutil.copytree(p, tmp / p.name)
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        elif dst.exists():
            dst.unlink()
        os.rename(tmp, dst)
    except OSError as e:
        if is_disk_full(e):
            raise DiskFullError(dst, tree_size(src)) from e
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dst


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), needed=len(data))


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), needed=len(text.encode()))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=1, default=str))


def read_json_artifact(path: str | os.PathLike[str], error: type[Exception], stage: str) -> Any:
    """The JSON object a stage wrote at ``path``; ``error`` naming the file (and the ``stage`` to run)
    when it is missing or not valid JSON."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path} not found: run the {stage} stage first")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise error(f"{path} is not valid JSON: {e}") from e
    if not isinstance(raw, dict):
        raise error(f"{path} must hold a JSON object; run the {stage} stage again")
    return raw
