"""Training and validation datasets over window shards (no video decoding)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .shards import ShardReader
from .transforms import ClipTransform


class ClipDataset(Dataset):
    """Stored training windows (already cropped and resized), transformed for the model."""

    def __init__(self, reader: ShardReader, ids: Sequence[int], transform: ClipTransform):
        self.reader = reader
        self.ids = list(ids)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def labels(self) -> list[int]:
        return [self.reader.clips[i]["label"] for i in self.ids]

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int]:
        i = self.ids[k]
        frames = np.asarray(self.reader.frames(i))
        return self.transform(frames), int(self.reader.clips[i]["label"])


def stratified_split(labels: Sequence[int], ratio: float, seed: int,
                     groups: Sequence[object] | None = None) -> tuple[list[int], list[int]]:
    """Positions split into (train, val) with ≈``ratio`` of each class in val (≥1 when a class
    has ≥2 groups). Positions sharing a group (the windows of one clip) stay on one side."""
    groups = list(range(len(labels))) if groups is None else list(groups)
    members: dict[object, list[int]] = {}
    for pos, g in enumerate(groups):
        members.setdefault(g, []).append(pos)
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[object]] = {}
    for g, pos in members.items():
        by_class.setdefault(int(labels[pos[0]]), []).append(g)
    train, val = [], []
    for lab in sorted(by_class):
        gs = by_class[lab]
        order = rng.permutation(len(gs))
        n_val = int(round(len(gs) * ratio)) if ratio > 0 else 0
        if ratio > 0 and n_val == 0 and len(gs) >= 2:
            n_val = 1
        for k, o in enumerate(order):
            (val if k < n_val else train).extend(members[gs[o]])
    return sorted(train), sorted(val)


def balanced_weights(labels: Sequence[int]) -> torch.Tensor:
    """Per-sample weights so every class is drawn equally often."""
    counts = Counter(int(x) for x in labels)
    return torch.tensor([1.0 / counts[int(x)] for x in labels], dtype=torch.double)
