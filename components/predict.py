"""Predict with a trained model on new videos: per-frame labels, bouts, ethogram, counts.

MODEL is a local model directory (``model.safetensors`` + ``model_card.json``), an MLflow
model URI (``models:/<name>@<alias>`` or ``models:/<name>/<version>``) or ``<name>@<alias>``;
MLflow URIs are resolved against ``MLFLOW_TRACKING_URI`` (or ``--tracking-uri``).
"""

import logging
from pathlib import Path
from typing import Any, NamedTuple

import torch
from tqdm import tqdm

from mvd.card import InferenceSpec, inference_spec
from mvd.detect import make_detector
from mvd.infer import label_video
from mvd.manifest import write_json
from mvd.metrics import bout_row
from mvd.video import VideoReadError
from mvd.weights import load_model

from .inputs import PredictError, collect_videos, output_stems, resolve_model
from .report import ethogram_png, write_bouts_csv, write_frames_csv

logger = logging.getLogger(__name__)

class Predictor(NamedTuple):
    model_dir: Path
    net: torch.nn.Module
    card: dict[str, Any]
    spec: InferenceSpec
    detector: Any
    device: torch.device


def load_predictor(model: str, tracking_uri: str = "", *, detector: str | None = None, stride: int | None = None,
                   batch_size: int | None = None, device: str | None = None) -> Predictor:
    """The model of any accepted MODEL reference on its device, with its inference contract (``stride``,
    ``batch_size``, ``detector`` override the card's) and its detector."""
    model_dir = resolve_model(model, tracking_uri)
    net, card = load_model(model_dir)
    spec = inference_spec(card, str(model))
    if stride:
        spec.stride = int(stride)
    if batch_size:
        spec.batch_size = int(batch_size)
    if detector:
        spec.detector = detector
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    net.to(dev)
    return Predictor(model_dir, net, card, spec, make_detector(spec.detector), dev)


def predict_one(net: torch.nn.Module, spec: InferenceSpec, det: Any, video: str | Path, out: Path, stem: str, *,
                device: torch.device, ethogram: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Label one video and write ``<stem>.frames.csv``, ``<stem>.bouts.csv`` (and the ethogram) under
    ``out``; returns its summary entry (fps, frames, per-class bouts, duration, mean bout duration,
    latency) and its bout rows. Raises VideoReadError / ValueError for a video that cannot be labelled."""
    labels = spec.postprocess.labels
    boxes = det.detect_video(video)
    lab = label_video(net, spec, video, boxes, device=device, progress=True)
    fps = lab.info.fps
    pred = lab.result.labels
    rows = [bout_row(b, labels, fps) for b in lab.result.bouts]
    write_frames_csv(out / f"{stem}.frames.csv", pred, lab.probs, labels)
    write_bouts_csv(out / f"{stem}.bouts.csv", rows, fps)
    if ethogram:
        ethogram_png(out / f"{stem}.ethogram.png", labels=labels, fps=fps, pred_labels=pred, probs=lab.probs,
                     title=stem)
    per_class = {}
    for k, name in enumerate(labels):
        n_frames = int((pred == k).sum())
        own = [r for r in rows if r["label"] == k]
        per_class[name] = {"bouts": len(own) if k != spec.postprocess.idle else None, "frames": n_frames,
                           "duration_s": n_frames / fps,
                           "mean_bout_s": (n_frames / fps / len(own)) if own else None,
                           "latency_s": own[0]["start_s"] if own else None}
    return {"output": stem, "fps": fps, "frames": len(pred), "per_class": per_class}, rows


def run_predict(model: str, videos: list[str], out_dir: str | Path, *, tracking_uri: str = "",
                detector: str | None = None, stride: int | None = None, batch_size: int | None = None,
                device: str | None = None) -> dict[str, Any]:
    """Labels every video under the model card's inference contract (the computation the benchmark
    ran) and writes per video ``<name>.frames.csv``, ``<name>.bouts.csv``, ``<name>.ethogram.png``;
    returns the summary. ``detector``, ``stride`` and ``batch_size`` override the card's."""
    p = load_predictor(model, tracking_uri, detector=detector, stride=stride, batch_size=batch_size, device=device)
    net, spec, det, dev, labels = p.net, p.spec, p.detector, p.device, p.card["labels"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"model": str(model), "labels": labels, "inference": spec.to_dict(), "videos": {},
                               "failures": []}
    paths = collect_videos(videos)
    for video, stem in tqdm(list(zip(paths, output_stems(paths))), desc="videos", unit="video"):
        try:
            entry, _ = predict_one(net, spec, det, video, out, stem, device=dev)
        except (VideoReadError, ValueError) as e:
            logger.error("%s: %s", video, e)
            summary["failures"].append({"video": str(video), "reason": str(e)})
            continue
        summary["videos"][str(video)] = entry
    write_json(out / "summary.json", summary)
    if not summary["videos"]:
        raise PredictError(f"no video could be processed: {summary['failures']}")
    return summary
