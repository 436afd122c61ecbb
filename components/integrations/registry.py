"""Model registry queries and decisions behind ``mar models`` and ``mar runs``.

Versions carry the tags written by ``components.register`` (``metric.<name>``, ``data_version``,
``promotion``); aliases ``candidate`` and ``champion`` point at versions.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from . import tracking

logger = logging.getLogger(__name__)

CHAMPION = "champion"


class RegistryError(ValueError):
    """Unknown model, version or run, or no tracking store; the message says what exists."""



def lower_is_better(metric: str) -> bool:
    """Direction of a metric: count errors (``count_mae``, ``count_total_error``) and anything naming an
    error, MAE or loss are lower-is-better; every other metric (F1, precision, recall, accuracy, AP,
    count ICC and Pearson r) is higher-is-better."""
    m = metric.lower()
    if m.startswith(("count_icc", "count_pearson_r")):
        return False
    return m.startswith("count_") or any(w in m for w in ("error", "mae", "loss"))


def decide_promotion(new: float | None, champion: float | None, margin: float, metric: str = "",
                     missing_classes: Sequence[str] = ()) -> tuple[bool, str]:
    """Whether the new version becomes champion, and why. ``missing_classes``: classes the champion
    has scores for and the new version has none (its benchmark lacked them); never promoted then."""
    if missing_classes:
        return False, (f"new version has no score for {list(missing_classes)}, which the champion is scored on "
                       "(its test videos have no such events?); not promoted automatically, promote it by hand "
                       "with --force if intended")
    if new is None or not math.isfinite(new):
        return False, "new version has no primary metric"
    if champion is None:
        return True, f"no champion yet; new version scores {new:.4f}"
    lower = lower_is_better(metric)
    beats = new < champion - margin if lower else new > champion + margin
    direction = " (lower is better)" if lower else ""
    if beats:
        return True, f"{new:.4f} beats champion {champion:.4f} by more than margin {margin}{direction}"
    return False, f"{new:.4f} does not beat champion {champion:.4f} by more than margin {margin}{direction}"


def resolve_tracking_uri(tracking_uri: str = "", workdir: str | os.PathLike[str] = "work") -> str:
    """``tracking_uri``, else env MLFLOW_TRACKING_URI, else ``sqlite:///<workdir>/mlflow.db``."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "") or f"sqlite:///{Path(workdir).resolve() / 'mlflow.db'}"


def open_store(tracking_uri: str) -> MlflowClient:
    """An MLflow client; a ``sqlite:`` store must already exist (never create an empty one), a server
    must answer and accept the environment's credentials."""
    try:
        path = tracking.sqlite_path(tracking_uri)
    except ValueError as e:
        raise RegistryError(str(e)) from e
    if path is not None and not path.is_file():
        raise RegistryError(f"no MLflow store at {path} (tracking URI {tracking_uri}): run `mar run` (or `mar demo`) "
                            "with that --workdir first, or pass the right --tracking-uri / set MLFLOW_TRACKING_URI")
    if tracking.is_server(tracking_uri):
        try:
            tracking.check_server(tracking_uri, artifacts=False)
        except tracking.TrackingServerError as e:
            raise RegistryError(str(e)) from None
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


# per-class scores: a class is "scored" by a version when one of these keys exists for it
CLASS_SCORE_PREFIXES = ("frame_f1/", "event_hit_f1/")


def scored_classes(metrics: Mapping[str, float]) -> set[str]:
    return {k.split("/", 1)[1] for k, v in metrics.items()
            if k.startswith(CLASS_SCORE_PREFIXES) and v is not None and math.isfinite(v)}


def version_metrics(c: MlflowClient, mv: Any) -> dict[str, float]:
    """A version's metrics at full precision: its run's metrics over its ``metric.*`` tags."""
    out: dict[str, float] = {}
    for k, raw in mv.tags.items():
        if k.startswith("metric."):
            try:
                out[k[len("metric."):]] = float(raw)
            except ValueError:
                pass
    if mv.run_id:
        try:
            run_metrics = c.get_run(mv.run_id).data.metrics
        except MlflowException as e:
            if not _not_found(e):
                raise
            run_metrics = {}
        out.update(run_metrics)
    return out


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
        "lower_is_better": lower_is_better(metric),
    } for mv in _versions(c, name)]


@dataclass
class Promotion:
    name: str
    version: str
    promoted: bool
    reason: str
    previous_champion: str | None


def promote(c: MlflowClient, name: str, version: str, *, metric: str, margin: float,
            force: bool = False, tracking_uri: str = "") -> Promotion:
    """Move alias ``champion`` to ``version`` if it beats the champion by ``margin`` (or ``force``)."""
    mv = get_version(c, name, version)
    return set_champion(c, name, str(mv.version), metric=metric, margin=margin, force=force,
                        tracking_uri=tracking_uri, label=f"{metric}: ")


def _lock_path(tracking_uri: str) -> Path | None:
    db = tracking.sqlite_path(tracking_uri) if tracking_uri else None
    return None if db is None else db.with_name(db.name + ".registry.lock")


@contextlib.contextmanager
def _registry_lock(tracking_uri: str) -> Iterator[bool]:
    """Serialise champion decisions on a local sqlite store (yields True); elsewhere yields False."""
    path = _lock_path(tracking_uri)
    if path is None:
        yield False
        return
    with tracking.file_lock(path):
        yield True


def _champion(c: MlflowClient, name: str) -> Any:
    try:
        return c.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as e:
        if _not_found(e) or "not found" in str(e):  # sqlite says INVALID_PARAMETER_VALUE for a missing alias
            return None
        raise


def set_champion(c: MlflowClient, name: str, version: str, *, metric: str, margin: float,
                 new_metrics: Mapping[str, float] | None = None, force: bool = False, tracking_uri: str = "",
                 label: str = "") -> Promotion:
    """Compare ``version`` with the champion and move the alias if it wins, as one step: on a
    sqlite store under a file lock beside the database, so that of two runs finishing together
    the second compares with the first's result; on a server, the alias is read back after a
    short wait (MAR_PROMOTION_SETTLE_S, default 2 s) and a version that finds another one there
    records that it was not promoted. Tags ``promotion`` and ``promotion_reason`` on the version."""
    version = str(version)
    tracking_uri = tracking_uri or getattr(c, "_registry_uri", "") or ""
    with _registry_lock(tracking_uri) as locked:
        champ = _champion(c, name)
        previous = str(champ.version) if champ is not None else None
        if previous == version:
            return Promotion(name, version, False, f"version {version} is already the champion", previous)
        new = dict(new_metrics) if new_metrics is not None else version_metrics(c, c.get_model_version(name, version))
        old = version_metrics(c, champ) if champ is not None else {}
        missing = sorted(scored_classes(old) - scored_classes(new)) if champ is not None else []
        ok, reason = decide_promotion(new.get(metric), old.get(metric) if champ is not None else None, margin,
                                      metric=metric, missing_classes=missing)
        reason = f"{label}{reason}"
        if not ok and force:
            ok, reason = True, f"forced: {reason}"
        if ok:
            c.set_registered_model_alias(name, CHAMPION, version)
            if not locked:
                time.sleep(float(os.environ.get("MAR_PROMOTION_SETTLE_S", "2")))
                now = _champion(c, name)
                if now is not None and str(now.version) != version:
                    ok, reason = False, (f"{reason}; but version {now.version} was made champion by a concurrent "
                                         "registration, so this version stays candidate")
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
