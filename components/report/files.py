"""Prediction files: per-frame labels and probabilities, and per-bout rows, as CSV (written atomically)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mvd.atomic import write_bytes

FRAMES_CSV_BASE = ["frame", "label"]
BOUTS_CSV_HEADER = ["label", "start_frame", "end_frame", "start_s", "end_s", "duration_s", "score"]


def _frame_labels(arr: Any, num_classes: int, what: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of class indices, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.mod(a, 1) == 0):
            raise ValueError(f"{what} must hold integer class indices, got dtype {a.dtype}")
    a = a.astype(np.int64, copy=False)
    if a.size and (a.min() < 0 or a.max() >= num_classes):
        bad = int(np.flatnonzero((a < 0) | (a >= num_classes))[0])
        raise ValueError(f"{what} frame {bad}: label {int(a[bad])} is outside 0..{num_classes - 1}; "
                         "pass the class names the labels index into")
    return a


def _check_probs(probs: Any, num_frames: int, num_classes: int, what: str) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.shape != (num_frames, num_classes):
        raise ValueError(f"{what} has shape {p.shape}; expected ({num_frames} frames, "
                         f"{num_classes} classes)")
    return p


def _check_fps(fps: float, what: str) -> float:
    f = float(fps)
    if not np.isfinite(f) or f <= 0:
        raise ValueError(f"{what}: fps is {fps}; it must be > 0")
    return f


def _atomic_write_csv(path: Path, header: list[str], rows: Sequence[Sequence[Any]]) -> Path:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return write_bytes(path, buf.getvalue().encode("utf-8"))


def write_frames_csv(path: str | os.PathLike, pred_labels: np.ndarray, probs: np.ndarray | None,
                     labels: Sequence[str]) -> Path:
    """Per-frame CSV ``frame,label,p_<class>...``: label is the class name, probabilities
    with 4 decimals (no ``p_`` columns when ``probs`` is None). Written atomically."""
    names = [str(x) for x in labels]
    pred = _frame_labels(pred_labels, len(names), "pred_labels")
    header = FRAMES_CSV_BASE + ([] if probs is None else [f"p_{x}" for x in names])
    name_arr = np.asarray(names, dtype=object)[pred]
    if probs is None:
        rows = zip(range(pred.size), name_arr)
    else:
        p = _check_probs(probs, pred.size, len(names), "probs")
        cells = np.char.mod("%.4f", p).tolist() if p.size else [[] for _ in range(pred.size)]
        rows = ([i, name_arr[i], *cells[i]] for i in range(pred.size))
    return _atomic_write_csv(Path(path), header, list(rows))


def write_bouts_csv(path: str | os.PathLike, bouts: Sequence[Mapping[str, Any]], fps: float) -> Path:
    """Bouts CSV ``label,start_frame,end_frame,start_s,end_s,duration_s,score``.

    ``bouts`` are dicts with ``start``, ``end`` (inclusive frames), ``name`` (or ``label``)
    and optionally ``score``, as in ``evaluate(...)["pred_bouts"][v]``. ``end_s`` is the end
    of the last frame, ``(end + 1) / fps``; ``duration_s = (end - start + 1) / fps``.
    """
    fps = _check_fps(fps, str(path))
    rows = []
    for i, b in enumerate(bouts):
        try:
            start, end = int(b["start"]), int(b["end"])
        except KeyError as exc:
            raise ValueError(f"{path}: bout #{i} {dict(b)!r} lacks key {exc}; bouts need "
                             "start and end frames") from exc
        if start < 0 or end < start:
            raise ValueError(f"{path}: bout #{i} has frames [{start}, {end}]; ranges are "
                             "inclusive with 0 <= start <= end")
        name = b.get("name", b.get("label"))
        if name is None:
            raise ValueError(f"{path}: bout #{i} has neither 'name' nor 'label'")
        score = b.get("score")
        rows.append([name, start, end, f"{start / fps:.6f}", f"{(end + 1) / fps:.6f}",
                     f"{(end - start + 1) / fps:.6f}", "" if score is None else f"{float(score):.4f}"])
    return _atomic_write_csv(Path(path), BOUTS_CSV_HEADER, rows)
