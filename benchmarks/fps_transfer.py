"""Frame-rate transfer: one trained model on the same behaviour filmed at two frame rates.

Renders ``--videos`` synthetic test videos at ``--fps`` (e.g. 60) and takes every
``fps / base-fps``-th frame of each as the same video at ``--base-fps`` (the training rate): the
same animal, walk and behaviours at the same seconds. Labels both
sets with the model's inference contract (:func:`mvd.infer.label_video`, boxes from the model's
detector) and scores the twitch and grooming events against the rendered truth (hit rule).

Printed last, one JSON object: per rate the event F1 (hit) and counts per class, and
``twitch_f1_drop`` = F1 at ``--base-fps`` − F1 at ``--fps`` (goal ≤ 0.05).

    python benchmarks/fps_transfer.py --model work/kfp/.../model [--videos 6] [--fps 60] [--base-fps 30]
    python benchmarks/fps_transfer.py --model models:/mouse-action-mvd@champion --tracking-uri sqlite:///work/mlflow.db
"""

import argparse
import json
import tempfile
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np

from components.predict import resolve_model
from mvd.bouts import Bout
from mvd.card import inference_spec
from mvd.detect import make_detector
from mvd.infer import label_video
from mvd.metrics import evaluate
from mvd.weights import load_model
from pipeline.demo import DEFAULT_SIZES, open_writer, render_video


class Rendered(NamedTuple):
    """One rendered video and its truth: inclusive frame ranges of the behaviours."""
    path: Path
    fps: float
    behaviours: list[tuple[str, int, int]]


def render_pair(work: Path, k: int, seed: int, duration_s: float, base_fps: float, fps: float):
    """The same video at two rates: rendered at ``fps``, and every ``fps / base_fps``-th frame of it
    encoded again at ``base_fps``. Both show the same walk and the same behaviours at the same
    seconds (two renderings would not: the animal's path is drawn frame by frame). A base frame
    belongs to a behaviour when the frame it was taken from does."""
    step = fps / base_fps
    if step < 1 or abs(step - round(step)) > 1e-9:
        raise SystemExit(f"--fps {fps:g} must be a whole multiple of --base-fps {base_fps:g}")
    step = int(round(step))
    size = DEFAULT_SIZES[k % len(DEFAULT_SIZES)]
    other = render_video(work / f"v{k}_{fps:g}.mp4", num_frames=int(duration_s * fps), fps=fps, size=size,
                         seed=seed)
    path = work / f"v{k}_{base_fps:g}.mp4"
    dst, out = open_writer(path, other.width, other.height, base_fps)  # encoded as the demo's videos are
    with av.open(str(other.path)) as src, dst:
        for i, frame in enumerate(src.decode(video=0)):
            if i % step == 0:
                f = av.VideoFrame.from_ndarray(frame.to_ndarray(format="yuv420p"), format="yuv420p")
                f.pts = i // step
                dst.mux(out.encode(f))
        dst.mux(out.encode(None))
    timed = []
    for name, s, e in other.behaviours:
        a, b = -(-s // step), e // step  # the base frames taken from inside [s, e]
        timed.append((name, a, b) if a <= b else (name, round(s / step), round(s / step)))
    return Rendered(path, float(base_fps), timed), Rendered(other.path, float(fps), list(other.behaviours))


def score(model, spec, truths, labels, detector) -> dict:
    y_true, probs, fps, names, bouts = [], [], [], [], []
    for t in truths:
        boxes = detector.detect_video(t.path)
        lab = label_video(model, spec, t.path, boxes)
        n = len(lab.probs)
        tb = [Bout(labels.index(name), s, min(e, n - 1)) for name, s, e in t.behaviours if s < n]
        y = np.zeros(n, dtype=np.int64)
        for b in tb:
            y[b.start:b.end + 1] = b.label
        y_true.append(y)
        probs.append(lab.probs)
        fps.append(t.fps)
        names.append(t.path.name)
        bouts.append(tb)
    r = evaluate(y_true, probs, labels, fps, names, post=spec.postprocess, true_bouts=bouts)
    out = {}
    for name in labels[1:]:
        ev, c = r["events"]["per_class"][name], r["counts"]["per_class"][name]
        out[name] = {"event_hit_f1": ev["hit"]["f1"], "event_iou0.5_f1": ev["iou@0.5"]["f1"],
                     "frame_f1": r["frame"]["per_class"][name]["f1"],
                     "true_count": c["true_count"], "pred_count": c["pred_count"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model directory or models:/<name>@<alias>")
    ap.add_argument("--tracking-uri", default="")
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--duration-s", type=float, default=30.0)
    ap.add_argument("--base-fps", type=float, default=30.0)
    ap.add_argument("--fps", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1000)
    args = ap.parse_args()

    model, card = load_model(resolve_model(args.model, args.tracking_uri))
    spec = inference_spec(card, args.model)
    labels = card["labels"]
    detector = make_detector(spec.detector)
    with tempfile.TemporaryDirectory() as tmp:
        pairs = [render_pair(Path(tmp), k, args.seed + k, args.duration_s, args.base_fps, args.fps)
                 for k in range(args.videos)]
        base = score(model, spec, [p[0] for p in pairs], labels, detector)
        other = score(model, spec, [p[1] for p in pairs], labels, detector)
    twitch = next(n for n in labels if "twitch" in n.lower())
    drop = None
    if base[twitch]["event_hit_f1"] is not None and other[twitch]["event_hit_f1"] is not None:
        drop = base[twitch]["event_hit_f1"] - other[twitch]["event_hit_f1"]
    print(json.dumps({"model": args.model, "model_target_fps": spec.target_fps, "videos": args.videos,
                      f"at_{args.base_fps:g}_fps": base, f"at_{args.fps:g}_fps": other, "twitch_f1_drop": drop}))


if __name__ == "__main__":
    main()
