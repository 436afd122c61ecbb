import json

import numpy as np
import pytest

from mvd.shards import INDEX, ShardReader, ShardWriter


def test_round_trip_across_shards(tmp_path):
    rng = np.random.default_rng(0)
    size = 16
    clips = [rng.integers(0, 256, (int(n), size, size, 3), dtype=np.uint8) for n in rng.integers(5, 40, 12)]
    w = ShardWriter(tmp_path, size, shard_bytes=size * size * 3 * 60)  # ~60 frames a shard
    for i, c in enumerate(clips):
        w.add(c, label=i % 3, video=f"v{i}")
    w.close({"labels": ["a", "b", "c"]})
    r = ShardReader(tmp_path)
    assert len(r) == len(clips) and len(r.index["shards"]) > 1 and r.index["labels"] == ["a", "b", "c"]
    for i, c in enumerate(clips):
        np.testing.assert_array_equal(np.asarray(r.frames(i)), c)
        assert r.clips[i]["label"] == i % 3
    assert not list(tmp_path.glob("*.tmp"))


def test_unfinished_directory_is_refused(tmp_path):
    w = ShardWriter(tmp_path, 8)
    w.add(np.zeros((3, 8, 8, 3), np.uint8), label=0)
    with pytest.raises(FileNotFoundError, match="not a finished"):
        ShardReader(tmp_path)  # no index until close()
    w.close()
    idx = json.loads((tmp_path / INDEX).read_text())
    idx["schema"] = 99
    (tmp_path / INDEX).write_text(json.dumps(idx))
    with pytest.raises(ValueError, match="schema"):
        ShardReader(tmp_path)


def test_rejects_wrong_frame_shape(tmp_path):
    w = ShardWriter(tmp_path, 8)
    with pytest.raises(ValueError, match="uint8"):
        w.add(np.zeros((3, 9, 8, 3), np.uint8), label=0)
