"""Count-agreement figures: per action class, predicted against true bouts per video.

Three panels, as HTR and grooming validation papers report counts: predicted vs true count per
video with the identity line (Pearson r, ICC(A,1)); a Bland–Altman plot of the count differences
(bias and 95% limits of agreement); predicted vs true total bout duration per video.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def _fmt(v: Any, nd: int = 2) -> str:
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
    ax1.set_title(f"counts: r {_fmt(ca['pearson_r'])}, ICC {_fmt(ca['icc'])}", fontsize=10)

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
    ax2.set_title(f"Bland–Altman: bias {_fmt(ca['bias'])} "
                  f"[{_fmt(ca['loa_low'])}, {_fmt(ca['loa_high'])}]", fontsize=10)

    ax3.scatter(td, pd, s=28, color=color, edgecolor="white", linewidth=0.5, zorder=2)
    _identity(ax3, np.concatenate([td, pd]))
    ax3.set_xlabel("true total duration per video (s)")
    ax3.set_ylabel("predicted total duration (s)")
    ax3.set_title(f"durations: r {_fmt(da['pearson_r'])}, ICC {_fmt(da['icc'])}", fontsize=10)
    for ax in (ax1, ax2, ax3):
        ax.grid(color="#999999", alpha=0.3, linewidth=0.5)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    err = summary.get("count_total_error")
    fig.suptitle(f"{name}".replace("$", r"\$") + f" — {int(pc.sum())} predicted / {int(tc.sum())} true bouts "
                 f"over {tc.size} videos (total count error {'—' if err is None else f'{100 * err:.1f}%'}, "
                 f"MAE per video {_fmt(summary.get('count_mae'))})", x=0.01, ha="left", fontsize=11)
    return fig
