"""Benchmark report: ethogram and confusion-matrix figures, one self-contained HTML page,
and per-frame / per-bout CSV files.

The HTML page is built from the result of :func:`mvd.metrics.evaluate`; its images are
embedded as base64 PNG data URIs, so the single file can be mailed or attached as is.
Class colours are fixed by class order (:func:`class_colors`) so every figure agrees.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .count_figures import agreement_figure  # noqa: E402

__all__ = [
    "IDLE_COLOR",
    "PALETTE",
    "class_colors",
    "ethogram_png",
    "confusion_png",
    "write_report",
    "write_frames_csv",
    "write_bouts_csv",
    "FRAMES_CSV_BASE",
    "BOUTS_CSV_HEADER",
]

logger = logging.getLogger(__name__)

IDLE_COLOR = "#d9d9d9"
# Action classes take these in class order (idle skipped); repeats after ten classes.
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
           "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79"]
FRAMES_CSV_BASE = ["frame", "label"]
BOUTS_CSV_HEADER = ["label", "start_frame", "end_frame", "start_s", "end_s", "duration_s", "score"]
_MAX_CURVE_POINTS = 4000
_DPI = 100


# --------------------------------------------------------------------------- helpers


def class_colors(labels: Sequence[str], idle: int | None = 0) -> list[str]:
    """One hex colour per class: idle light grey, action classes from :data:`PALETTE` in order."""
    out, k = [], 0
    for c in range(len(labels)):
        if c == idle:
            out.append(IDLE_COLOR)
        else:
            out.append(PALETTE[k % len(PALETTE)])
            k += 1
    return out


def _plain(text: Any) -> str:
    """Text shown literally by matplotlib (a "$" would otherwise start mathtext)."""
    return str(text).replace("$", r"\$")


def _atomic_write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _atomic_write_csv(path: Path, header: list[str], rows: Sequence[Sequence[Any]]) -> Path:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return _atomic_write_bytes(Path(path), buf.getvalue().encode("utf-8"))


def _png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


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


def _runs(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of equal labels: (start, length, label) arrays."""
    if lab.size == 0:
        return (np.zeros(0, np.int64),) * 3
    change = np.flatnonzero(lab[1:] != lab[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [lab.size]))
    return starts, ends - starts, lab[starts]


def _curve(y: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Time and value of a probability curve; long curves become per-bin maxima so that
    one-frame peaks stay visible."""
    n = y.size
    if n <= _MAX_CURVE_POINTS:
        return np.arange(n) / fps, y
    per = int(np.ceil(n / _MAX_CURVE_POINTS))
    pad = (-n) % per
    yy = np.concatenate((y, np.full(pad, -np.inf))).reshape(-1, per).max(axis=1)
    t = (np.arange(yy.size) * per + per / 2.0) / fps
    return t, yy


# --------------------------------------------------------------------------- figures


def _ethogram_figure(
    labels: Sequence[str],
    fps: float,
    pred_labels: np.ndarray,
    true_labels: np.ndarray | None,
    probs: np.ndarray | None,
    title: str,
    idle: int | None,
) -> Figure:
    names = [str(x) for x in labels]
    c = len(names)
    if c == 0:
        raise ValueError("labels is empty; pass the model's class names")
    fps = _check_fps(fps, "ethogram")
    pred = _frame_labels(pred_labels, c, "pred_labels")
    n = pred.size
    truth = None
    if true_labels is not None:
        truth = _frame_labels(true_labels, c, "true_labels")
        if truth.size != n:
            raise ValueError(f"true_labels has {truth.size} frames but pred_labels has {n}")
    p = None if probs is None else _check_probs(probs, n, c, "probs")
    colors = class_colors(names, idle)
    duration = n / fps

    rows = ([("truth", truth)] if truth is not None else []) + [("prediction", pred)]
    fig = Figure(figsize=(14, 1.1 + 0.55 * len(rows) + (1.6 if p is not None else 0.0)),
                 layout="constrained")
    if p is not None:
        ax, axp = fig.subplots(2, 1, sharex=True,
                               gridspec_kw={"height_ratios": [0.55 * len(rows), 1.4]})
    else:
        ax, axp = fig.subplots(1, 1), None

    for i, (_, lab) in enumerate(rows):
        y = len(rows) - 1 - i
        starts, lengths, cls = _runs(lab)
        for k in range(c):
            sel = cls == k
            if not sel.any():
                continue
            xr = np.stack((starts[sel] / fps, lengths[sel] / fps), axis=1)
            if k == idle:
                ax.broken_barh(xr, (y - 0.4, 0.8), facecolors=colors[k], linewidth=0, zorder=1)
            else:  # a thin edge keeps one-frame events at least a pixel wide
                ax.broken_barh(xr, (y - 0.4, 0.8), facecolors=colors[k], edgecolors=colors[k],
                               linewidth=0.6, zorder=2)
    ax.set_yticks(range(len(rows)), [r[0] for r in reversed(rows)])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlim(0, max(duration, 1.0 / fps))
    ax.xaxis.set_major_locator(MaxNLocator(nbins=20))
    ax.grid(axis="x", color="#999999", alpha=0.35, linewidth=0.5, zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

    handles = [Patch(facecolor=colors[k], edgecolor="none", label=_plain(names[k])) for k in range(c)]
    fig.legend(handles=handles, loc="outside upper right", ncol=c, frameon=False, fontsize=9)
    head = title or "ethogram"
    fig.suptitle(_plain(f"{head}  ({n} frames, {duration:.1f} s at {fps:g} fps)"),
                 x=0.01, ha="left", fontsize=11)

    if axp is not None:
        for k in range(c):
            if k == idle:
                continue
            t, yv = _curve(p[:, k], fps)
            axp.plot(t, yv, color=colors[k], linewidth=0.8)
        axp.set_ylim(-0.02, 1.02)
        axp.set_ylabel("probability", fontsize=9)
        axp.grid(axis="x", color="#999999", alpha=0.35, linewidth=0.5)
        for side in ("top", "right"):
            axp.spines[side].set_visible(False)
        axp.set_xlabel("time (s)")
    else:
        ax.set_xlabel("time (s)")
    return fig


def ethogram_png(
    out_png: str | os.PathLike,
    *,
    labels: list[str],
    fps: float,
    pred_labels: np.ndarray,
    true_labels: np.ndarray | None = None,
    probs: np.ndarray | None = None,
    title: str = "",
    idle: int | None = 0,
) -> Path:
    """Timeline PNG: a "truth" row (if given) over a "prediction" row of coloured class
    runs against time in seconds, idle light grey, and with ``probs`` (N, C) a panel of the
    action-class probability curves below. Written atomically; returns the path."""
    fig = _ethogram_figure(labels, fps, pred_labels, true_labels, probs, title, idle)
    return _atomic_write_bytes(Path(out_png), _png_bytes(fig))


def _confusion_figure(confusion: Sequence[Sequence[int]], labels: Sequence[str]) -> Figure:
    names = [str(x) for x in labels]
    m = np.asarray(confusion, dtype=np.int64)
    c = len(names)
    if m.shape != (c, c):
        raise ValueError(f"confusion has shape {m.shape}; expected ({c}, {c}) for labels {names}")
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros(m.shape, dtype=np.float64), where=rows > 0)
    side = 1.5 * c + 2.5
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(c):
        for j in range(c):
            pct = f"{100 * frac[i, j]:.1f}%" if rows[i, 0] else "—"
            ax.text(j, i, f"{m[i, j]:,}\n{pct}", ha="center", va="center", fontsize=10,
                    color="white" if frac[i, j] > 0.55 else "black")
    ticks = [_plain(x) for x in names]
    ax.set_xticks(range(c), ticks, rotation=25, ha="right")
    ax.set_yticks(range(c), ticks)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("frames: count and % of the true class (row)", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of true-class frames")
    return fig


def confusion_png(out_png: str | os.PathLike, confusion: list[list[int]],
                  labels: Sequence[str]) -> Path:
    """Heatmap of a frame confusion matrix (rows = truth, columns = prediction), each cell
    annotated with its count and its row-normalised percentage. Written atomically."""
    return _atomic_write_bytes(Path(out_png), _png_bytes(_confusion_figure(confusion, labels)))


# --------------------------------------------------------------------------- CSV


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


# --------------------------------------------------------------------------- HTML


def _fmt(x: Any, nd: int = 3) -> str:
    """Report number format: ``None``/NaN -> "—", ints as is, floats with ``nd`` decimals."""
    if x is None:
        return "—"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    return "—" if not np.isfinite(x) else f"{x:.{nd}f}"


def _pct(x: Any) -> str:
    return "—" if x is None else f"{100 * float(x):.1f}%"


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def _table(table_id: str, header: list[str], rows: list[str], caption: str = "") -> str:
    cap = f"<caption>{_e(caption)}</caption>" if caption else ""
    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in header)
    return (f'<table id="{_e(table_id)}">{cap}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _row(cells: list[str], head: str | None, cls: str = "", rowspan: int = 1) -> str:
    """A table row: ``head`` is the row header (escaped), ``cells`` are escaped values."""
    attr = f' class="{cls}"' if cls else ""
    span = f' rowspan="{rowspan}"' if rowspan > 1 else ""
    th = f'<th scope="row"{span}>{_e(head)}</th>' if head is not None else ""
    return f"<tr{attr}>{th}{''.join(f'<td>{_e(c)}</td>' for c in cells)}</tr>"


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1300px;
color:#222;line-height:1.45;padding:0 1em}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.92em}
th,td{border:1px solid #ccc;padding:.3em .7em;text-align:right}
th[scope=row]{text-align:left;background:#fafafa}thead th{background:#eef2f7}
caption{text-align:left;font-weight:600;padding:.3em 0}
tr.idle-row td,tr.idle-row th{color:#777;font-style:italic}
tr.avg-row td,tr.avg-row th{font-weight:600;background:#f4f7fb}
.cards{display:flex;flex-wrap:wrap;gap:1em;margin:1em 0}
.card{border:1px solid #ccd;border-radius:6px;padding:.6em 1em;min-width:10em;background:#f8fafc}
.card .v{font-size:1.8em;font-weight:600}.card .k{color:#555;font-size:.9em}
.note{color:#555;font-size:.92em}img{max-width:100%;border:1px solid #eee}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;white-space:pre-wrap}
dl.info{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}
dl.info dt{font-weight:600}dl.info dd{margin:0}
"""


def _info_value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    if isinstance(v, Mapping):
        return json.dumps(v, sort_keys=True, default=str)
    return str(v)


def _model_section(result: Mapping[str, Any], model_info: Mapping[str, Any] | None,
                   generated: str) -> str:
    info: dict[str, Any] = dict(model_info or {})
    info.setdefault("labels", result["labels"])
    first = ["arch", "labels", "data_version", "date"]
    keys = [k for k in first if k in info] + [k for k in info if k not in first]
    items = "".join(f"<dt>{_e(k.replace('_', ' '))}</dt><dd>{_e(_info_value(info[k]))}</dd>"
                    for k in keys)
    items += f"<dt>report generated</dt><dd>{_e(generated)}</dd>"
    return f'<h2>Model</h2><dl class="info">{items}</dl>'


def _how_to_read(result: Mapping[str, Any], num_frames: int, duration_s: float) -> str:
    ev = result["events"]
    crits = ", ".join(c for c in ev["criteria"] if c != "hit")
    post = result.get("postprocess") or {}
    parts = [
        f"{len(result['video_names'])} test videos, {num_frames:,} frames ({duration_s / 60:.1f} min) "
        "were labelled frame by frame by the model and compared with the annotation.",
        "<b>Frame</b> scores ask “is each frame labelled right?”: precision = of the frames "
        "the model gave a class, the share that truly are that class; recall = of the true "
        "frames of a class, the share the model found; F1 is their harmonic mean. Frames are "
        "pooled over all videos. The idle class is listed but left out of the macro (plain "
        "mean over action classes) and weighted (by true frames) averages.",
        "<b>Event</b> scores count behaviour bouts (runs of one class) instead of frames. "
        f"A predicted bout matches a true one by temporal overlap ({_e(crits)}: intersection "
        "over union at least that value) or, for short events such as twitches, by "
        f"<b>hit</b>: the bouts overlap or their centres are within {ev['hit_tolerance_s']:g} s. "
        "Each true bout can be matched once. AP ranks predicted bouts by their mean probability.",
        "<b>Counts</b> compare the number of true and predicted bouts per video; for twitches "
        "this is the head-twitch count. Count error = predicted − true; the total count error is "
        "|Σ predicted − Σ true| / Σ true over all videos; ICC is ICC(A,1) (absolute agreement) of the "
        "per-video counts; Bland–Altman bias is the mean of predicted − true, with 95% limits.",
        "“—” means undefined (e.g. a class that neither occurs nor is predicted).",
    ]
    out = "<h2>How to read this</h2>" + "".join(f'<p class="note">{p}</p>' for p in parts)
    return out + _postprocess_section(post)


def _postprocess_section(post: Mapping[str, Any]) -> str:
    """The post-processing rules the labels were made with (the model card's)."""
    classes = post.get("classes") or {}
    if not classes:
        return ""
    if post.get("decision") == "argmax":
        text = ("Labels are the most probable class per frame, kept when its probability reaches the class "
                "threshold; bouts shorter than the minimum duration become idle (the rules of a model made "
                "before rules were fitted).")
    else:
        text = ("Labels come from each class's probability: smoothed over the smoothing window, a frame is the "
                "class when it reaches the threshold (the most probable passing class wins, else idle); idle "
                "gaps up to the merge gap inside a bout are filled; bouts shorter than the minimum duration "
                "become idle. <i>fitted</i> rules were chosen on the validation videos (never the test "
                "videos); <i>config</i> values were pinned in the configuration.")
    rows = [_row([_fmt(r.get("threshold"), 2), _fmt(r.get("smooth_s"), 3), _fmt(r.get("min_duration_s"), 3),
                  _fmt(r.get("merge_gap_s"), 3), r.get("source", "")], name) for name, r in classes.items()]
    table = _table("postprocess-table", ["class", "threshold", "smoothing (s)", "min duration (s)",
                                         "merge gap (s)", "source"], rows, "Post-processing rules")
    return f'<p class="note">{text}</p>' + table


def _headline(result: Mapping[str, Any]) -> str:
    frame, ev, counts = result["frame"], result["events"], result["counts"]
    cards = [(f"{name} bouts predicted / true", f"{counts['per_class'][name]['pred_count']} / "
                                                 f"{counts['per_class'][name]['true_count']}")
             for name in ev["action_labels"]]
    cards += [
        ("frame macro-F1 (action classes)", _fmt(frame["macro"]["f1"])),
        ("frame weighted-F1", _fmt(frame["weighted"]["f1"])),
        ("frame accuracy (all classes)", _fmt(frame["accuracy"])),
    ]
    html_cards = "".join(f'<div class="card"><div class="v">{_e(v)}</div>'
                         f'<div class="k">{_e(k)}</div></div>' for k, v in cards)
    rows = []
    for name in ev["action_labels"]:
        e, cnt = ev["per_class"][name], counts["per_class"][name]
        ca = cnt["count_agreement"]
        rows.append(_row([_fmt(cnt["true_count"]), _fmt(cnt["pred_count"]), _pct(cnt["count_total_error"]),
                          _fmt(cnt["count_mae"], 2), _fmt(ca["icc"], 2), _fmt(ca["pearson_r"], 2),
                          f"{_fmt(ca['bias'], 2)} [{_fmt(ca['loa_low'], 2)}, {_fmt(ca['loa_high'], 2)}]",
                          _fmt(e["hit"]["precision"]), _fmt(e["hit"]["recall"]), _fmt(e["hit"]["f1"]),
                          _fmt(frame["per_class"][name]["f1"])], name))
    table = _table("headline-table",
                   ["class", "true bouts", "predicted bouts", "total count error", "count MAE per video",
                    "count ICC", "count r", "Bland–Altman bias [95% limits]", "event precision (hit)",
                    "event recall (hit)", "event F1 (hit)", "frame F1"],
                   rows, "Counts and events per action class (all test videos)")
    return f"<h2>Headline numbers</h2><div class=\"cards\">{html_cards}</div>{table}"


def _frame_section(result: Mapping[str, Any]) -> str:
    frame = result["frame"]
    pc = frame["per_class"]
    header = ["class", "precision", "recall", "F1", "support (frames)", "predicted (frames)", "note"]

    def cells(d: Mapping[str, Any], note: str) -> list[str]:
        return [_fmt(d["precision"]), _fmt(d["recall"]), _fmt(d["f1"]),
                _fmt(d["support"]), _fmt(d["predicted"]), note]

    rows = [_row(cells(pc[n], ""), n) for n in frame["action_labels"]]
    rows += [_row(cells(pc[n], "idle: not in the averages"), n, "idle-row")
             for n in frame["labels"] if pc[n]["is_idle"]]
    n_act = sum(pc[n]["support"] for n in frame["action_labels"])
    for key, head, note in (("macro", "macro (action classes)", "mean over action classes"),
                            ("weighted", "weighted (action classes)", "weighted by support")):
        d = frame[key]
        rows.append(_row([_fmt(d["precision"]), _fmt(d["recall"]), _fmt(d["f1"]),
                          _fmt(n_act), "", note], head, "avg-row"))
    return "<h2>Frames per class</h2>" + _table("frame-table", header, rows)


def _event_section(result: Mapping[str, Any]) -> str:
    ev = result["events"]
    crits = ev["criteria"]
    header = ["class", "criterion", "true events", "predicted events", "TP", "FP", "FN",
              "precision", "recall", "F1", "AP"]
    rows = []
    for name in ev["action_labels"]:
        e = ev["per_class"][name]
        for i, crit in enumerate(crits):
            m = e[crit]
            vals = [crit, _fmt(e["num_true"]), _fmt(e["num_pred"]), _fmt(m["tp"]), _fmt(m["fp"]),
                    _fmt(m["fn"]), _fmt(m["precision"]), _fmt(m["recall"]), _fmt(m["f1"]),
                    _fmt(m["ap"])]
            rows.append(_row(vals, name if i == 0 else None, rowspan=len(crits) if i == 0 else 1))
    for i, crit in enumerate(crits):
        m = ev["macro"][crit]
        rows.append(_row([crit, "", "", "", "", "", _fmt(m["precision"]), _fmt(m["recall"]),
                          _fmt(m["f1"]), _fmt(m["ap"])],
                         "macro (action classes)" if i == 0 else None, "avg-row",
                         rowspan=len(crits) if i == 0 else 1))
    return "<h2>Events per class</h2>" + _table("event-table", header, rows)


def _count_section(result: Mapping[str, Any]) -> str:
    counts = result["counts"]
    header = ["video", "class", "true count", "predicted count", "count error (pred − true)",
              "abs count error", "rel count error", "true duration (s)", "predicted duration (s)"]
    rows = []
    for pv in counts["per_video"]:
        names = list(pv["per_class"])
        for i, name in enumerate(names):
            d = pv["per_class"][name]
            vals = [name, _fmt(d["true_count"]), _fmt(d["pred_count"]),
                    f"{d['count_error']:+d}", _fmt(d["count_abs_error"]), _pct(d["count_rel_error"]),
                    _fmt(d["true_duration_s"], 2), _fmt(d["pred_duration_s"], 2)]
            rows.append(_row(vals, pv["video"] if i == 0 else None,
                             rowspan=len(names) if i == 0 else 1))
    t1 = _table("count-table", header, rows, "Per video")
    rows = []
    for name, d in counts["per_class"].items():
        rows.append(_row([_fmt(d["true_count"]), _fmt(d["pred_count"]),
                          _pct(d["count_total_error"]), _fmt(d["count_mae"], 2),
                          _pct(d["count_mean_rel_error"]), _fmt(d["true_duration_s"], 2),
                          _fmt(d["pred_duration_s"], 2)], name))
    t2 = _table("count-summary-table",
                ["class", "true count", "predicted count", "total count error", "count MAE per video",
                 "mean rel count error", "true duration (s)", "predicted duration (s)"],
                rows, "All videos")
    figs = []
    colors = class_colors(result["labels"], next((i for i, n in enumerate(result["labels"])
                                                  if result["frame"]["per_class"][n]["is_idle"]), None))
    for name, d in counts["per_class"].items():
        rows = [pv["per_class"][name] for pv in counts["per_video"]]
        fig = agreement_figure(name, rows, d, colors[result["labels"].index(name)])
        figs.append(_img(_png_bytes(fig), f"count agreement of {name}"))
    note = ('<p class="note">Per action class: predicted against true bout count per video (the dashed line is '
            "perfect agreement), the Bland–Altman plot of the count differences (solid: bias; dotted: 95% "
            "limits of agreement) and predicted against true total duration per video.</p>")
    return "<h2>Event counts</h2>" + note + "".join(figs) + t1 + t2


def _left_out_section(left_out: Sequence[Mapping[str, str]]) -> str:
    if not left_out:
        return ""
    rows = [_row([d["stage"], d["reason"]], d["video"]) for d in left_out]
    return ("<h2>Videos left out</h2><p class=\"note\">These videos are in the source but in no figure above.</p>"
            + _table("left-out-table", ["video", "stage", "reason"], rows))


def write_report(
    out_html: str | os.PathLike,
    result: dict,
    *,
    probs: list[np.ndarray],
    true_labels: list[np.ndarray],
    fps: list[float],
    title: str,
    model_info: dict | None = None,
    extra_sections: dict[str, str] | None = None,
) -> Path:
    """One self-contained HTML benchmark report from ``mvd.metrics.evaluate(...)`` output.

    ``probs``, ``true_labels`` and ``fps`` are per video, in ``result["video_names"]`` order
    (they draw the ethograms). ``model_info`` (e.g. arch, labels, data_version, date) is
    listed as given. ``extra_sections`` {heading: plain text} are appended, escaped, as
    preformatted text. Written atomically; returns the path.
    """
    for key in ("labels", "video_names", "frame", "events", "counts", "pred_labels"):
        if key not in result:
            raise ValueError(f"result lacks key {key!r}; pass the dict returned by "
                             "mvd.metrics.evaluate")
    names = list(result["labels"])
    vids = list(result["video_names"])
    for what, seq in (("probs", probs), ("true_labels", true_labels), ("fps", fps),
                      ("result['pred_labels']", result["pred_labels"])):
        if len(seq) != len(vids):
            raise ValueError(f"{what} has {len(seq)} entries for {len(vids)} videos {vids}")
    pc = result["frame"]["per_class"]
    idle_idx = next((i for i, n in enumerate(names) if pc[n]["is_idle"]), None)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    ethograms = []
    num_frames, total_s = 0, 0.0
    for v, vid in enumerate(vids):
        f = _check_fps(fps[v], f"video {vid!r}")
        pred = np.asarray(result["pred_labels"][v], dtype=np.int64)
        num_frames += pred.size
        total_s += pred.size / f
        try:
            fig = _ethogram_figure(names, f, pred, true_labels[v], probs[v], vid, idle_idx)
        except ValueError as exc:
            raise ValueError(f"video {vid!r}: {exc}") from exc
        ethograms.append(f"<h3>{_e(vid)}</h3>{_img(_png_bytes(fig), f'ethogram of {vid}')}")
    confusion = _img(_png_bytes(_confusion_figure(result["frame"]["confusion"], names)),
                     "frame confusion matrix")

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="note">Benchmark report, generated {_e(generated)}.</p>',
        _model_section(result, model_info, generated),
        _how_to_read(result, num_frames, total_s),
        _headline(result),
        _frame_section(result),
        _event_section(result),
        _count_section(result),
        _left_out_section(result.get("left_out") or []),
        "<h2>Confusion matrix (frames)</h2>",
        '<p class="note">Rows are the annotated class, columns the predicted class; each cell '
        "shows the frame count and its share of the row.</p>",
        confusion,
        "<h2>Ethograms</h2>",
        '<p class="note">Per video: annotation (truth) above the model’s prediction over time; '
        "idle is light grey. The lower panel shows the model’s per-frame probability of each "
        "action class.</p>",
        *ethograms,
    ]
    for heading, text in (extra_sections or {}).items():
        parts.append(f"<h2>{_e(heading)}</h2><pre>{_e(text)}</pre>")
    parts.append("</body></html>\n")
    out = _atomic_write_bytes(Path(out_html), "\n".join(parts).encode("utf-8"))
    logger.info("wrote benchmark report %s (%d videos)", out, len(vids))
    return out
