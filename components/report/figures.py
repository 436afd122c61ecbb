"""Report figures: class colours, ethograms, the confusion matrix and count-agreement panels.

Class colours are fixed by class order (:func:`class_colors`) so every figure agrees."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from mvd.atomic import write_bytes  # noqa: E402

from .files import _check_fps, _check_probs, _frame_labels  # noqa: E402

IDLE_COLOR = "#d9d9d9"
# Action classes take these in class order (idle skipped); repeats after ten classes.
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
           "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79"]
_MAX_CURVE_POINTS = 4000
_DPI = 100


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


def _png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


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
    return write_bytes(out_png, _png_bytes(fig))


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
    return write_bytes(out_png, _png_bytes(_confusion_figure(confusion, labels)))


# --------------------------------------------------------------------------- counts


def _fmt2(v: Any, nd: int = 2) -> str:
    return "—" if v is None else f"{v:.{nd}f}"


def _identity(ax, values: np.ndarray) -> None:
    hi = float(values.max()) if values.size else 1.0
    hi = max(hi, 1.0) * 1.08
    ax.plot([0, hi], [0, hi], color="#777777", linewidth=0.8, linestyle="--", zorder=1)
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_aspect("equal", adjustable="box")


def agreement_figure(name: str, per_video: Sequence[Mapping[str, Any]], summary: Mapping[str, Any],
                     color: str) -> Figure:
    """The three panels for class ``name``; ``per_video`` rows hold true/pred counts and durations,
    ``summary`` the class's :func:`mvd.metrics.count_metrics` entry."""
    tc = np.array([r["true_count"] for r in per_video], dtype=float)
    pc = np.array([r["pred_count"] for r in per_video], dtype=float)
    td = np.array([r["true_duration_s"] for r in per_video], dtype=float)
    pd = np.array([r["pred_duration_s"] for r in per_video], dtype=float)
    ca, da = summary["count_agreement"], summary["duration_agreement"]
    fig = Figure(figsize=(13, 4.1), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    jitter = np.random.default_rng(0).uniform(-0.12, 0.12, size=tc.size) if tc.size else tc
    ax1.scatter(tc + jitter, pc, s=28, color=color, edgecolor="white", linewidth=0.5, zorder=2)
    _identity(ax1, np.concatenate([tc, pc]))
    ax1.set_xlabel("true count per video")
    ax1.set_ylabel("predicted count per video")
    ax1.set_title(f"counts: r {_fmt2(ca['pearson_r'])}, ICC {_fmt2(ca['icc'])}", fontsize=10)

    mean, diff = (tc + pc) / 2, pc - tc
    ax2.scatter(mean, diff, s=28, color=color, edgecolor="white", linewidth=0.5, zorder=2)
    ax2.axhline(0, color="#777777", linewidth=0.8, linestyle="--")
    if ca["bias"] is not None:
        ax2.axhline(ca["bias"], color=color, linewidth=1.2)
    for key in ("loa_low", "loa_high"):
        if ca[key] is not None:
            ax2.axhline(ca[key], color=color, linewidth=0.8, linestyle=":")
    ax2.set_xlabel("mean of true and predicted count")
    ax2.set_ylabel("predicted − true")
    ax2.set_title(f"Bland–Altman: bias {_fmt2(ca['bias'])} "
                  f"[{_fmt2(ca['loa_low'])}, {_fmt2(ca['loa_high'])}]", fontsize=10)

    ax3.scatter(td, pd, s=28, color=color, edgecolor="white", linewidth=0.5, zorder=2)
    _identity(ax3, np.concatenate([td, pd]))
    ax3.set_xlabel("true total duration per video (s)")
    ax3.set_ylabel("predicted total duration (s)")
    ax3.set_title(f"durations: r {_fmt2(da['pearson_r'])}, ICC {_fmt2(da['icc'])}", fontsize=10)
    for ax in (ax1, ax2, ax3):
        ax.grid(color="#999999", alpha=0.3, linewidth=0.5)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    err = summary.get("count_total_error")
    fig.suptitle(f"{name}".replace("$", r"\$") + f" — {int(pc.sum())} predicted / {int(tc.sum())} true bouts "
                 f"over {tc.size} videos (total count error {'—' if err is None else f'{100 * err:.1f}%'}, "
                 f"MAE per video {_fmt2(summary.get('count_mae'))})", x=0.01, ha="left", fontsize=11)
    return fig
