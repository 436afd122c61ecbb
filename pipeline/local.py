"""Run the real DAG on this machine with ``kfp.local`` (one process per component)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from mvd.config import Config

logger = logging.getLogger(__name__)


class PipelineFailed(RuntimeError):
    """A DAG task failed; the message points at its log."""


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def preflight(source: str, cfg: Config) -> None:
    """Fail fast, before any process starts, on a source that cannot work."""
    from components.ingest import IngestError, tag_to_class
    from components.supervisely_project import ProjectError, read_project

    if "://" in source:
        return
    try:
        items, _ = read_project(source, cfg.data.box_class)
    except ProjectError as e:
        raise IngestError(str(e)) from e
    actions = cfg.data.labels[1:]
    tagged = [it for it in items if any(tag_to_class(t, cfg.data.labels, cfg.data.tag_map) in actions
                                        for t, _, _ in it.tags)]
    if not tagged:
        raise IngestError(
            f"source {source} is a Supervisely video project with {len(items)} video(s), but none has an action tag. "
            f"Expected frame-range tags named like {actions} (matched case-insensitively by prefix; "
            "other names can be mapped with --set data.tag_map.<tag>=<class>).")


def run_local(source: str, cfg: Config, workdir: str | Path, *, run_id: str | None = None,
              experiment: str = "mouse-action-recognition", force: bool = False,
              artifact_root: str = "") -> dict[str, Any]:
    """Run ingest → bbox-crop → train → benchmark → register locally; returns the run summary
    (``{"skipped": true, "reason": ...}`` when the data is unchanged and ``force`` is false).
    MLflow artifacts of a new experiment go to ``artifact_root`` (a directory or ``s3://`` prefix;
    default ``<workdir>/mlartifacts``)."""
    from kfp import local

    from .dag import mar_pipeline

    work = Path(workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    run_id = run_id or new_run_id()
    run_dir = work / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    tracking_uri = f"sqlite:///{work / 'mlflow.db'}"
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # component processes run this interpreter; make sure `python3` and our console scripts resolve to it
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(work / "kfp"))
    t0 = time.perf_counter()
    try:
        task = mar_pipeline(source=str(source), config_json=cfg.to_json(), tracking_uri=tracking_uri,
                            experiment=experiment, run_name=run_id,
                            artifact_root=artifact_root or str(work / "mlartifacts"),
                            force=force)
    except RuntimeError as e:
        raise PipelineFailed(f"the pipeline failed: {e}. The failing task's log is printed above; "
                             f"its files are under {work / 'kfp'}") from e
    reg = json.loads(task.output)
    if reg.get("skipped"):
        logger.info("skipped: %s", reg["reason"])
        skipped = {"run_id": run_id, "workdir": str(work), "mlflow_tracking_uri": tracking_uri, "skipped": True,
                   "reason": reg["reason"], "wall_s": round(time.perf_counter() - t0, 1)}
        (run_dir / "summary.json.tmp").write_text(json.dumps(skipped, indent=1))
        os.replace(run_dir / "summary.json.tmp", run_dir / "summary.json")
        return skipped
    arts = reg.pop("artifacts")
    report = run_dir / "report.html"
    shutil.copyfile(arts["report"], report)
    predictions = run_dir / "predictions"
    if predictions.exists():
        shutil.rmtree(predictions)
    shutil.copytree(arts["predictions"], predictions)
    summary = {
        "run_id": run_id,
        "workdir": str(work),
        "mlflow_tracking_uri": tracking_uri,
        "mlflow_run_id": reg["mlflow_run_id"],
        "model_name": reg["model_name"],
        "model_version": reg["model_version"],
        "promoted": reg["promoted"],
        "promotion_reason": reg["reason"],
        "metrics": reg["metrics"],
        "artifacts": {"predictions": str(predictions), "report": str(report), "model": arts["model_uri"]},
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, run_dir / "summary.json")
    return summary
