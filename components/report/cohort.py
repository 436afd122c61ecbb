"""The cohort report: one self-contained HTML page (PNGs embedded) over the cohort table of
:mod:`components.score` — counts per class by group (points + box), the time course per group, and a
dose–response plot when the metadata has a numeric ``dose`` column."""

import logging
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from mvd.atomic import write_bytes

from .figures import _plain, _png_bytes, class_colors
from .page import _CSS, _e, _fmt, _img, _table

logger = logging.getLogger(__name__)

GROUP_COLUMN = "group"
DOSE_COLUMN = "dose"


def _column(columns: Sequence[str], name: str) -> str | None:
    return next((c for c in columns if c.lower() == name), None)


def _number(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _groups(rows: Sequence[Mapping[str, Any]], col: str | None) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        out.setdefault(str(r.get(col) or "—") if col else "all videos", []).append(r)
    return out


def counts_by_group_figure(rows, actions: list[str], colors: list[str], group_col: str | None) -> Figure:
    """Per action class: each video's bout count as a point over a box per group."""
    groups = _groups(rows, group_col)
    fig = Figure(figsize=(4.2 * max(1, len(actions)), 3.6), layout="constrained")
    rng = np.random.default_rng(0)
    for i, name in enumerate(actions):
        ax = fig.add_subplot(1, max(1, len(actions)), i + 1)
        data = [[float(r[f"{name}_count"]) for r in g] for g in groups.values()]
        ax.boxplot(data, widths=0.5, showfliers=False, medianprops={"color": "black"})
        for k, vals in enumerate(data, start=1):
            ax.scatter(k + rng.uniform(-0.12, 0.12, len(vals)), vals, s=18, color=colors[i], alpha=0.8, zorder=3)
        ax.set_xticks(range(1, len(groups) + 1), [_plain(g) for g in groups], rotation=30, ha="right")
        ax.set_title(_plain(name))
        ax.set_ylabel("bouts per video")
    return fig


def time_course_figure(rows, actions: list[str], bins: list[str], bin_s: float, group_col: str | None) -> Figure:
    """Per action class: mean bouts per time bin and group, ± standard error."""
    groups = _groups(rows, group_col)
    fig = Figure(figsize=(4.2 * max(1, len(actions)), 3.6), layout="constrained")
    mid = (np.arange(len(bins)) + 0.5) * bin_s / 60.0
    for i, name in enumerate(actions):
        ax = fig.add_subplot(1, max(1, len(actions)), i + 1)
        for g, members in groups.items():
            m, se = [], []
            for b in bins:
                vals = [v for v in (_number(r.get(f"{name}_count_{b}")) for r in members) if v is not None]
                m.append(np.mean(vals) if vals else np.nan)
                se.append(np.std(vals, ddof=1) / np.sqrt(len(vals)) if len(vals) > 1 else 0.0)
            ax.errorbar(mid, m, yerr=se, marker="o", ms=4, capsize=3, label=_plain(g))
        ax.set_title(_plain(name))
        ax.set_xlabel(f"time (min, bins of {bin_s / 60:g} min)")
        ax.set_ylabel("bouts per bin")
        ax.legend(fontsize=8)
    return fig


def dose_response_figure(rows, actions: list[str], colors: list[str], dose_col: str) -> Figure:
    """Per action class: bout count against dose, each video a point, the mean per dose a line."""
    fig = Figure(figsize=(4.2 * max(1, len(actions)), 3.6), layout="constrained")
    doses = np.array([_number(r[dose_col]) for r in rows], dtype=float)
    for i, name in enumerate(actions):
        ax = fig.add_subplot(1, max(1, len(actions)), i + 1)
        y = np.array([float(r[f"{name}_count"]) for r in rows])
        ax.scatter(doses, y, s=18, color=colors[i], alpha=0.8)
        levels = np.unique(doses)
        ax.plot(levels, [y[doses == d].mean() for d in levels], color="black", marker="_", ms=14)
        ax.set_title(_plain(name))
        ax.set_xlabel(_plain(dose_col))
        ax.set_ylabel("bouts per video")
    return fig


def write_cohort_report(out_html: str | os.PathLike, header: list[str], rows: list[dict[str, Any]],
                        summary: Mapping[str, Any], *, labels: list[str], idle: int | None,
                        metadata_columns: list[str], bin_s: float) -> Path:
    """Write the cohort report (atomically); returns its path."""
    actions = [n for k, n in enumerate(labels) if k != idle]
    colors = [c for k, c in enumerate(class_colors(labels, idle)) if k != idle]
    scored = [r for r in rows if r.get("status") == "scored"]
    group_col = _column(metadata_columns, GROUP_COLUMN)
    dose_col = _column(metadata_columns, DOSE_COLUMN)
    bins = [h[len(f"{actions[0]}_count_"):] for h in header if actions and h.startswith(f"{actions[0]}_count_")]
    model = summary.get("model", {})
    what = (f"{model.get('name')} version {model.get('version')}" if model.get("version")
            else str(model.get("uri", "")))
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>Cohort report</title><style>{_CSS}</style></head><body>", "<h1>Cohort report</h1>",
             f'<p class="note">Generated {_e(datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))} with model '
             f"{_e(what)} (weights sha256 {_e(str(summary.get('weights_sha256', ''))[:12])}). "
             f"{summary.get('scored', 0)} of {summary.get('videos', 0)} videos scored"
             f"{', ' + str(summary.get('cached')) + ' from the cache' if summary.get('cached') else ''}.</p>"]
    if scored and actions:
        parts += ["<h2>Bouts per video by group</h2>",
                  f'<p class="note">Groups from the metadata column {_e(group_col)!s}.</p>' if group_col else
                  '<p class="note">No <code>group</code> column in the metadata: all videos form one group.</p>',
                  _img(_png_bytes(counts_by_group_figure(scored, actions, colors, group_col)), "counts by group")]
        if bins:
            parts += ["<h2>Time course</h2>",
                      _img(_png_bytes(time_course_figure(scored, actions, bins, bin_s, group_col)), "time course")]
        if dose_col and all(_number(r.get(dose_col)) is not None for r in scored):
            parts += ["<h2>Dose–response</h2>",
                      _img(_png_bytes(dose_response_figure(scored, actions, colors, dose_col)), "dose response")]
    failures = summary.get("failures") or []
    if failures:
        parts += ["<h2>Videos not scored</h2>",
                  _table("failures", ["video", "reason"],
                         [f"<tr><td>{_e(f['video'])}</td><td>{_e(f['reason'])}</td></tr>" for f in failures])]
    shown = [h for h in header if h == "output" or h in metadata_columns or h == "status"
             or any(h in (f"{a}_count", f"{a}_duration_s", f"{a}_latency_s") for a in actions)]
    body = ["<tr>" + "".join(f"<td>{_e(r.get(h) if isinstance(r.get(h), str) else _fmt(r.get(h), 2))}</td>"
                             for h in shown) + "</tr>" for r in rows]
    parts += ["<h2>Cohort table</h2>", '<p class="note">All columns, with the time bins, are in cohort.csv.</p>',
              _table("cohort", shown, body), "</body></html>\n"]
    out = write_bytes(out_html, "\n".join(parts).encode("utf-8"))
    logger.info("wrote cohort report %s (%d videos)", out, len(rows))
    return out
