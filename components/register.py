"""register: an MLflow model version for every run, alias ``candidate``; ``champion`` moves
only when the primary metric beats the current champion's by the configured margin."""


import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from mvd.atomic import disk_full, is_disk_full, tree_size
from mvd.config import Config

from .integrations import tracking

logger = logging.getLogger(__name__)

MAX_EXAMPLE_ELEMENTS = 200_000


def code_version() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        if out.returncode == 0:
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mouse-action-recognition")
    except PackageNotFoundError:
        return "unknown"


def run_register(
    model_dir: str | Path,
    results: dict[str, Any],
    cfg: Config,
    *,
    tracking_uri: str,
    mlflow_run_id: str,
    kfp_run_id: str = "",
    report: str | Path | None = None,
) -> dict[str, Any]:
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    from .integrations.registry import set_champion

    c = tracking.client(tracking_uri)
    card = json.loads((Path(model_dir) / "model_card.json").read_text())
    inp = card["input"]
    shape = (-1, 3, inp["num_frames"], inp["img_size"], inp["img_size"])
    signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), shape)]),
                               outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, card["num_classes"]))]))
    example = None
    if np.prod(shape[1:]) <= MAX_EXAMPLE_ELEMENTS:
        example = np.zeros((1, *shape[1:]), dtype=np.float32)
    name = cfg.register.model_name
    summary = results["summary"]
    try:
        with mlflow.start_run(run_id=mlflow_run_id):
            info = mlflow.pyfunc.log_model(
                name="model", python_model=tracking.VideoClipClassifier(), artifacts={"model_dir": str(model_dir)},
                signature=signature, input_example=example, registered_model_name=name,
                pip_requirements=["torch", "timm", "safetensors", "numpy", "mouse-action-recognition"],
            )
    except BaseException as e:
        where = _discard_unfinished_models(c, mlflow_run_id)
        tracking.end_run(c, mlflow_run_id, "FAILED", f"register: {type(e).__name__}: {e}")
        if is_disk_full(e):
            raise disk_full(e, where or model_dir, tree_size(model_dir)) from e
        raise
    version = str(info.registered_model_version)
    primary = cfg.register.primary_metric
    # full precision (repr) so that a later comparison reads back exactly the value compared now
    tags = {"data_version": card.get("data_version", ""), "code_version": code_version(), "kfp_run_id": kfp_run_id,
            "mlflow_run_id": mlflow_run_id, "arch": card["arch"], "labels": json.dumps(card["labels"]),
            **{f"metric.{k}": repr(float(v)) for k, v in summary.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}}
    for k, v in tags.items():
        c.set_model_version_tag(name, version, k, str(v))
    c.set_registered_model_alias(name, "candidate", version)
    p = set_champion(c, name, version, metric=primary, margin=cfg.register.promote_margin,
                     new_metrics={k: float(v) for k, v in summary.items()
                                  if isinstance(v, (int, float)) and not isinstance(v, bool)},
                     tracking_uri=tracking_uri)
    promote, reason, champion_version = p.promoted, p.reason, p.previous_champion
    logger.info("registered %s version %s; champion: %s (%s)", name, version, promote, reason)
    mirrored = _mirror(c, model_dir, cfg, name, version, mlflow_run_id, kfp_run_id, report)
    return {"model_name": name, "model_version": version, "promoted": promote, "reason": reason,
            "previous_champion": champion_version, "primary_metric": primary, "mlflow_run_id": mlflow_run_id,
            "mirrored": mirrored}


def _discard_unfinished_models(c, run_id: str) -> str:
    """After a failed ``log_model``: delete the partly written local artifacts of the run's
    unfinished logged models and mark them FAILED; returns the artifact location of the last one."""
    import shutil
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    import mlflow
    from mlflow.entities import LoggedModelStatus

    where = ""
    try:
        exp = c.get_run(run_id).info.experiment_id
        models = mlflow.search_logged_models(experiment_ids=[exp], filter_string=f"source_run_id = '{run_id}'",
                                             output_format="list")
    except mlflow.exceptions.MlflowException as e:
        logger.warning("could not look up the logged models of run %s: %s", run_id, e)
        return where
    for m in models:
        if m.status == LoggedModelStatus.READY:
            continue
        loc = urlparse(m.artifact_location)
        if loc.scheme in ("", "file"):
            where = url2pathname(loc.path)
            shutil.rmtree(where, ignore_errors=True)
        else:
            where = m.artifact_location
        try:
            if m.status == LoggedModelStatus.PENDING:
                c.finalize_logged_model(m.model_id, LoggedModelStatus.FAILED)
        except mlflow.exceptions.MlflowException as e:
            logger.warning("could not mark logged model %s FAILED: %s", m.model_id, e)
    return where


def _mirror(c, model_dir: str | Path, cfg: Config, name: str, version: str, mlflow_run_id: str, kfp_run_id: str,
            report: str | Path | None) -> dict[str, list[str] | None]:
    """Copy the registered files to MAR_MIRROR_URI and Team Files (each only when configured)."""
    from .integrations.mirror import MirrorError, mirror_model
    from .integrations.storage import StorageError

    run_name = c.get_run(mlflow_run_id).info.run_name or kfp_run_id or mlflow_run_id
    try:
        mirrored = mirror_model(model_dir, cfg.to_json(), name=name, version=version, run_name=run_name, report=report)
    except (StorageError, MirrorError) as e:
        raise MirrorError(f"{name} version {version} is registered, but mirroring it failed: {e}") from e
    for where, paths in mirrored.items():
        if paths:
            common = os.path.commonprefix(paths)
            c.set_model_version_tag(name, version, f"mirror.{where}", common[:common.rfind("/") + 1])
    return mirrored
