"""Predict with a trained model on new videos: per-frame labels, bouts, ethogram, counts.

MODEL is a local model directory (``model.safetensors`` + ``model_card.json``), an MLflow
model URI (``models:/<name>@<alias>`` or ``models:/<name>/<version>``) or ``<name>@<alias>``;
MLflow URIs are resolved against ``MLFLOW_TRACKING_URI`` (or ``--tracking-uri``).
"""

import logging
import os
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from mvd.bouts import apply_min_bout, bouts_from_labels, labels_from_probs
from mvd.detect import make_detector
from mvd.infer import predict_video
from mvd.video import VideoReadError, probe
from mvd.weights import load_model

from .manifest import write_json
from .report import ethogram_png, write_bouts_csv, write_frames_csv

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv"}


class PredictError(ValueError):
    """Bad model reference or inputs; the message names it."""


def resolve_model(model: str, tracking_uri: str = "") -> Path:
    """A local directory holding ``model_card.json`` for any accepted MODEL reference."""
    p = Path(model)
    if p.is_dir():
        if not (p / "model_card.json").is_file():
            raise PredictError(f"{p} is a directory but holds no model_card.json; pass a model directory "
                               "written by the train stage, or a models:/<name>@<alias> URI")
        return p
    uri = model if model.startswith("models:/") else None
    if uri is None and "@" in model:
        uri = "models:/" + model
    if uri is None:
        raise PredictError(f"model {model!r} is neither a model directory nor an MLflow model URI "
                           "(models:/<name>@<alias> or models:/<name>/<version>)")
    import mlflow

    from .registry import RegistryError, open_store

    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not tracking_uri:
        raise PredictError(f"{uri} needs an MLflow tracking URI: set MLFLOW_TRACKING_URI or pass --tracking-uri")
    try:
        open_store(tracking_uri)  # never creates an empty store for a mistyped sqlite URI
    except RegistryError as e:
        raise PredictError(f"cannot fetch {uri}: {e}") from e
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except mlflow.exceptions.MlflowException as e:
        raise PredictError(f"cannot fetch {uri} from {tracking_uri}: {e}") from e
    found = sorted(local.rglob("model_card.json"))
    if not found:
        raise PredictError(f"{uri} holds no model_card.json; it was not registered by this pipeline")
    return found[0].parent


def collect_videos(items: list[str]) -> list[Path]:
    out: list[Path] = []
    for it in items:
        p = Path(it)
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix.lower() in VIDEO_SUFFIXES and q.is_file())
        else:
            out.append(p)
    if not out:
        raise PredictError(f"no video found in {items}")
    return out


def run_predict(model: str, videos: list[str], out_dir: str | Path, *, tracking_uri: str = "",
                detector: str = "background", stride: int = 0, batch_size: int = 16,
                thresholds: dict[str, float] | None = None, min_bout: dict[str, int] | None = None,
                device: str | None = None) -> dict[str, Any]:
    """Writes per video ``<name>.frames.csv``, ``<name>.bouts.csv``, ``<name>.ethogram.png``; returns the summary."""
    model_dir = resolve_model(model, tracking_uri)
    net, card = load_model(model_dir)
    labels, inp = card["labels"], card["input"]
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    net.to(dev)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    det = make_detector(detector)
    th = {labels.index(k): v for k, v in (thresholds or {}).items()}
    mb = {labels.index(k): v for k, v in (min_bout or {}).items()}
    summary: dict[str, Any] = {"model": str(model), "labels": labels, "videos": {}, "failures": []}
    for video in tqdm(collect_videos(videos), desc="videos", unit="video"):
        try:
            info = probe(video)
            boxes = det.detect_video(video)
            probs = predict_video(net, video, boxes, num_frames=inp["num_frames"], sampling_rate=inp["sampling_rate"],
                                  input_size=inp["img_size"], num_classes=len(labels), stride=stride,
                                  pad=inp.get("crop_pad", 0.05), batch_size=batch_size, device=dev, progress=True)
        except (VideoReadError, ValueError) as e:
            logger.error("%s: %s", video, e)
            summary["failures"].append({"video": str(video), "reason": str(e)})
            continue
        pred = labels_from_probs(probs, thresholds=th or None)
        if mb:
            pred = apply_min_bout(pred, mb)
        bouts = bouts_from_labels(pred, probs)
        rows = [{"label": b.label, "name": labels[b.label], "start": b.start, "end": b.end, "score": b.score}
                for b in bouts if b.label != 0]
        stem = video.name
        write_frames_csv(out / f"{stem}.frames.csv", pred, probs, labels)
        write_bouts_csv(out / f"{stem}.bouts.csv", rows, info.fps)
        ethogram_png(out / f"{stem}.ethogram.png", labels=labels, fps=info.fps, pred_labels=pred, probs=probs,
                     title=stem)
        per_class = {}
        for k, name in enumerate(labels):
            n_frames = int((pred == k).sum())
            per_class[name] = {"bouts": sum(1 for r in rows if r["label"] == k) if k else None,
                               "frames": n_frames, "duration_s": n_frames / info.fps}
        summary["videos"][str(video)] = {"fps": info.fps, "frames": len(pred), "per_class": per_class}
    write_json(out / "summary.json", summary)
    if not summary["videos"]:
        raise PredictError(f"no video could be processed: {summary['failures']}")
    return summary
