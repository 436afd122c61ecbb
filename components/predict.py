"""Predict with a trained model on new videos: per-frame labels, bouts, ethogram, counts.

MODEL is a local model directory (``model.safetensors`` + ``model_card.json``), an MLflow
model URI (``models:/<name>@<alias>`` or ``models:/<name>/<version>``) or ``<name>@<alias>``;
MLflow URIs are resolved against ``MLFLOW_TRACKING_URI`` (or ``--tracking-uri``).
"""

import logging
import os
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

from .report import ethogram_png, write_bouts_csv, write_frames_csv

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv"}


class PredictError(ValueError):
    """Bad model reference or inputs; the message names it."""


def registry_store(uri: str, tracking_uri: str = "") -> str:
    """The tracking URI (``tracking_uri`` or ``MLFLOW_TRACKING_URI``) whose registry holds ``uri``, once
    its store is known to exist (a mistyped sqlite URI never creates an empty one)."""
    from .integrations.registry import RegistryError, open_store

    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not tracking_uri:
        raise PredictError(f"{uri} needs an MLflow tracking URI: set MLFLOW_TRACKING_URI or pass --tracking-uri")
    try:
        open_store(tracking_uri)
    except RegistryError as e:
        raise PredictError(f"cannot fetch {uri}: {e}") from e
    return tracking_uri


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

    tracking_uri = registry_store(uri, tracking_uri)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except mlflow.exceptions.MlflowException as e:
        raise PredictError(f"cannot fetch {uri} from {tracking_uri}: {e}") from e
    found = sorted(local.rglob("model_card.json"))
    if not found:
        raise PredictError(f"{uri} holds no model_card.json; it was not registered by this pipeline")
    return found[0].parent


def collect_videos(items: list[str]) -> list[Path]:
    """Video files of ``items`` (files, or folders searched recursively), each file once."""
    out: list[Path] = []
    seen: set[Path] = set()
    for it in items:
        p = Path(it)
        found = sorted(q for q in p.rglob("*") if q.suffix.lower() in VIDEO_SUFFIXES and q.is_file()) \
            if p.is_dir() else [p]
        for q in found:
            key = q.resolve()
            if key not in seen:
                seen.add(key)
                out.append(q)
    if not out:
        raise PredictError(f"no video found in {items}")
    return out


def output_stems(videos: list[Path]) -> list[str]:
    """A distinct output name per video: its file name, or, where file names repeat (``A/a.mp4``,
    ``B/a.mp4``), its path below the videos' common folder joined with ``__``."""
    names = [v.name for v in videos]
    if len(set(names)) == len(names):
        return names
    absolute = [v.resolve() for v in videos]
    common = Path(os.path.commonpath([str(a.parent) for a in absolute]))
    stems = []
    for v, a in zip(videos, absolute):
        stems.append("__".join(a.relative_to(common).parts) if names.count(v.name) > 1 else v.name)
    return stems


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
