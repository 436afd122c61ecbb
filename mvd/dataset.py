"""Training and validation datasets over window shards (no video decoding)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from .dense import frame_targets
from .labels import idle_index
from .shards import ShardReader


class ClipDataset(Dataset):
    """Stored training windows (already cropped and resized) as uint8 ``(T, S, S, 3)`` tensors.

    Nothing is decoded, converted or augmented here: batches go to the training device as
    uint8 and :class:`mvd.transforms.ClipAugment` turns them into model input there.
    :meth:`loader` gives each batch as :meth:`__getitems__` builds it, copied once from the
    shards into one tensor.
    """

    def __init__(self, reader: ShardReader, ids: Sequence[int]):
        self.reader = reader
        self.ids = list(ids)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def labels(self) -> list[int]:
        return [self.reader.clips[i]["label"] for i in self.ids]

    def frame_targets(self, i: int) -> np.ndarray:
        """(T,) class of each sampled frame of stored window ``i``: the ``frame_labels`` bbox-crop stored
        (from all of the video's intervals), else :func:`mvd.dense.frame_targets` of the clip's event,
        else the clip's class on every frame when the window does not record its frames."""
        c = self.reader.clips[i]
        if "frame_labels" in c:
            return np.asarray(c["frame_labels"], dtype=np.int64)
        t = len(self.reader.frames(i))
        if "indices" not in c or "event_start" not in c:
            return np.full(t, int(c["label"]), dtype=np.int64)
        return frame_targets(np.asarray(c["indices"]), int(c["label"]), int(c["event_start"]), int(c["event_end"]),
                             idle_index(self.reader.index.get("labels", [])))

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        i = self.ids[k]
        return (torch.from_numpy(np.array(self.reader.frames(i))), int(self.reader.clips[i]["label"]),
                torch.from_numpy(self.frame_targets(i)))

    def __getitems__(self, ks: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The clips ``ks`` as one uint8 ``(B, T, S, S, 3)`` tensor, their labels ``(B,)`` and the
        classes of their sampled frames ``(B, T)``."""
        ids = [self.ids[k] for k in ks]
        out = torch.empty((len(ids), *self.reader.frames(ids[0]).shape), dtype=torch.uint8)
        if get_worker_info() is not None:  # a worker hands batches over in shared memory
            out.share_memory_()
        buf = out.numpy()
        for n, i in enumerate(ids):
            buf[n] = self.reader.frames(i)
        labels = torch.tensor([int(self.reader.clips[i]["label"]) for i in ids], dtype=torch.long)
        return out, labels, torch.from_numpy(np.stack([self.frame_targets(i) for i in ids]))

    def loader(self, batch_size: int, **kwargs: Any) -> DataLoader:
        """A ``DataLoader`` (``kwargs`` passed on) yielding ``(uint8 clips, labels, frame classes)`` batches."""
        return DataLoader(self, batch_size=batch_size, collate_fn=_collated, **kwargs)


def _collated(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """``collate_fn`` for :meth:`ClipDataset.loader`: its batches come collated already."""
    return batch


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
