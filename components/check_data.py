"""check-data: train only when the data changed. Compares the manifest's data version with the
``data_version`` tag of the latest version of the registered model; ``force`` trains anyway.
When the DAG skips, ``pipeline.ops.skip_op`` stands in for register and returns ``{"skipped": true, "reason": ...}``."""


import logging
from pathlib import Path
from typing import NamedTuple

from mvd.config import Config

from mvd.manifest import read_manifest

logger = logging.getLogger(__name__)

TRAIN = "train"
SKIP = "skip"


class DataCheckError(RuntimeError):
    """The model registry could not be asked; the message names the tracking URI."""


class Decision(NamedTuple):
    decision: str  # TRAIN | SKIP
    reason: str


def latest_model_version(tracking_uri: str, model_name: str):
    """The highest-numbered version of ``model_name``, or None when it has none."""
    import mlflow

    from .integrations import tracking

    c = tracking.client(tracking_uri)
    try:
        versions = c.search_model_versions(f"name = '{model_name}'", max_results=1,
                                           order_by=["version_number DESC"])
    except mlflow.exceptions.MlflowException as e:
        raise DataCheckError(
            f"could not list the versions of registered model {model_name!r} at MLflow {tracking_uri}: {e}. "
            "Check that the tracking server is reachable and that the MLflow credentials are set.") from e
    return max(versions, key=lambda v: int(v.version)) if versions else None


def run_check_data(manifest_dir: str | Path, cfg: Config, *, tracking_uri: str, force: bool = False) -> Decision:
    """Decide whether this pipeline run trains (``"train"``) or stops after ingest (``"skip"``)."""
    data_version = read_manifest(manifest_dir).data_version
    name = cfg.register.model_name
    if force:
        d = Decision(TRAIN, f"force=true: training on data version {data_version} whatever the registry holds")
    elif not data_version:
        d = Decision(TRAIN, "the manifest carries no data version, so it cannot be compared")
    else:
        latest = latest_model_version(tracking_uri, name)
        if latest is None:
            d = Decision(TRAIN, f"registered model {name!r} has no version yet")
        else:
            seen = (latest.tags or {}).get("data_version", "")
            if seen == data_version:
                d = Decision(SKIP, f"no new data: {name} version {latest.version} was trained on data version "
                                   f"{data_version}; run with force=true to train anyway")
            else:
                d = Decision(TRAIN, f"data version {data_version} differs from {seen or 'none'} of "
                                    f"{name} version {latest.version}")
    logger.info("check-data: %s (%s)", d.decision, d.reason)
    return d
