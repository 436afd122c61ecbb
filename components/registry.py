"""Model registry queries and decisions behind ``mar models`` and ``mar runs``.

Versions carry the tags written by ``components.register`` (``metric.<name>``, ``data_version``,
``promotion``); aliases ``candidate`` and ``champion`` point at versions.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from . import tracking
from .register import decide_promotion

logger = logging.getLogger(__name__)

CHAMPION = "champion"


class RegistryError(ValueError):
    """Unknown model, version or run, or no tracking store; the message says what exists."""


def resolve_tracking_uri(tracking_uri: str = "", workdir: str | os.PathLike[str] = "work") -> str:
    """``tracking_uri``, else env MLFLOW_TRACKING_URI, else ``sqlite:///<workdir>/mlflow.db``."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "") or f"sqlite:///{Path(workdir).resolve() / 'mlflow.db'}"


def open_store(tracking_uri: str) -> MlflowClient:
    """An MLflow client; a ``sqlite:///`` store must already exist (never create an empty one)."""
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri[len("sqlite:///"):])
        if not path.is_file():
            raise RegistryError(f"no MLflow store at {path}: run `mar run` (or `mar demo`) with that --workdir first, "
                                "or pass --tracking-uri / set MLFLOW_TRACKING_URI")
    return tracking.client(tracking_uri)


def _not_found(e: MlflowException) -> bool:
    return e.error_code == "RESOURCE_DOES_NOT_EXIST"


def check_model(c: MlflowClient, name: str) -> Any:
    try:
        return c.get_registered_model(name)
    except MlflowException as e:
        if not _not_found(e):
            raise
        names = sorted(m.name for m in c.search_registered_models())
        raise RegistryError(f"no registered model named {name!r}; the store has: {names or 'none'} "
                            "(choose one with --name)") from e


def _versions(c: MlflowClient, name: str) -> list[Any]:
    return sorted(c.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))


def get_version(c: MlflowClient, name: str, version: str) -> Any:
    check_model(c, name)
    try:
        return c.get_model_version(name, str(version))
    except MlflowException as e:
        if not _not_found(e):
            raise
        have = [str(v.version) for v in _versions(c, name)]
        raise RegistryError(f"model {name!r} has no version {version!r}; versions: {have or 'none'}") from e


def metric_value(mv: Any, metric: str) -> float | None:
    raw = mv.tags.get(f"metric.{metric}")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def list_versions(c: MlflowClient, name: str, metric: str) -> list[dict[str, Any]]:
    """One row per version, oldest first: aliases, primary metric, data version, created, run."""
    model = check_model(c, name)
    by_version: dict[str, list[str]] = {}
    for alias, v in (model.aliases or {}).items():
        by_version.setdefault(str(v), []).append(alias)
    return [{
        "version": str(mv.version),
        "aliases": sorted(by_version.get(str(mv.version), [])),
        "metric": metric,
        "value": metric_value(mv, metric),
        "data_version": mv.tags.get("data_version", ""),
        "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(mv.creation_timestamp / 1000)),
        "run_id": mv.run_id or "",
        "promotion": mv.tags.get("promotion", ""),
    } for mv in _versions(c, name)]


@dataclass
class Promotion:
    name: str
    version: str
    promoted: bool
    reason: str
    previous_champion: str | None


def promote(c: MlflowClient, name: str, version: str, *, metric: str, margin: float,
            force: bool = False) -> Promotion:
    """Move alias ``champion`` to ``version`` if it beats the champion by ``margin`` (or ``force``)."""
    mv = get_version(c, name, version)
    version = str(mv.version)
    try:
        champ = c.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as e:
        if not _not_found(e):
            raise
        champ = None
    previous = str(champ.version) if champ is not None else None
    if previous == version:
        return Promotion(name, version, False, f"version {version} is already the champion", previous)
    ok, reason = decide_promotion(metric_value(mv, metric), metric_value(champ, metric) if champ else None, margin)
    reason = f"{metric}: {reason}"
    if not ok and force:
        ok, reason = True, f"forced: {reason}"
    if ok:
        c.set_registered_model_alias(name, CHAMPION, version)
    c.set_model_version_tag(name, version, "promotion", CHAMPION if ok else "candidate")
    c.set_model_version_tag(name, version, "promotion_reason", reason)
    logger.info("%s version %s: champion %s (%s)", name, version, ok, reason)
    return Promotion(name, version, ok, reason, previous)


def compare_runs(c: MlflowClient, run_ids: list[str]) -> dict[str, Any]:
    """Params that differ between the runs, and every metric (latest value), per run."""
    runs = []
    for rid in run_ids:
        try:
            runs.append(c.get_run(rid))
        except MlflowException as e:
            if not _not_found(e):
                raise
            raise RegistryError(f"no MLflow run with id {rid!r} in this store (run ids are printed by "
                                "`mar run` and listed by `mar models list`)") from e
    keys = sorted(set().union(*(r.data.params for r in runs)))
    params = {k: [r.data.params.get(k) for r in runs] for k in keys}
    differing = {k: v for k, v in params.items() if len(set(v)) > 1}
    mkeys = sorted(set().union(*(r.data.metrics for r in runs)))
    metrics = {k: [r.data.metrics.get(k) for r in runs] for k in mkeys}
    return {"runs": [{"run_id": r.info.run_id, "run_name": r.info.run_name or ""} for r in runs],
            "params": differing, "same_params": len(keys) - len(differing), "metrics": metrics}
