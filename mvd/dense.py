"""Per-frame targets for the dense head, and the mapping of its per-time-step output to frames.

A window samples ``num_frames`` video frames (``indices``, non-decreasing); the tubelet groups
them in pairs, so the dense head (:meth:`mvd.model.VisionTransformer.forward_dense`) gives one
prediction per pair. Training targets come from the video's annotated intervals: a sampled frame
inside one is its class, any other is idle (:func:`interval_targets`; windows written before the
targets were stored take the clip's own event, :func:`frame_targets`), so a window that straddles a
bout boundary teaches where the bout starts and ends. At inference every video frame
of a window's span takes the prediction of the last sampled frame at or before it, and
overlapping windows are averaged (:func:`mvd.infer.predict_video`).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["frame_targets", "interval_targets", "step_targets", "span_positions"]


def frame_targets(indices: np.ndarray, label: int, event_start: int, event_end: int, idle: int = 0) -> np.ndarray:
    """(T,) class of each sampled frame: ``label`` inside the inclusive event range, else ``idle``."""
    idx = np.asarray(indices)
    return np.where((idx >= event_start) & (idx <= event_end), int(label), int(idle)).astype(np.int64)


def interval_targets(indices: np.ndarray, intervals: list[tuple[int, int, int]], idle: int = 0) -> np.ndarray:
    """(T,) class of each sampled frame from all of a video's labelled ``(class, start, end)`` intervals
    (inclusive), ``idle`` elsewhere: a window near two events labels both."""
    idx = np.asarray(indices)
    out = np.full(len(idx), int(idle), dtype=np.int64)
    for label, start, end in intervals:
        out[(idx >= start) & (idx <= end)] = int(label)
    return out


def step_targets(frame_labels: torch.Tensor, num_classes: int, tubelet: int = 2) -> torch.Tensor:
    """(B, T) frame classes -> (B, T / tubelet, C) soft targets: the class shares of each tubelet."""
    B, T = frame_labels.shape
    assert T % tubelet == 0, f"{T} sampled frames do not split into tubelets of {tubelet}"
    one_hot = torch.nn.functional.one_hot(frame_labels, num_classes).float()
    return one_hot.reshape(B, T // tubelet, tubelet, num_classes).mean(2)


def span_positions(indices: np.ndarray, start: int, end: int, tubelet: int = 2) -> np.ndarray:
    """For each video frame ``start..end`` (inclusive), the time step whose prediction it takes:
    that of the last sampled frame at or before it (the first sample before the first one). A frame
    sampled several times (indices clamped at a video's end) takes its first sample."""
    idx = np.asarray(indices)
    frames = np.arange(start, end + 1)
    k = np.clip(np.searchsorted(idx, frames, side="right") - 1, 0, len(idx) - 1)
    k = np.searchsorted(idx, idx[k], side="left")
    return k // tubelet
