"""Cohort scoring against plain prediction, measured side by side on the same videos in one run.

  predict   ``mar predict VIDEOS --model MODEL --out DIR``: one process, the videos one after another
  score     ``mar score VIDEOS --model MODEL --shards N --out DIR``: the ``score`` DAG through kfp.local
            (plan → one task per shard → gather: cohort table, report, an MLflow run), a fresh cache

Both run as the user runs them (a new process each, imports and model loading included). Checked:
the cohort table has one row per video, every video scored, and its per-class counts equal
``mar predict``'s. Printed: wall seconds of each and score_vs_predict = score ÷ predict per run
(goal ≤ 1.2: the fan-out costs little); with ``--runs`` > 1 the order alternates and the medians are
reported. Last line: one JSON object.

    python benchmarks/score_vs_predict.py [--videos 8] [--seconds 60] [--shards 2] [--runs 1] [--model DIR|URI]

Without ``--model`` a freshly initialised model of the ``cpu`` profile is used (its weights do not
change the cost); pass the demo's champion (``--model models:/mouse-action-mvd@champion
--tracking-uri sqlite:///$PWD/work/mlflow.db``) to time a trained one.
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _videos(root: Path, n: int, seconds: float, fps: float) -> list[Path]:
    from pipeline.demo import render_video

    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = root / f"session_{i + 1:02d}.mp4"
        render_video(p, num_frames=int(round(seconds * fps)), fps=fps, size=(320, 240), seed=100 + i)
        out.append(p)
    return out


def _fresh_model(root: Path) -> Path:
    from mvd.config import build_config
    from mvd.train import build_model, model_card
    from mvd.weights import save_model

    cfg = build_config("cpu")
    labels = ["idle", "Self-Grooming", "Head/Body TWITCH"]
    return save_model(build_model(cfg, len(labels)), root / "model", model_card(cfg, labels, "benchmark"))


def _run(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall


def _predict_counts(out: Path) -> dict[str, dict[str, int]]:
    summary = json.loads((out / "summary.json").read_text())
    return {Path(v).name: {k: c["bouts"] for k, c in e["per_class"].items() if c.get("bouts") is not None}
            for v, e in summary["videos"].items()}


def _score_counts(out: Path) -> dict[str, dict[str, int]]:
    with open(out / "cohort.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if any(r["status"] != "scored" for r in rows):
        raise SystemExit(f"not every video was scored: {[(r['output'], r['reason']) for r in rows if r['status'] != 'scored']}")
    return {r["output"]: {k[:-len("_count")]: int(r[k]) for k in r if k.endswith("_count")} for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--model", default="")
    ap.add_argument("--tracking-uri", default="")
    args = ap.parse_args()

    mar = str(Path(sys.executable).with_name("mar"))
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    with tempfile.TemporaryDirectory(prefix="mar-bench-score-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        videos = _videos(root / "videos", args.videos, args.seconds, args.fps)
        print(f"rendered {len(videos)} videos of {args.seconds:g} s at {args.fps:g} fps in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        model = args.model or str(_fresh_model(root))
        track = ["--tracking-uri", args.tracking_uri] if args.tracking_uri else []
        walls: dict[str, list[float]] = {"predict": [], "score": []}
        for r in range(args.runs):
            order = ("predict", "score") if r % 2 == 0 else ("score", "predict")
            for kind in order:
                out = root / f"{kind}{r}"
                if kind == "predict":
                    cmd = [mar, "predict", *map(str, videos), "--model", model, "--out", str(out), *track]
                else:
                    cmd = [mar, "score", str(root / "videos"), "--model", model, "--out", str(out),
                           "--shards", str(args.shards), *track]
                walls[kind].append(_run(cmd, env))
                print(f"run {r + 1}: {kind} {walls[kind][-1]:.1f} s", flush=True)
            pred, score = _predict_counts(root / f"predict{r}"), _score_counts(root / f"score{r}")
            if len(score) != len(videos) or pred != score:
                raise SystemExit(f"cohort counts differ from mar predict's:\npredict {pred}\nscore   {score}")
        ratios = [s / p for p, s in zip(walls["predict"], walls["score"])]
        res = {"videos": len(videos), "seconds_each": args.seconds, "shards": args.shards, "runs": args.runs,
               "predict_s": statistics.median(walls["predict"]), "score_s": statistics.median(walls["score"]),
               "score_vs_predict": statistics.median(ratios), "counts_equal": True}
        print(f"predict {res['predict_s']:.1f} s, score {res['score_s']:.1f} s: score_vs_predict "
              f"{res['score_vs_predict']:.2f} (goal ≤ 1.2); cohort rows {len(videos)}, counts equal to mar predict's")
        print(json.dumps(res))


if __name__ == "__main__":
    main()
