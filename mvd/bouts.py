"""Per-frame labels <-> bouts (runs of one class over inclusive frame ranges).

A bout is a maximal run of consecutive frames with the same label. Frame ranges are
0-based and inclusive, so a bout of one frame has ``start == end`` and length 1.

Post-processing of model output lives here too: per-class confidence thresholds
(:func:`labels_from_probs`) and a minimum bout length (:func:`apply_min_bout`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import numpy as np

__all__ = [
    "Bout",
    "labels_from_probs",
    "bouts_from_labels",
    "apply_min_bout",
    "intervals_to_frame_labels",
]

_logger = logging.getLogger(__name__)


class Bout(NamedTuple):
    """One event: class index, inclusive frame range and a confidence score."""

    label: int
    start: int
    end: int
    score: float = 1.0

    @property
    def length(self) -> int:
        """Number of frames (inclusive range)."""
        return self.end - self.start + 1


def _as_frame_labels(frame_labels: np.ndarray, what: str = "frame_labels") -> np.ndarray:
    arr = np.asarray(frame_labels)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of class indices, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{what} must hold integer class indices, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def labels_from_probs(
    probs: np.ndarray,
    *,
    thresholds: Mapping[int, float] | None = None,
    background: int = 0,
) -> np.ndarray:
    """Per-frame argmax of ``probs`` (N, C) -> int64 labels (N,).

    With ``thresholds`` (class index -> minimum probability), a frame whose argmax class
    has a probability below that class's threshold becomes ``background``. Classes
    without a threshold are kept as predicted.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must have shape (num_frames, num_classes), got {p.shape}")
    num_classes = p.shape[1]
    if num_classes == 0:
        raise ValueError("probs has zero classes")
    if not 0 <= background < num_classes:
        raise ValueError(f"background class {background} is outside 0..{num_classes - 1}")
    pred = np.argmax(p, axis=1).astype(np.int64) if p.shape[0] else np.zeros(0, np.int64)
    if thresholds:
        top = p[np.arange(p.shape[0]), pred] if p.shape[0] else np.zeros(0)
        for cls, thr in thresholds.items():
            cls = int(cls)
            if not 0 <= cls < num_classes:
                raise ValueError(
                    f"threshold given for class {cls}, outside 0..{num_classes - 1}; "
                    "key thresholds by class index"
                )
            low = (pred == cls) & (top < float(thr))
            pred[low] = background
    return pred


def bouts_from_labels(
    frame_labels: np.ndarray,
    probs: np.ndarray | None = None,
    *,
    include: Iterable[int] | None = None,
) -> list[Bout]:
    """Runs of equal consecutive labels as :class:`Bout` s, in frame order.

    ``score`` is the mean of ``probs[:, label]`` over the bout, or 1.0 without ``probs``.
    ``include`` keeps only bouts of those classes (e.g. the action classes).
    """
    lab = _as_frame_labels(frame_labels)
    n = lab.shape[0]
    if probs is not None:
        p = np.asarray(probs, dtype=np.float64)
        if p.ndim != 2 or p.shape[0] != n:
            raise ValueError(
                f"probs must have shape ({n}, num_classes) to match frame_labels, got {p.shape}"
            )
        if n and (lab.min() < 0 or lab.max() >= p.shape[1]):
            raise ValueError(f"frame_labels hold classes outside 0..{p.shape[1] - 1} of probs")
    if n == 0:
        return []
    keep = None if include is None else {int(c) for c in include}
    change = np.flatnonzero(lab[1:] != lab[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change - 1, [n - 1]))
    out: list[Bout] = []
    for s, e in zip(starts.tolist(), ends.tolist()):
        cls = int(lab[s])
        if keep is not None and cls not in keep:
            continue
        score = 1.0 if probs is None else float(p[s : e + 1, cls].mean())
        out.append(Bout(cls, int(s), int(e), score))
    return out


def apply_min_bout(
    frame_labels: np.ndarray,
    min_len: Mapping[int, int] | int,
    *,
    background: int = 0,
) -> np.ndarray:
    """Relabel bouts shorter than their class's minimum length (frames) to ``background``.

    An int applies to every class except ``background``; a dict applies per class
    (classes not in it are kept). Bouts of ``background`` itself are never changed.
    Short bouts are not merged into neighbours: a relabelled frame becomes background,
    which joins any adjacent background run. Runs are judged on the input labels, in
    one pass. Returns a new array.
    """
    lab = _as_frame_labels(frame_labels).copy()
    if isinstance(min_len, Mapping):
        limits = {int(k): int(v) for k, v in min_len.items()}
    else:
        limits = None
        default = int(min_len)
    for b in bouts_from_labels(lab):
        if b.label == background:
            continue
        need = limits.get(b.label, 0) if limits is not None else default
        if b.length < need:
            lab[b.start : b.end + 1] = background
    return lab


def intervals_to_frame_labels(
    num_frames: int,
    intervals: Iterable[tuple[int, int, int]],
    background: int = 0,
) -> np.ndarray:
    """Per-frame labels (num_frames,) from ``(label, start, end)`` inclusive intervals.

    Frames outside every interval get ``background``. Where intervals overlap, later
    ones overwrite earlier ones (a warning is logged when labels conflict).
    """
    if int(num_frames) != num_frames or num_frames < 0:
        raise ValueError(f"num_frames must be a non-negative int, got {num_frames!r}")
    num_frames = int(num_frames)
    out = np.full(num_frames, background, dtype=np.int64)
    written = np.zeros(num_frames, dtype=bool)
    conflicts = 0
    for i, iv in enumerate(intervals):
        try:
            label, start, end = (int(v) for v in iv)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"interval #{i} {iv!r} must be (label, start, end) integers"
            ) from exc
        if label < 0:
            raise ValueError(f"interval #{i} {tuple(iv)!r} has a negative label")
        if start > end:
            raise ValueError(
                f"interval #{i} (label={label}, start={start}, end={end}) has start > end; "
                "ranges are inclusive [start, end]"
            )
        if start < 0 or end >= num_frames:
            raise ValueError(
                f"interval #{i} (label={label}, start={start}, end={end}) lies outside "
                f"frames 0..{num_frames - 1} of a {num_frames}-frame video; "
                "check the annotation's frame range against the video"
            )
        seg = slice(start, end + 1)
        conflicts += int(np.count_nonzero(written[seg] & (out[seg] != label)))
        out[seg] = label
        written[seg] = True
    if conflicts:
        _logger.warning("%d frames are covered by intervals of different labels; "
                        "the later interval wins", conflicts)
    return out
