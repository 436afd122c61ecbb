"""Look at and store per-frame mouse boxes: contact sheets (PNG) and boxes CSV files.

``boxes_for_videos`` is the work behind ``mar boxes VIDEO... --out DIR``: for every video it
writes ``<stem>.boxes.csv`` (``frame,x1,y1,x2,y2,score``; empty coordinates where nothing
was found) and ``<stem>.boxes.png`` (evenly spaced frames with the box drawn), decoding the
video once. A video that fails is reported with its reason; the others are still processed.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from mvd.atomic import write_bytes
from mvd.detect import make_detector
from mvd.video import VideoReadError, iter_frames, probe, read_frames

__all__ = ["contact_sheet", "write_boxes_csv", "read_boxes_csv", "boxes_for_videos", "sheet_indices"]

logger = logging.getLogger(__name__)

CSV_HEADER = ["frame", "x1", "y1", "x2", "y2", "score"]
_BOX_BGR = (0, 220, 0)
_NONE_BGR = (0, 0, 230)


def _check_boxes(boxes: np.ndarray, what: str) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float32)
    if b.ndim != 2 or b.shape[1] != 5:
        raise ValueError(f"{what}: boxes must have shape (N, 5) = x1, y1, x2, y2, score; got {b.shape}")
    return b


def sheet_indices(num_frames: int, n: int) -> list[int]:
    """``n`` frame indices spread evenly over ``[0, num_frames - 1]`` (fewer if the video is short)."""
    if num_frames <= 0 or n <= 0:
        return []
    return sorted(set(np.linspace(0, num_frames - 1, min(n, num_frames)).round().astype(int).tolist()))


def _thumb(frame: np.ndarray, box: np.ndarray | None, index: int, thumb_w: int) -> np.ndarray:
    h, w = frame.shape[:2]
    s = thumb_w / w
    th = max(1, round(h * s))
    img = cv2.cvtColor(cv2.resize(frame, (thumb_w, th), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
    font = cv2.FONT_HERSHEY_SIMPLEX
    if box is not None and np.isfinite(box[:4]).all():
        x1, y1, x2, y2 = (int(round(float(v) * s)) for v in box[:4])
        cv2.rectangle(img, (x1, y1), (x2, y2), _BOX_BGR, 2)
        score = float(box[4]) if np.isfinite(box[4]) else float("nan")
        cv2.putText(img, f"{score:.2f}", (x1 + 2, max(12, y1 - 4)), font, 0.45, _BOX_BGR, 1, cv2.LINE_AA)
        label = f"#{index}"
    else:
        label = f"#{index} no box"
    cv2.rectangle(img, (0, 0), (8 + 9 * len(label), 20), (0, 0, 0), -1)
    cv2.putText(img, label, (4, 15), font, 0.5, (255, 255, 255) if "no box" not in label else _NONE_BGR, 1,
                cv2.LINE_AA)
    return img


def contact_sheet(
    path_or_frames: str | Path | np.ndarray | Sequence[np.ndarray],
    boxes: np.ndarray,
    out_png: str | Path,
    *,
    n: int = 12,
    cols: int = 4,
    thumb_w: int = 320,
    indices: Sequence[int] | None = None,
) -> Path:
    """Write a PNG grid of ``n`` evenly spaced frames with their box, score and frame index.

    ``path_or_frames`` is a video path or all frames of the video (``boxes[i]`` belongs to
    frame ``i``). ``indices`` overrides the evenly spaced choice. Returns the PNG path.
    """
    b = _check_boxes(boxes, str(out_png))
    if cols < 1 or thumb_w < 16:
        raise ValueError(f"contact sheet needs cols >= 1 and thumb_w >= 16, got cols={cols} thumb_w={thumb_w}")
    if isinstance(path_or_frames, (str, Path)):
        total = len(b) if len(b) else probe(path_or_frames).num_frames
        idx = list(indices) if indices is not None else sheet_indices(total, n)
        frames = list(read_frames(path_or_frames, idx)) if idx else []
    else:
        total = len(path_or_frames)
        idx = list(indices) if indices is not None else sheet_indices(total, n)
        for i in idx:
            if not 0 <= i < total:
                raise ValueError(f"contact sheet frame index {i} is outside 0..{total - 1}")
        frames = [np.asarray(path_or_frames[i]) for i in idx]
    rows_b = [b[i] if i < len(b) else None for i in idx]
    return _render_sheet(frames, rows_b, idx, Path(out_png), cols=cols, thumb_w=thumb_w)


def _render_sheet(
    frames: Sequence[np.ndarray], boxes: Sequence[np.ndarray | None], labels: Sequence[int], out: Path,
    *, cols: int, thumb_w: int,
) -> Path:
    if not frames:
        raise ValueError(f"no frames to draw for contact sheet {out}")
    thumbs = [_thumb(f, bx, i, thumb_w) for f, bx, i in zip(frames, boxes, labels)]
    th = max(t.shape[0] for t in thumbs)
    cols = min(cols, len(thumbs))
    rows = math.ceil(len(thumbs) / cols)
    gap = 4
    sheet = np.full((rows * th + (rows + 1) * gap, cols * thumb_w + (cols + 1) * gap, 3), 40, np.uint8)
    for k, t in enumerate(thumbs):
        r, c = divmod(k, cols)
        y, x = gap + r * (th + gap), gap + c * (thumb_w + gap)
        sheet[y:y + t.shape[0], x:x + thumb_w] = t
    ok, buf = cv2.imencode(".png", sheet)
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {out}")
    write_bytes(out, buf.tobytes())
    return out


def write_boxes_csv(boxes: np.ndarray, out_csv: str | Path) -> Path:
    """Write ``frame,x1,y1,x2,y2,score`` rows; a NaN row has empty fields after the frame."""
    b = _check_boxes(boxes, str(out_csv))
    s = io.StringIO()
    w = csv.writer(s, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for i, row in enumerate(b):
        if np.isfinite(row[:4]).all():
            w.writerow([i, *(f"{float(v):.2f}" for v in row[:4]), f"{float(row[4]):.4f}"])
        else:
            w.writerow([i, "", "", "", "", ""])
    out = Path(out_csv)
    write_bytes(out, s.getvalue().encode())
    return out


def read_boxes_csv(path: str | Path) -> np.ndarray:
    """Read a boxes CSV written by :func:`write_boxes_csv` into a float32 (N, 5) array."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"boxes CSV {p} does not exist")
    with p.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip() for c in rows[0]] != CSV_HEADER:
        raise ValueError(f"{p}: first line must be {','.join(CSV_HEADER)}")
    out = np.full((len(rows) - 1, 5), np.nan, np.float32)
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 6:
            raise ValueError(f"{p} line {line}: expected 6 fields, got {len(row)}")
        try:
            frame = int(row[0])
            vals = [float(v) if v.strip() else np.nan for v in row[1:]]
        except ValueError as e:
            raise ValueError(f"{p} line {line}: {e}") from e
        if frame != line - 2:
            raise ValueError(f"{p} line {line}: frame {frame}, expected {line - 2} (rows must be 0, 1, 2, ...)")
        coords = np.isfinite(vals[:4])
        if coords.any() and not coords.all():
            raise ValueError(f"{p} line {line}: frame {frame} has some coordinates empty; give all four or none")
        out[frame] = vals
    return out


def _tee(path: Path, keep: set[int], stash: dict[int, np.ndarray]) -> Iterator[np.ndarray]:
    for i, frame in iter_frames(path):
        if i in keep:
            stash[i] = frame
        yield frame


def boxes_for_videos(
    videos: Sequence[Path], out_dir: Path, detector: str = "background", *, sheet_n: int = 12
) -> list[dict]:
    """Detect boxes in each video; write ``<stem>.boxes.csv`` and ``<stem>.boxes.png`` under ``out_dir``.

    Returns one summary dict per video: ``video``, ``frames``, ``detected_fraction``,
    ``boxes_csv``, ``contact_sheet``, ``error`` (None on success, else the reason).
    """
    paths = [Path(v) for v in videos]
    stems: dict[str, Path] = {}
    for p in paths:
        if p.stem in stems and stems[p.stem] != p:
            raise ValueError(f"videos {stems[p.stem]} and {p} share the name {p.stem!r}; outputs would collide")
        stems[p.stem] = p
    det = make_detector(detector)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    for p in paths:
        res: dict = {"video": str(p), "frames": 0, "detected_fraction": 0.0,
                     "boxes_csv": None, "contact_sheet": None, "error": None}
        try:
            info = probe(p)
            idx = set(sheet_indices(info.num_frames, sheet_n))
            stash: dict[int, np.ndarray] = {}
            boxes = det.detect(_tee(p, idx, stash), num_frames=info.num_frames)
            if len(boxes) == 0:
                raise VideoReadError(f"video {p} decoded no frames")
            csv_path = write_boxes_csv(boxes, out_dir / f"{p.stem}.boxes.csv")
            got = sorted(i for i in stash if i < len(boxes))
            png = _render_sheet([stash[i] for i in got], [boxes[i] for i in got], got,
                                out_dir / f"{p.stem}.boxes.png", cols=4, thumb_w=320)
            res.update(frames=int(len(boxes)), detected_fraction=float(np.isfinite(boxes[:, 0]).mean()),
                       boxes_csv=str(csv_path), contact_sheet=str(png))
            logger.info("%s: %d frames, %.1f%% with a box", p.name, len(boxes), 100 * res["detected_fraction"])
        except (VideoReadError, ValueError, OSError) as e:
            res["error"] = f"{p.name}: {e}"
            logger.warning("boxes failed for %s: %s", p, e)
        results.append(res)
    return results
