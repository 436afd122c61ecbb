"""benchmarks/fps_transfer.py: the two rates show the same video (the same walk and behaviours at the
same seconds), so the twitch F1 drop measures the frame rate and nothing else."""

import numpy as np
import pytest
from benchscripts import load

from mvd.video import probe, read_frames


@pytest.fixture(scope="module")
def fps_transfer():
    return load("fps_transfer")


def test_the_base_rate_video_is_every_other_frame_of_the_fast_one(fps_transfer, tmp_path):
    base, fast = fps_transfer.render_pair(tmp_path, 0, 7, 4.0, 15.0, 30.0)
    assert (base.fps, fast.fps) == (15.0, 30.0)
    nb, nf = probe(str(base.path)).num_frames, probe(str(fast.path)).num_frames
    assert nf == 120 and nb == 60
    a = read_frames(base.path, list(range(0, nb, 7))).astype(np.int16)
    b = read_frames(fast.path, list(range(0, nf, 14))).astype(np.int16)
    assert np.abs(a - b).mean() < 2.0  # the same pictures, up to encoding
    other = read_frames(fast.path, list(range(1, nf, 14))).astype(np.int16)  # the frames in between differ more
    assert np.abs(a - other).mean() > np.abs(a - b).mean()
    assert [n for n, _, _ in base.behaviours] == [n for n, _, _ in fast.behaviours] and fast.behaviours
    for (_, s, e), (_, bs, be) in zip(fast.behaviours, base.behaviours):
        assert bs <= be
        assert s <= 2 * bs and 2 * be <= e  # every base frame of a behaviour was taken from inside it
        assert 2 * (bs - 1) < s and 2 * (be + 1) > e  # and none taken from inside it is left out


def test_the_pair_renders_to_the_same_files_every_time(fps_transfer, tmp_path):
    """Both videos are encoded as the demo's are, so a rerun of the benchmark scores the same pixels."""
    import hashlib

    def digests(d):
        d.mkdir()
        return [hashlib.sha256(r.path.read_bytes()).hexdigest() for r in fps_transfer.render_pair(d, 0, 7, 2.0, 15.0, 30.0)]

    first = digests(tmp_path / "a")
    for k in range(3):
        assert digests(tmp_path / f"b{k}") == first


def test_the_fast_rate_must_be_a_whole_multiple_of_the_base_rate(fps_transfer, tmp_path):
    with pytest.raises(SystemExit, match="whole multiple"):
        fps_transfer.render_pair(tmp_path, 0, 7, 1.0, 25.0, 60.0)
