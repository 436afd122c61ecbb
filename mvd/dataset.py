"""Training and validation datasets over clip shards (no video decoding)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .clips import Clip, center_window_start, train_window_start
from .shards import ShardReader
from .transforms import ClipTransform


def clip_of(entry: dict) -> Clip:
    return Clip(entry["label"], entry["start"], entry["end"], entry["event_start"], entry["event_end"])


class ClipDataset(Dataset):
    """Windows of ``num_frames`` frames every ``sampling_rate`` frames cut from stored clips.

    Training windows start at random where they keep the labelled frames in view; evaluation
    windows are centred on the labelled frames.
    """

    def __init__(
        self,
        reader: ShardReader,
        ids: Sequence[int],
        num_frames: int,
        sampling_rate: int,
        transform: ClipTransform,
        train: bool,
    ):
        self.reader = reader
        self.ids = list(ids)
        self.num_frames = num_frames
        self.sampling_rate = sampling_rate
        self.transform = transform
        self.train = train

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def labels(self) -> list[int]:
        return [self.reader.clips[i]["label"] for i in self.ids]

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int]:
        i = self.ids[k]
        entry = self.reader.clips[i]
        clip = clip_of(entry)
        span = self.num_frames * self.sampling_rate
        if self.train:
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,))))
            start = train_window_start(clip, span, rng)
        else:
            start = center_window_start(clip, span)
        rel = start - clip.start + self.sampling_rate * np.arange(self.num_frames)
        rel = np.clip(rel, 0, entry["length"] - 1)
        frames = np.asarray(self.reader.frames(i)[rel])
        return self.transform(frames), int(entry["label"])


def stratified_split(labels: Sequence[int], ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """Positions split into (train, val) with ≈``ratio`` of each class in val (≥1 when a class has ≥2)."""
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for pos, lab in enumerate(labels):
        by_class.setdefault(int(lab), []).append(pos)
    train, val = [], []
    for lab in sorted(by_class):
        pos = by_class[lab]
        rng.shuffle(pos)
        n_val = int(round(len(pos) * ratio)) if ratio > 0 else 0
        if ratio > 0 and n_val == 0 and len(pos) >= 2:
            n_val = 1
        val += pos[:n_val]
        train += pos[n_val:]
    return sorted(train), sorted(val)


def balanced_weights(labels: Sequence[int]) -> torch.Tensor:
    """Per-sample weights so every class is drawn equally often."""
    counts = Counter(int(x) for x in labels)
    return torch.tensor([1.0 / counts[int(x)] for x in labels], dtype=torch.double)
