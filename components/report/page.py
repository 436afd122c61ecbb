"""The benchmark report page: one self-contained HTML file built from :func:`mvd.metrics.evaluate`'s
result; its images are embedded as base64 PNG data URIs, so the file can be mailed or attached as is."""

from __future__ import annotations

import base64
import html
import json
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mvd.atomic import write_bytes

from .figures import (
    _check_fps,
    _confusion_figure,
    _ethogram_figure,
    _png_bytes,
    agreement_figure,
    class_colors,
)

logger = logging.getLogger(__name__)


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


def _how_to_read(result: Mapping[str, Any], num_frames: int, duration_s: float,
                 model_info: Mapping[str, Any] | None = None) -> str:
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
    views = int((model_info or {}).get("test_time_views", 1) or 1)
    sigma = float((model_info or {}).get("stitch_sigma", 0) or 0)
    inference = []  # how the probabilities were made, in the order the computation runs
    if views > 1:
        inference.append(f"Each window was seen in {views} orientations (<b>test time views</b>: the crop as it is, "
                         "flipped" + (" and turned" if views > 2 else "") + "; the model learnt every orientation, as a "
                         "top-view animal may face any way) and its class probabilities are the mean over them; "
                         "<code>mar predict</code> with this model does the same.")
    if sigma > 0:
        inference.append("Windows overlap, so every frame is seen by several; its class probabilities are their mean, "
                         "each window weighed by a Gaussian of the frame's distance from the window's centre "
                         f"(σ = {sigma:g} × the window): a window is surest about the frames it sees with context on "
                         "both sides.")
    parts[1:1] = inference
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
                "gaps up to the merge gap inside a bout are filled; a bout whose probability never reaches the "
                "peak threshold (when one is set above the threshold) becomes idle, as do bouts shorter than the "
                "minimum duration. <i>fitted</i> rules were chosen on the validation videos (never the test "
                "videos) for the class's calibration objective: <i>events</i> (bouts counted and timed: the mean "
                "of the hit-rule F1 and the IoU ≥ 0.5 F1) or <i>counts</i> (the hit-rule F1 alone): among the rules "
                "within one validation event's worth of the best, the one whose count came closest; "
                "<i>config</i> values were pinned in the configuration.")
    def peak(r: Mapping[str, Any]) -> str:
        return _fmt(r["peak_threshold"], 2) if r.get("peak_threshold", 0.0) > r.get("threshold", 0.0) else "–"

    rows = [_row([_fmt(r.get("threshold"), 2), peak(r), _fmt(r.get("smooth_s"), 3), _fmt(r.get("min_duration_s"), 3),
                  _fmt(r.get("merge_gap_s"), 3), r.get("source", "")], name) for name, r in classes.items()]
    table = _table("postprocess-table", ["class", "threshold", "peak threshold", "smoothing (s)", "min duration (s)",
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
        _how_to_read(result, num_frames, total_s, model_info),
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
    out = write_bytes(out_html, "\n".join(parts).encode("utf-8"))
    logger.info("wrote benchmark report %s (%d videos)", out, len(vids))
    return out
