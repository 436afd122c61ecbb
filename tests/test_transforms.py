"""Batch clip transform: per-clip draws, the same augmentation through all frames of a clip."""

import random

import numpy as np
import pytest
import torch

from mvd.dataset import ClipDataset
from mvd.shards import ShardReader, ShardWriter
from mvd.transforms import MEAN, STD, ClipAugment, parse_rand_augment, to_model_input

MEAN_T = torch.tensor(MEAN).view(1, 3, 1, 1, 1)
STD_T = torch.tensor(STD).view(1, 3, 1, 1, 1)


def _clips(b=6, t=4, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, h, w, 3), dtype=torch.uint8, generator=g)


def _by_hand(clips):
    return (clips.permute(0, 4, 1, 2, 3).float() / 255 - MEAN_T) / STD_T


def test_eval_is_normalisation_at_input_size():
    x = _clips()
    y = ClipAugment(32, False)(x)
    assert y.shape == (6, 3, 4, 32, 32) and y.dtype == torch.float32 and y.is_contiguous()
    torch.testing.assert_close(y, _by_hand(x))
    torch.testing.assert_close(to_model_input(x), _by_hand(x))


def test_eval_resizes_stored_clips_of_another_size():
    x = torch.full((2, 4, 48, 48, 3), 200, dtype=torch.uint8)
    y = ClipAugment(32, False)(x)
    assert y.shape == (2, 3, 4, 32, 32)
    torch.testing.assert_close(y, _by_hand(torch.full((2, 4, 32, 32, 3), 200, dtype=torch.uint8)))


def test_rejects_float_or_channel_first_input():
    with pytest.raises(ValueError, match="uint8"):
        ClipAugment(32, False)(torch.zeros(1, 4, 32, 32, 3))
    with pytest.raises(ValueError, match=r"\(B, T, H, W, 3\)"):
        ClipAugment(32, False)(torch.zeros(1, 3, 4, 32, 32, dtype=torch.uint8))


def _full(**kw):
    args = dict(rrc_scale=(0.5, 1.0), flip=True, rand_augment="rand-m9-n3-mstd0.5-inc1", color_jitter=0.3, invert_prob=0.5,
                low_res_prob=0.5)
    args.update(kw)
    return ClipAugment(32, True, **args)


def test_every_frame_of_a_clip_gets_the_same_augmentation():
    still = _clips(b=6, t=1).expand(6, 4, 32, 32, 3).contiguous()  # every clip: one frame repeated
    torch.manual_seed(1)
    y = _full()(still)
    assert y.shape == (6, 3, 4, 32, 32)
    for b in range(6):
        for t in range(1, 4):
            torch.testing.assert_close(y[b, :, t], y[b, :, 0])


def test_each_clip_gets_its_own_draw():
    same = _clips(b=1).expand(8, 4, 32, 32, 3).contiguous()
    torch.manual_seed(2)
    y = _full()(same)
    distinct = {tuple(y[b].flatten()[:64].tolist()) for b in range(8)}
    assert len(distinct) >= 6


def test_flips_are_per_clip_and_exact():
    x = _clips(b=48)
    torch.manual_seed(3)
    y = ClipAugment(32, True, rrc_scale=(1.0, 1.0), flip=True)(x)
    ref = _by_hand(x)  # (B, 3, T, H, W)
    seen = set()
    for b in range(48):
        # the 8 symmetries of a square: 4 rotations by 90°, each with or without a mirror
        cands = [torch.rot90(ref[b], k, dims=(-2, -1)) for k in range(4)]
        cands += [c.flip(-1) for c in cands]
        for k, cand in enumerate(cands):
            if torch.allclose(y[b], cand):
                seen.add(k)
                break
        else:
            pytest.fail(f"clip {b} is not a symmetry of its input")
    assert len(seen) >= 7


def test_inversion_with_probability_one():
    x = _clips(b=2)
    y = ClipAugment(32, True, rrc_scale=(1.0, 1.0), flip=False, invert_prob=1.0)(x)
    torch.testing.assert_close(y, _by_hand(255 - x), atol=1e-5, rtol=1e-5)


def test_lower_resolution_is_a_shrink_and_enlarge_per_clip():
    """Each clip equals itself shrunk (antialiased bilinear) to one side in [scale × S, S] and enlarged back,
    the same side for all its frames; sides differ between clips; evaluation never shrinks."""
    import torch.nn.functional as F

    x = _clips(b=12, t=2)
    torch.manual_seed(5)
    y = ClipAugment(32, True, rrc_scale=(1.0, 1.0), flip=False, low_res_prob=1.0, low_res_scale=0.25)(x)
    ref = _by_hand(x)
    found = []
    for b in range(len(x)):
        for side in range(8, 33):
            frames = ref[b].permute(1, 0, 2, 3)  # (T, 3, S, S)
            if side < 32:
                small = F.interpolate(frames, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
                frames = F.interpolate(small, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
            if torch.allclose(y[b], frames.permute(1, 0, 2, 3), atol=1e-4):
                found.append(side)
                break
        else:
            raise AssertionError(f"clip {b} is not a shrink-and-enlarge of its input")
    assert len(set(found)) > 3 and min(found) < 20, found
    torch.testing.assert_close(ClipAugment(32, False, low_res_prob=1.0)(x), ref)
    torch.testing.assert_close(ClipAugment(32, True, rrc_scale=(1.0, 1.0), flip=False, low_res_prob=0.0)(x), ref)


def test_erasing_covers_one_region_through_all_frames():
    x = torch.full((4, 4, 32, 32, 3), 128, dtype=torch.uint8)
    torch.manual_seed(4)
    random.seed(4)
    y = ClipAugment(32, True, rrc_scale=(1.0, 1.0), flip=False, reprob=1.0)(x)
    ref = _by_hand(x)
    for b in range(4):
        changed = (y[b] != ref[b]).any(0)  # (T, H, W)
        assert changed[0].any(), "nothing erased"
        for t in range(1, 4):
            assert torch.equal(changed[t], changed[0])


def test_same_seed_same_batch():
    x = _clips()
    outs = []
    for _ in range(2):
        torch.manual_seed(5)
        random.seed(5)
        outs.append(_full(reprob=0.5)(x))
    torch.testing.assert_close(outs[0], outs[1])


def test_rand_augment_spec():
    assert parse_rand_augment("rand-m7-n4-mstd0.5-inc1") == (4, 7.0, 0.5)
    assert parse_rand_augment("rand-n1") == (1, 9.0, 0.0)
    for bad in ("rand-m7-q1", "augmix-m5", "rand-m11"):
        with pytest.raises(ValueError, match="train.rand_augment"):
            parse_rand_augment(bad)


def test_dataset_hands_over_stored_uint8_clips(tmp_path):
    w = ShardWriter(tmp_path, 32)
    frames = np.arange(4 * 32 * 32 * 3, dtype=np.int64).reshape(4, 32, 32, 3).astype(np.uint8)
    w.add(frames, label=2)
    w.close()
    ds = ClipDataset(ShardReader(tmp_path), [0])
    clip, label, frame_labels = ds[0]
    assert clip.dtype == torch.uint8 and label == 2 and frame_labels.tolist() == [2] * len(frames)
    np.testing.assert_array_equal(clip.numpy(), frames)


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_batches_equal_stacked_items(tmp_path, workers):
    rng = np.random.default_rng(0)
    w = ShardWriter(tmp_path, 16, shard_bytes=3 * 4 * 16 * 16 * 3)  # three clips a shard: batches span shards
    for i in range(7):
        w.add(rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8), label=i % 3)
    w.close()
    ds = ClipDataset(ShardReader(tmp_path), [6, 0, 3, 2, 5])
    got = list(ds.loader(2, sampler=[4, 0, 2, 1, 3], num_workers=workers))
    assert [len(x) for x, *_ in got] == [2, 2, 1]
    x = torch.cat([b for b, *_ in got])
    y = torch.cat([lab for _, lab, _ in got])
    order = [4, 0, 2, 1, 3]
    torch.testing.assert_close(x, torch.stack([ds[k][0] for k in order]))
    assert y.tolist() == [ds[k][1] for k in order]


@pytest.mark.parametrize("train", [False, True])
def test_input_batch_is_left_as_it_was(train):
    x = _clips()
    before = x.clone()
    aug = _full(reprob=1.0) if train else ClipAugment(32, False)
    for _ in range(3):
        aug(x)
    assert torch.equal(x, before)
