"""MLflow integration: runs, live metrics, the pyfunc model wrapper and model versions.

Local runs use ``sqlite:///<workdir>/mlflow.db`` with artifacts under ``<workdir>/mlartifacts``;
on a cluster the tracking URI points at the MLflow server.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

import mlflow  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

logger = logging.getLogger(__name__)


SQLITE_PREFIX = "sqlite:///"
_READY: set[str] = set()  # sqlite stores this process has opened (created and migrated)


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, None for other schemes; a malformed
    ``sqlite:`` URI (one that would open some other file) raises ValueError."""
    if not tracking_uri.lower().startswith("sqlite:"):
        return None
    if not tracking_uri.startswith(SQLITE_PREFIX) or len(tracking_uri) == len(SQLITE_PREFIX):
        raise ValueError(f"tracking URI {tracking_uri!r} is not a usable sqlite URI: write sqlite:/// followed by "
                         "the database path, e.g. sqlite:///work/mlflow.db (relative) or sqlite:////data/mlflow.db "
                         "(absolute)")
    return Path(tracking_uri[len(SQLITE_PREFIX):])


class TrackingServerError(ValueError):
    """The MLflow tracking server cannot be used (unreachable, credentials refused, artifact store
    refused); the message is one paragraph naming the URI and what to check."""


CREDENTIAL_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def is_server(tracking_uri: str) -> bool:
    return tracking_uri.lower().startswith(("http://", "https://"))


def _server_auth(env: dict[str, str]) -> tuple[dict[str, str], Any]:
    """Request headers and auth from the environment (MLflow's own variables), nothing else."""
    token = env.get("MLFLOW_TRACKING_TOKEN", "")
    if token:
        return {"Authorization": f"Bearer {token}"}, None
    user, password = env.get("MLFLOW_TRACKING_USERNAME", ""), env.get("MLFLOW_TRACKING_PASSWORD", "")
    return {}, ((user, password) if user or password else None)


def check_server(tracking_uri: str, *, timeout_s: float = 60.0, artifacts: bool = True,
                 env: dict[str, str] | None = None) -> None:
    """Fail fast, with one paragraph, when the MLflow server at ``tracking_uri`` cannot be used:
    credentials written into the URI, nothing answering, credentials refused (401/403), or (with
    ``artifacts``) the server's artifact store refusing it. Credentials come from the environment
    only (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN)."""
    from urllib.parse import urlsplit

    import requests

    env = dict(os.environ if env is None else env)
    parts = urlsplit(tracking_uri)
    if parts.username or parts.password:
        safe = parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")).geturl()
        raise TrackingServerError(
            f"tracking URI {safe} carries credentials in the URI: remove them and set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) in the environment instead, so that they never "
            "reach pipeline parameters, MLflow params or logs")
    headers, auth = _server_auth(env)
    base = tracking_uri.rstrip("/")
    timeout = (min(10.0, timeout_s), timeout_s)  # connecting is quick; a busy server's first answer may not be
    has_creds = auth is not None or "Authorization" in headers
    try:
        r = requests.get(f"{base}/api/2.0/mlflow/experiments/search", params={"max_results": 1},
                         headers=headers, auth=auth, timeout=timeout)
    except requests.RequestException as e:
        raise TrackingServerError(
            f"the MLflow tracking server at {tracking_uri} did not answer ({type(e).__name__}): check that the "
            "server is running and reachable from here (host, port, http vs https, proxy), or pass another "
            "--tracking-uri / MLFLOW_TRACKING_URI") from None
    if r.status_code in (401, 403):
        what = ("refused the credentials from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD "
                "(or MLFLOW_TRACKING_TOKEN)" if has_creds else
                "requires credentials and none were set (MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, "
                "or MLFLOW_TRACKING_TOKEN)")
        raise TrackingServerError(
            f"the MLflow tracking server at {tracking_uri} {what} (HTTP {r.status_code}): check the user name and "
            "password (or token) for this server and that the user may read and write experiments and models")
    if r.status_code != 200:
        raise TrackingServerError(
            f"the MLflow tracking server at {tracking_uri} answered HTTP {r.status_code} to an experiment search "
            f"({r.text[:200].strip()!r}): check that this URI is an MLflow server (not its UI behind a proxy "
            "path) and look at the server's log")
    if not artifacts:
        return
    try:
        a = requests.get(f"{base}/api/2.0/mlflow-artifacts/artifacts", headers=headers, auth=auth,
                         timeout=timeout)
    except requests.RequestException as e:
        raise TrackingServerError(
            f"the MLflow tracking server at {tracking_uri} stopped answering while its artifact store was checked "
            f"({type(e).__name__}): look at the server's log") from None
    # 5xx, or MLflow's own "Failed to list artifacts in s3://…" (a missing bucket, say); a 401/403 here
    # only means this user may not list the root, and a 404 without that message that the server does
    # not proxy artifacts: neither is the artifact store refusing
    if a.status_code >= 500 or (a.status_code != 200 and "Failed to list artifacts" in a.text):
        raise TrackingServerError(
            f"the MLflow tracking server at {tracking_uri} cannot use its artifact store (HTTP {a.status_code}: "
            f"{a.text[:300].strip()!r}): check the server's --artifacts-destination (bucket exists, the server's S3 "
            "endpoint and credentials) and its log")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if missing), held for the ``with`` block; it
    serialises processes and threads alike, since each acquisition opens the file anew."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def client(tracking_uri: str) -> MlflowClient:
    """A client for ``tracking_uri``. A sqlite store is created (and migrated) under a file lock
    beside the database, so two processes opening the same new store do not both migrate it."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    db = sqlite_path(tracking_uri)
    if db is None or tracking_uri in _READY:
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    with file_lock(db.with_name(db.name + ".lock")):
        c = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)  # creates and migrates the tables
        c._get_registry_client().store  # noqa: B018 - the registry tables too
    _READY.add(tracking_uri)
    return c


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
    """A new RUNNING run tagged with the processes that own it (see ``end_orphaned_runs``)."""
    c = client(tracking_uri)
    exp_id = ensure_experiment(c, experiment, artifact_root)
    run = c.create_run(exp_id, run_name=run_name or None, tags={**owner_tags(), **(tags or {})})
    log_params(c, run.info.run_id, params)
    return run.info.run_id


# ----------------------------------------------------------------------------- runs that never end
# A run is started by the train stage and ended by register. A stage that fails ends it FAILED
# (the stage itself, or the local runner); a run whose processes were killed is found by the next
# run: RUNNING, its owner processes gone from this host, or idle for longer than
# MAR_ORPHAN_AFTER_HOURS (default 72) when it ran elsewhere.

ORPHAN_AFTER_HOURS = 72.0


def _proc_start(pid: int) -> str:
    """The start time of process ``pid`` (clock ticks since boot, from /proc), "" if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not start or _proc_start(pid) in ("", start)  # a reused pid has another start time


def owner_tags() -> dict[str, str]:
    """``mar.host`` and ``mar.pids`` (``pid:start`` of the local runner, if any, and this process)."""
    pids = [int(os.environ["MAR_DRIVER_PID"])] if os.environ.get("MAR_DRIVER_PID", "").isdigit() else []
    pids.append(os.getpid())
    owners = ",".join(f"{p}:{_proc_start(p)}" for p in dict.fromkeys(pids))
    return {"mar.host": socket.gethostname(), "mar.pids": owners}


def end_run(c: MlflowClient, run_id: str, status: str, reason: str) -> None:
    """End a RUNNING run with ``status`` (FAILED, KILLED) and tag ``mar.end_reason``; others are left alone."""
    try:
        if c.get_run(run_id).info.status != "RUNNING":
            return
        c.set_tag(run_id, "mar.end_reason", reason[:4000])
        c.set_terminated(run_id, status)
    except mlflow.exceptions.MlflowException as e:  # ending a run must never hide the error being reported
        logger.warning("could not mark MLflow run %s %s: %s", run_id, status, e)


def end_named_runs(tracking_uri: str, experiment: str, run_name: str, status: str, reason: str) -> list[str]:
    """End the RUNNING runs of ``experiment`` named ``run_name`` (one pipeline run's); returns their ids."""
    c = client(tracking_uri)
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = c.search_runs([exp.experiment_id], filter_string=f"attributes.run_name = '{run_name}' "
                                                          "and attributes.status = 'RUNNING'")
    for r in runs:
        end_run(c, r.info.run_id, status, reason)
    return [r.info.run_id for r in runs]


def _last_activity_ms(c: MlflowClient, run: Any) -> int:
    last = run.info.start_time or 0
    for key in ("train_loss", "frame_macro_f1"):
        if key in run.data.metrics:
            last = max([last, *(m.timestamp for m in c.get_metric_history(run.info.run_id, key))])
    return last


def end_orphaned_runs(c: MlflowClient, experiment_id: str, max_idle_hours: float | None = None) -> list[str]:
    """Mark KILLED the RUNNING runs of the experiment whose processes are gone: on this host, none of
    the processes in their ``mar.pids`` tag is alive; elsewhere (or untagged), no activity for
    ``max_idle_hours`` (default env MAR_ORPHAN_AFTER_HOURS, else 72). Returns the ids ended."""
    if max_idle_hours is None:
        max_idle_hours = float(os.environ.get("MAR_ORPHAN_AFTER_HOURS", "") or ORPHAN_AFTER_HOURS)
    host, now = socket.gethostname(), time.time() * 1000
    ended = []
    for run in c.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000):
        tags = run.data.tags
        owners = [p.split(":", 1) for p in tags.get("mar.pids", "").split(",") if p.split(":", 1)[0].isdigit()]
        if tags.get("mar.host") == host and owners:
            if any(_alive(int(pid), start) for pid, start in owners):
                continue
            reason = (f"killed: its process(es) {', '.join(pid for pid, _ in owners)} on {host} ended "
                      "without ending the run; found by a later run")
        else:
            idle_h = (now - _last_activity_ms(c, run)) / 3.6e6
            if idle_h < max_idle_hours:
                continue
            reason = (f"killed: no activity for {idle_h:.1f} h (more than {max_idle_hours:g} h, "
                      "MAR_ORPHAN_AFTER_HOURS); found by a later run")
        end_run(c, run.info.run_id, "KILLED", reason)
        logger.warning("MLflow run %s (%s) marked KILLED: %s", run.info.run_id, run.info.run_name, reason)
        ended.append(run.info.run_id)
    return ended


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
