"""Tests for components.report: HTML report, figures and CSV files."""

from __future__ import annotations

import base64
import csv
import re
import time
from html.parser import HTMLParser

import numpy as np
import pytest

from components.report import (
    IDLE_COLOR,
    class_colors,
    confusion_png,
    ethogram_png,
    write_bouts_csv,
    write_frames_csv,
    write_report,
)
from mvd.metrics import evaluate

LABELS = ["idle", "Self-Grooming", "Head/Body TWITCH"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMG_PREFIX = '<img src="data:image/png;base64,'
VOID = {"meta", "img", "br", "hr", "link", "input"}


def _f3(x) -> str:
    return "—" if x is None else f"{x:.3f}"


def _video(rng: np.random.Generator, n: int, spans: list[tuple[int, int, int]]):
    """Truth with the given (label, start, end) spans and noisy probabilities around it."""
    y = np.zeros(n, dtype=np.int64)
    for lab, s, e in spans:
        y[s : e + 1] = lab
    logits = rng.normal(0.0, 1.0, (n, len(LABELS)))
    logits[np.arange(n), y] += 1.5
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


def _evaluate(labels=LABELS, names=("vid_a.mp4", "vid_b.mp4")):
    rng = np.random.default_rng(7)
    videos = [_video(rng, 120, [(1, 10, 40), (2, 60, 62), (2, 90, 91)]),
              _video(rng, 90, [(2, 5, 7), (1, 30, 70)])]
    truth = [v[0] for v in videos]
    probs = [v[1] for v in videos]
    fps = [30.0, 25.0]
    result = evaluate(truth, probs, labels, fps, list(names))
    return result, truth, probs, fps


class _Tables(HTMLParser):
    """Collects tables by id as rows of cell texts and checks tag balance."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.stack: list[str] = []
        self.errors: list[str] = []
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "table":
            self._table = dict(attrs).get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse(text: str) -> _Tables:
    p = _Tables()
    p.feed(text)
    p.close()
    assert not p.errors, p.errors
    assert not p.stack, f"unclosed tags {p.stack}"
    return p


def _row_by_head(rows: list[list[str]], head: str) -> list[str]:
    found = [r for r in rows if r and r[0] == head]
    assert len(found) == 1, f"{head!r} rows: {found}"
    return found[0][1:]


def test_report_html(tmp_path):
    result, truth, probs, fps = _evaluate()
    out = write_report(tmp_path / "sub" / "report.html", result, probs=probs, true_labels=truth,
                       fps=fps, title="Bench <test>",
                       model_info={"arch": "vit_small", "data_version": "v3", "date": "2025-01-02"},
                       extra_sections={"Notes": "x < y & z"})
    assert out.is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]  # no temp left
    text = out.read_text(encoding="utf-8")
    assert text.lstrip().startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "<title>Bench &lt;test&gt;</title>" in text
    assert "vit_small" in text and "v3" in text and "2025-01-02" in text
    assert "x &lt; y &amp; z" in text
    assert "test time views" not in text  # one view: nothing to explain
    for name in LABELS + result["video_names"]:
        assert name in text

    tables = _parse(text).tables
    frame = result["frame"]
    # per-class frame table: numbers formatted with 3 decimals, counts as integers
    rows = tables["frame-table"]
    nontrivial = 0
    for name in LABELS:
        pc = frame["per_class"][name]
        cells = _row_by_head(rows, name)
        assert cells[:5] == [_f3(pc["precision"]), _f3(pc["recall"]), _f3(pc["f1"]),
                             str(pc["support"]), str(pc["predicted"])]
        nontrivial += 0.0 < pc["f1"] < 1.0
    assert nontrivial >= 2, "synthetic data should give imperfect scores"
    assert "idle" in _row_by_head(rows, "idle")[-1]
    assert [r[0] for r in rows][-2:] == ["macro (action classes)", "weighted (action classes)"]
    assert _row_by_head(rows, "macro (action classes)")[:3] == [
        _f3(frame["macro"][m]) for m in ("precision", "recall", "f1")]
    assert _row_by_head(rows, "weighted (action classes)")[:3] == [
        _f3(frame["weighted"][m]) for m in ("precision", "recall", "f1")]

    # event table: rows of one class carry the class only in their first row (rowspan)
    ev_rows, current = {}, None
    for r in tables["event-table"][1:]:
        if r[0] in LABELS or r[0].startswith("macro"):
            current, r = r[0], r[1:]
        ev_rows[(current, r[0])] = r[1:]
    for name in LABELS[1:]:
        e = result["events"]["per_class"][name]
        for crit in ("iou@0.3", "iou@0.5", "iou@0.7", "hit"):
            m = e[crit]
            assert ev_rows[(name, crit)] == [
                str(e["num_true"]), str(e["num_pred"]), str(m["tp"]), str(m["fp"]), str(m["fn"]),
                _f3(m["precision"]), _f3(m["recall"]), _f3(m["f1"]), _f3(m["ap"])]

    # headline: macro F1; per class the counts first, then hit precision/recall/F1 and frame F1
    assert _f3(frame["macro"]["f1"]) in text
    for name in LABELS[1:]:
        hit = result["events"]["per_class"][name]["hit"]
        cnt = result["counts"]["per_class"][name]
        row = _row_by_head(tables["headline-table"], name)
        assert row[:2] == [str(cnt["true_count"]), str(cnt["pred_count"])]
        assert row[7:11] == [_f3(hit["precision"]), _f3(hit["recall"]), _f3(hit["f1"]),
                             _f3(frame["per_class"][name]["f1"])]

    # counts per video and class
    count_rows = [r for r in tables["count-table"][1:]]
    flat = [r[-8:] for r in count_rows]  # class + 7 numbers, video cell dropped
    for pv in result["counts"]["per_video"]:
        for name, d in pv["per_class"].items():
            assert [name, str(d["true_count"]), str(d["pred_count"]),
                    f"{d['count_error']:+d}"] in [r[:4] for r in flat]

    # images: one per video, the confusion matrix and one count-agreement figure per action class, all inline PNG
    assert text.count(IMG_PREFIX) == len(result["video_names"]) + 1 + len(LABELS) - 1
    assert "count agreement of Head/Body TWITCH" in text
    for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text):
        assert base64.b64decode(data)[:8] == PNG_MAGIC
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//|@import|<script|<link", text, re.I)


def test_report_escapes_class_and_video_names(tmp_path):
    labels = ["idle", "a<b", "x&y"]
    result, truth, probs, fps = _evaluate(labels, names=("v<1>.mp4", 'q"2.mp4'))
    text = write_report(tmp_path / "r.html", result, probs=probs, true_labels=truth, fps=fps,
                        title="t").read_text(encoding="utf-8")
    assert "a&lt;b" in text and "x&amp;y" in text and "v&lt;1&gt;.mp4" in text
    assert "a<b" not in text and "v<1>" not in text and 'q"2' not in text
    tables = _parse(text).tables
    assert _row_by_head(tables["frame-table"], "a<b")[0] == _f3(
        result["frame"]["per_class"]["a<b"]["precision"])


def test_report_rejects_mismatched_inputs(tmp_path):
    result, truth, probs, fps = _evaluate()
    with pytest.raises(ValueError, match="probs has 1 entries for 2 videos"):
        write_report(tmp_path / "r.html", result, probs=probs[:1], true_labels=truth, fps=fps,
                     title="t")
    with pytest.raises(ValueError, match="vid_b.mp4"):
        write_report(tmp_path / "r.html", result, probs=probs, true_labels=[truth[0], truth[1][:-1]],
                     fps=fps, title="t")
    assert not (tmp_path / "r.html").exists()


def test_frames_csv_round_trip(tmp_path):
    result, truth, probs, fps = _evaluate()
    pred = np.asarray(result["pred_labels"][0])
    path = write_frames_csv(tmp_path / "frames.csv", pred, probs[0], LABELS)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["frame", "label", "p_idle", "p_Self-Grooming", "p_Head/Body TWITCH"]
    body = rows[1:]
    assert len(body) == len(pred) == 120
    assert [int(r[0]) for r in body] == list(range(120))
    assert [r[1] for r in body] == [LABELS[k] for k in pred]
    got = np.array([[float(x) for x in r[2:]] for r in body])
    assert np.abs(got - probs[0]).max() <= 5e-5 + 1e-12
    assert all(re.fullmatch(r"\d\.\d{4}", x) for r in body[:5] for x in r[2:])
    with pytest.raises(ValueError, match="shape"):
        write_frames_csv(tmp_path / "bad.csv", pred, probs[0][:-1], LABELS)


def test_bouts_csv(tmp_path):
    fps = 30.0
    bouts = [{"label": 2, "name": "Head/Body TWITCH", "start": 10, "end": 10, "score": 0.91234},
             {"label": 1, "name": "Self-Grooming", "start": 20, "end": 49, "score": 0.5}]
    path = write_bouts_csv(tmp_path / "bouts.csv", bouts, fps)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with path.open(encoding="utf-8") as f:
        assert f.readline().strip() == "label,start_frame,end_frame,start_s,end_s,duration_s,score"
    assert [r["label"] for r in rows] == ["Head/Body TWITCH", "Self-Grooming"]
    assert abs(float(rows[0]["duration_s"]) - 1 / fps) < 1e-6
    assert abs(float(rows[1]["duration_s"]) - 30 / fps) < 1e-6
    assert abs(float(rows[1]["start_s"]) - 20 / fps) < 1e-6
    assert abs(float(rows[1]["end_s"]) - 50 / fps) < 1e-6
    assert (rows[0]["start_frame"], rows[0]["end_frame"], rows[0]["score"]) == ("10", "10", "0.9123")

    result, *_ = _evaluate()
    path = write_bouts_csv(tmp_path / "pred.csv", result["pred_bouts"][0], 30.0)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["label"], int(r["start_frame"]), int(r["end_frame"])) for r in rows] == [
        (b["name"], b["start"], b["end"]) for b in result["pred_bouts"][0]]
    with pytest.raises(ValueError, match="inclusive"):
        write_bouts_csv(tmp_path / "bad.csv", [{"name": "x", "start": 5, "end": 4}], fps)


def test_ethogram_long_video_is_fast(tmp_path):
    rng = np.random.default_rng(3)
    fps, n = 30.0, 10 * 60 * 30
    runs = rng.integers(1, 40, size=n)  # many short runs: a noisy prediction
    pred = np.repeat(rng.integers(0, 3, size=runs.size), runs)[:n]
    truth = np.repeat(rng.integers(0, 3, size=runs.size), runs[::-1])[:n]
    probs = rng.dirichlet(np.ones(3), size=n)
    t0 = time.perf_counter()
    out = ethogram_png(tmp_path / "e.png", labels=LABELS, fps=fps, pred_labels=pred,
                       true_labels=truth, probs=probs, title="ten minutes")
    elapsed = time.perf_counter() - t0
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert elapsed < 5.0, f"ethogram of a 10-min video took {elapsed:.1f} s"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.png"]
    with pytest.raises(ValueError, match="outside 0..2"):
        ethogram_png(tmp_path / "x.png", labels=LABELS, fps=fps, pred_labels=pred + 1)
    with pytest.raises(ValueError, match="true_labels has"):
        ethogram_png(tmp_path / "x.png", labels=LABELS, fps=fps, pred_labels=pred,
                     true_labels=truth[:-1])


def test_confusion_png_and_colors(tmp_path):
    out = confusion_png(tmp_path / "c.png", [[5, 1, 0], [2, 3, 0], [0, 0, 0]], LABELS)
    assert out.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="shape"):
        confusion_png(tmp_path / "d.png", [[1, 2], [3, 4]], LABELS)
    colors = class_colors(LABELS)
    assert colors[0] == IDLE_COLOR and len(set(colors)) == 3
    assert class_colors(LABELS + ["extra"])[:3] == colors  # fixed per class index


def test_report_explains_test_time_views(tmp_path):
    result, truth, probs, fps = _evaluate()
    out = write_report(tmp_path / "report.html", result, probs=probs, true_labels=truth, fps=fps,
                       title="Bench", model_info={"arch": "vit_tiny", "test_time_views": 4})
    how = out.read_text(encoding="utf-8").split("<h2>How to read this</h2>")[1].split("<h2>")[0]
    assert "seen in 4 orientations" in how and "mean over them" in how


def test_report_explains_window_weights(tmp_path):
    result, truth, probs, fps = _evaluate()
    plain = write_report(tmp_path / "plain.html", result, probs=probs, true_labels=truth, fps=fps,
                         title="Bench", model_info={"arch": "vit_tiny", "stitch_sigma": 0.0})
    assert "Gaussian" not in plain.read_text(encoding="utf-8")
    out = write_report(tmp_path / "report.html", result, probs=probs, true_labels=truth, fps=fps,
                       title="Bench", model_info={"arch": "vit_tiny", "stitch_sigma": 0.125, "test_time_views": 4})
    how = out.read_text(encoding="utf-8").split("<h2>How to read this</h2>")[1].split("<h2>")[0]
    assert "weighed by a Gaussian" in how and "σ = 0.125 × the window" in how
    assert how.index("orientations") < how.index("Gaussian")  # a window's views first, then the windows' mean
