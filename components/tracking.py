"""MLflow integration: runs, live metrics, the pyfunc model wrapper and model versions.

Local runs use ``sqlite:///<workdir>/mlflow.db`` with artifacts under ``<workdir>/mlartifacts``;
on a cluster the tracking URI points at the MLflow server.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

import mlflow  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

logger = logging.getLogger(__name__)


def client(tracking_uri: str) -> MlflowClient:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def ensure_experiment(c: MlflowClient, name: str, artifact_root: str = "") -> str:
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if artifact_root:
        location = artifact_root if "://" in artifact_root else Path(artifact_root).resolve().as_uri()
    return c.create_experiment(name, artifact_location=location)


def start_run(tracking_uri: str, experiment: str, run_name: str, params: dict[str, Any], artifact_root: str = "",
              tags: dict[str, str] | None = None) -> str:
    c = client(tracking_uri)
    exp_id = ensure_experiment(c, experiment, artifact_root)
    run = c.create_run(exp_id, run_name=run_name or None, tags=tags or {})
    log_params(c, run.info.run_id, params)
    return run.info.run_id


def log_params(c: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
    for i in range(0, len(items), 100):
        c.log_batch(run_id, params=items[i:i + 100])


def log_metrics(c: MlflowClient, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    import time

    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    items = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items()
             if isinstance(v, (int, float)) and np.isfinite(v)]
    for i in range(0, len(items), 500):
        c.log_batch(run_id, metrics=items[i:i + 500])


class EpochLogger:
    """Callback for ``mvd.train.train``: per-epoch metrics to MLflow as they happen."""

    def __init__(self, tracking_uri: str, run_id: str):
        self.c = client(tracking_uri)
        self.run_id = run_id

    def __call__(self, epoch: int, row: dict[str, float]) -> None:
        log_metrics(self.c, self.run_id, {k: v for k, v in row.items() if k != "epoch"}, step=epoch)


class VideoClipClassifier(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: input clips (B, 3, T, H, W) float32 normalised → class probabilities.

    Whole-video prediction (sliding window, crops) is ``mar predict --model models:/…``,
    which downloads the same artifacts and uses ``mvd`` directly.
    """

    def load_context(self, context) -> None:
        from mvd.weights import load_model

        self.model, self.card = load_model(context.artifacts["model_dir"])
        self.model.eval()

    def predict(self, context, model_input, params=None):
        import torch

        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        with torch.no_grad():
            return torch.softmax(self.model(x), dim=1).numpy()
