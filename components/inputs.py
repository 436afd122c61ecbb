"""Where the videos and the model of a prediction come from: video files found in folders, a distinct
output name per video, and any accepted MODEL reference resolved to a local model directory.

MODEL is a local model directory (``model.safetensors`` + ``model_card.json``), an MLflow model URI
(``models:/<name>@<alias>`` or ``models:/<name>/<version>``) or ``<name>@<alias>``; MLflow URIs are
resolved against ``MLFLOW_TRACKING_URI`` (or ``--tracking-uri``). Nothing here imports torch, so a
step that only plans (the cohort ``plan`` task) starts quickly.
"""

import os
from pathlib import Path


class PredictError(ValueError):
    """Bad model reference or inputs; the message names it."""


VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv"}


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
