"""Faults found by trying the tool with broken inputs: each test reproduces one, then holds the fix."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from mvd.config import build_config
from mvd.manifest import read_manifest, safe_name
from test_ingest import make_project

LABELS = ["idle", "Self-Grooming", "Head/Body TWITCH"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- same file name twice


def test_same_video_name_in_datasets_that_clean_alike_keeps_both(tmp_path):
    """`cohort A/a.mp4` and `cohort_A/a.mp4` used to clean to one file: the second video's record then
    pointed at the first one's bytes (a silent leak with wrong labels)."""
    from components.ingest import run_ingest

    root = make_project(tmp_path / "proj", [
        ("cohort A", "a.mp4", [("Self-Grooming", 3, 12)], 30, 1),
        ("cohort_A", "a.mp4", [("Head-Body_TWITCH", 5, 7)], 30, 2),
        ("cohort_B", "a.mp4", [("Self-Grooming", 10, 20)], 30, 3),
    ], tmp_path)
    m = run_ingest(str(root), build_config("cpu"), tmp_path / "out")
    back = read_manifest(tmp_path / "out")
    assert len(back.videos) == 3 and len({v.file for v in back.videos}) == 3
    for rec in back.videos:  # every record's file holds that record's own video
        assert _sha(tmp_path / "out" / rec.file) == rec.sha256
    assert len({v.sha256 for v in m.videos}) == 3


def test_safe_names_are_unique():
    taken: set[str] = set()
    names = [safe_name(v, taken) for v in ("cohort A/a.mp4", "cohort_A/a.mp4", "cohort A/a.mp4", "x/b")]
    assert len(set(names)) == 4 and names[0] == "cohort_A__a.mp4" and names[1].endswith(".mp4")


def _tiny_model(tmp_path: Path) -> Path:
    from mvd.train import build_model, model_card
    from mvd.weights import save_model

    cfg = build_config("cpu", overrides={"model.num_frames": 4, "benchmark.stride": 4})
    return save_model(build_model(cfg, 3), tmp_path / "model", model_card(cfg, LABELS, "dv"))


def test_predict_on_two_folders_with_the_same_file_names(tmp_path):
    """`mar predict A/ B/` with A/a.mp4 and B/a.mp4 reported both but wrote one set of CSVs."""
    from components.predict import output_stems, run_predict
    from pipeline.demo_data import render_video

    for d, seed in (("A", 1), ("B", 2)):
        render_video(tmp_path / d / "a.mp4", num_frames=24, size=(64, 48), seed=seed)
    s = run_predict(str(_tiny_model(tmp_path)), [str(tmp_path / "A"), str(tmp_path / "B")], tmp_path / "out")
    assert len(s["videos"]) == 2
    outputs = sorted(v["output"] for v in s["videos"].values())
    assert outputs == ["A__a.mp4", "B__a.mp4"]
    for o in outputs:
        rows = list(csv.DictReader(open(tmp_path / "out" / f"{o}.frames.csv")))
        assert len(rows) == 24
    # the same file given twice (folder and file) is labelled once
    assert len(output_stems([tmp_path / "A" / "a.mp4"])) == 1
    s2 = run_predict(str(tmp_path / "model"), [str(tmp_path / "A"), str(tmp_path / "A" / "a.mp4")], tmp_path / "o2")
    assert len(s2["videos"]) == 1


# ----------------------------------------------------------------------------- truncated video


def _truncated(tmp_path: Path, cut: int = 200) -> Path:
    """An mp4 whose index (moov first) lists every frame but whose last bytes are gone: the
    container claims more frames than decode."""
    import av

    from pipeline.demo_data import render_video

    src = tmp_path / "full.mp4"
    render_video(src, num_frames=120, size=(160, 120), fps=30, seed=1,
                 behaviours=[("Self-Grooming", 20, 60), ("Head/Body TWITCH", 90, 93)])
    fs = tmp_path / "faststart.mp4"
    with av.open(str(src)) as inp, av.open(str(fs), "w", options={"movflags": "faststart"}) as out:
        s = out.add_stream_from_template(inp.streams.video[0])
        for pkt in inp.demux(inp.streams.video[0]):
            if pkt.dts is None:
                continue
            pkt.stream = s
            out.mux(pkt)
    dst = tmp_path / "truncated.mp4"
    dst.write_bytes(fs.read_bytes()[:-cut])
    return dst


def test_truncated_video_is_scored_over_the_frames_that_decode(tmp_path):
    """A test video whose container counts 117 packets but decodes 114 frames failed the whole run
    after training ("114 boxes for 117 frames")."""
    from mvd.card import spec_from_config
    from mvd.detect import make_detector
    from mvd.infer import label_video
    from mvd.train import build_model
    from mvd.video import count_decodable, probe

    video = _truncated(tmp_path)
    claimed, decodable = probe(video).num_frames, count_decodable(video)
    assert decodable < claimed  # the fault's precondition
    assert probe(video, decode=True).num_frames == decodable
    boxes = make_detector("background").detect_video(video)
    assert len(boxes) == decodable
    cfg = build_config("cpu", overrides={"model.num_frames": 4, "benchmark.stride": 2})
    lab = label_video(build_model(cfg, 3), spec_from_config(cfg, LABELS), video, boxes)
    assert lab.probs.shape == (decodable, 3) and len(lab.result.labels) == decodable
    assert lab.info.num_frames == decodable


def test_ingest_counts_the_frames_that_decode(tmp_path):
    from components.ingest import run_ingest

    import shutil

    video = _truncated(tmp_path)
    root = make_project(tmp_path / "proj", [("ds", "ok.mp4", [("Self-Grooming", 3, 12)], 30, 1)], tmp_path)
    shutil.copyfile(video, root / "ds" / "video" / "ok.mp4")  # the annotation says 30 frames; the file is damaged
    m = run_ingest(str(root), build_config("cpu"), tmp_path / "out", tmp_path / "report.json")
    from mvd.video import count_decodable

    assert m.videos[0].num_frames == count_decodable(video)
    notes = [d["reason"] for d in json.loads((tmp_path / "report.json").read_text())["decisions"]]
    assert any("decodes" in n for n in notes)


# ----------------------------------------------------------------------------- what was left out


def test_left_out_videos_name_stage_and_reason(tmp_path):
    from components.benchmark import left_out_videos
    from components.report.page import _left_out_section

    rep = tmp_path / "ingest.json"
    rep.write_text(json.dumps({"decisions": [
        {"video": "ds/e.mp4", "decision": "excluded", "reason": "unreadable video: cannot open"},
        {"video": "ds/b.mp4", "decision": "tag_clipped", "reason": "clipped"},
        {"video": None, "decision": "tags_ignored", "reason": "rearing"}]}))
    out = left_out_videos(rep, [{"video": "ds/c.mp4", "reason": "no frame decodes"}],
                          [{"video": "ds/d.mp4", "reason": "ended early"}])
    assert [(d["video"], d["stage"]) for d in out] == [("ds/e.mp4", "ingest"), ("ds/c.mp4", "bbox-crop"),
                                                      ("ds/d.mp4", "benchmark")]
    html = _left_out_section(out)
    assert "Videos left out" in html and "ds/e.mp4" in html and "unreadable video" in html
    assert _left_out_section([]) == ""


def test_headline_puts_precision_beside_recall():
    """A model labelling every frame a twitch showed 'twitch event recall 1.000' and nothing else."""
    from components.benchmark import headline
    from mvd.metrics import evaluate

    y = np.zeros(100, dtype=int)
    y[[10, 40, 70]] = 2
    p = np.tile([0.9, 0.05, 0.05], (100, 1))
    p[np.arange(100) % 5 < 2] = [0.05, 0.05, 0.9]  # a twitch fired every half second: 20 bouts
    r = evaluate([y], [p], LABELS, 10.0, ["v"])
    r["overlap_recall"] = {"Self-Grooming": None, "Head/Body TWITCH": 1.0}
    h = headline(r, LABELS)
    assert h["twitch_event_recall"] == 1.0 and h["twitch_event_precision"] == pytest.approx(3 / 20)
    assert h["counts"]["Head/Body TWITCH"]["pred_count"] == 20 and h["counts"]["Head/Body TWITCH"]["true_count"] == 3

    from pipeline.cli import _print_summary
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        _print_summary({"run_id": "r", "wall_s": 1, "metrics": h, "model_name": "m", "model_version": "1",
                        "promoted": False, "promotion_reason": "x", "mlflow_tracking_uri": "sqlite:///x",
                        "artifacts": {"report": "r.html", "predictions": "p"}}, as_json=False)
    text = buf.getvalue()
    line = next(ln for ln in text.splitlines() if "Head/Body TWITCH: events" in ln)
    assert "precision" in line and "recall" in line
    assert "20 bouts predicted / 3 true" in text
