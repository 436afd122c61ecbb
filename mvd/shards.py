"""Clip shards: cropped, resized uint8 clips packed into a few large files with a JSON index.

Each shard is a raw ``uint8`` file of frames ``(size, size, 3)`` read back with ``np.memmap``,
so the training loader slices memory instead of decoding video. The index lists every clip's
shard, frame offset, length and metadata. Shards are written under temporary names and
renamed when complete; the index is written last, so a directory without ``index.json`` is
never mistaken for a finished one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = 1
INDEX = "index.json"


class ShardWriter:
    """Append clips (T, S, S, 3) uint8; ``close()`` finalises shards and the index."""

    def __init__(self, out_dir: str | Path, frame_size: int, shard_bytes: int = 1 << 30):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.size = int(frame_size)
        self.frame_bytes = self.size * self.size * 3
        self.max_frames = max(1, shard_bytes // self.frame_bytes)
        self.clips: list[dict[str, Any]] = []
        self.shards: list[str] = []
        self._fh = None
        self._frames_in_shard = 0

    def _open_next(self) -> None:
        self._close_current()
        name = f"shard-{len(self.shards):05d}.u8"
        self.shards.append(name)
        self._fh = open(self.dir / (name + ".tmp"), "wb")
        self._frames_in_shard = 0

    def _close_current(self) -> None:
        if self._fh is not None:
            self._fh.close()
            name = self.shards[-1]
            os.replace(self.dir / (name + ".tmp"), self.dir / name)
            self._fh = None

    def add(self, frames: np.ndarray, **meta: Any) -> int:
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"clip frames must be uint8 (T, {self.size}, {self.size}, 3), got {frames.dtype} {frames.shape}")
        if self._fh is None or self._frames_in_shard + len(frames) > self.max_frames and self._frames_in_shard > 0:
            self._open_next()
        self._fh.write(np.ascontiguousarray(frames).tobytes())
        entry = {"shard": len(self.shards) - 1, "offset": self._frames_in_shard, "length": int(len(frames)), **meta}
        self._frames_in_shard += len(frames)
        self.clips.append(entry)
        return len(self.clips) - 1

    def close(self, extra: dict[str, Any] | None = None) -> Path:
        self._close_current()
        index = {"schema": SCHEMA, "frame_size": self.size, "shards": self.shards, "clips": self.clips, **(extra or {})}
        tmp = self.dir / (INDEX + ".tmp")
        tmp.write_text(json.dumps(index))
        os.replace(tmp, self.dir / INDEX)
        return self.dir / INDEX


class ShardReader:
    """Random access to the clips of a shard directory."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        path = self.dir / INDEX
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: {self.dir} is not a finished clip-shard directory")
        index = json.loads(path.read_text())
        if index.get("schema") != SCHEMA:
            raise ValueError(f"{path} has schema {index.get('schema')!r}; this version reads schema {SCHEMA}")
        self.index = index
        self.size = int(index["frame_size"])
        self.clips: list[dict[str, Any]] = index["clips"]
        self._maps: dict[int, np.memmap] = {}

    def __len__(self) -> int:
        return len(self.clips)

    def _map(self, shard: int) -> np.ndarray:
        m = self._maps.get(shard)
        if m is None:
            f = self.dir / self.index["shards"][shard]
            m = np.memmap(f, dtype=np.uint8, mode="r").reshape(-1, self.size, self.size, 3)
            self._maps[shard] = m
        return m

    def frames(self, i: int) -> np.ndarray:
        c = self.clips[i]
        return self._map(c["shard"])[c["offset"]: c["offset"] + c["length"]]

    def __getstate__(self) -> dict[str, Any]:  # memmaps are reopened in worker processes
        return {**self.__dict__, "_maps": {}}
