"""Run the real DAG on this machine with ``kfp.local`` (one process per component)."""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mvd.config import Config

logger = logging.getLogger(__name__)


class PipelineFailed(RuntimeError):
    """A DAG task failed; the message gives the task and its error."""


class PreflightError(ValueError):
    """The run cannot work with these settings; found before any stage starts."""


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def preflight(source: str, cfg: Config) -> None:
    """Fail fast, before any process starts, on a source that cannot work."""
    from components.ingest import IngestError, tag_to_class
    from components.integrations.supervisely_project import ProjectError, read_project

    check_pretrained(cfg)
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


def check_pretrained(cfg: Config) -> None:
    """``model.pretrained`` must be a checkpoint that loads into the configured model (read with
    ``weights_only=True``): checked before ingest rather than found out after bbox-crop."""
    path = cfg.model.pretrained
    if not path:
        return
    if not Path(path).exists():
        raise PreflightError(f"model.pretrained={path}: the file does not exist. Point it at an MVD checkpoint "
                             "(.pth) or a model directory / .safetensors written by `mar import-checkpoint`")
    from mvd.train import build_model

    try:
        build_model(cfg, len(cfg.data.labels))
    except (ValueError, OSError, RuntimeError) as e:
        raise PreflightError(f"model.pretrained={path} cannot be used: {e}") from e


def check_tracking(tracking_uri: str) -> None:
    """A tracking server must answer, accept the environment's credentials and reach its artifact
    store before any stage starts (so a bad URI or password never leaves a half-made run)."""
    from components.integrations import tracking

    if not tracking.is_server(tracking_uri):
        return
    try:
        tracking.check_server(tracking_uri)
    except tracking.TrackingServerError as e:
        raise PreflightError(str(e)) from None


def run_local(source: str, cfg: Config, workdir: str | Path, *, run_id: str | None = None,
              experiment: str = "mouse-action-recognition", force: bool = False,
              artifact_root: str = "", tracking_uri: str = "") -> dict[str, Any]:
    """Run ingest → bbox-crop → train → benchmark → register locally; returns the run summary
    (``{"skipped": true, "reason": ...}`` when the data is unchanged and ``force`` is false).
    MLflow tracking goes to ``tracking_uri`` (default env MLFLOW_TRACKING_URI, else
    ``sqlite:///<workdir>/mlflow.db``); credentials for a server come from the environment only.
    MLflow artifacts of a new experiment go to ``artifact_root`` (a directory or ``s3://`` prefix;
    default ``<workdir>/mlartifacts`` for the local store, the server's own store for a server)."""
    from kfp import local

    from components.integrations.registry import resolve_tracking_uri
    from components.integrations.tracking import is_server

    from .dag import mar_pipeline

    work = Path(workdir).resolve()
    tracking_uri = resolve_tracking_uri(tracking_uri, work)
    check_tracking(tracking_uri)
    if not artifact_root and not is_server(tracking_uri):
        artifact_root = str(work / "mlartifacts")
    work.mkdir(parents=True, exist_ok=True)
    run_id = run_id or new_run_id()
    run_dir = work / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # component processes run this interpreter; make sure `python3` and our console scripts resolve to it
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    # what the component processes need to know about this run: its pipeline root (train resumes an
    # unfinished training found there), this process (owner of the MLflow run), where to put errors
    errors = run_dir / "errors"
    run_env = {"MAR_PIPELINE_ROOT": str(work / "kfp"), "MAR_DRIVER_PID": str(os.getpid()), "MAR_ERROR_DIR": str(errors)}
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(work / "kfp"))
    t0 = time.perf_counter()
    try:
        with _environ(run_env), _plain_output(not sys.stdout.isatty()):
            task = mar_pipeline(source=str(source), config_json=cfg.to_json(), tracking_uri=tracking_uri,
                                experiment=experiment, run_name=run_id,
                                artifact_root=artifact_root,
                                force=force)
    except RuntimeError as e:
        cause = root_cause(errors, str(e))
        _end_runs(tracking_uri, experiment, run_id, "FAILED", cause)
        raise PipelineFailed(f"the pipeline failed: {cause} (task logs above; task files under {work / 'kfp'})") from e
    except KeyboardInterrupt:
        _end_runs(tracking_uri, experiment, run_id, "KILLED", "interrupted")
        raise
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


def root_cause(errors: Path, kfp_message: str) -> str:
    """The error the failing task raised (recorded by ``components.common.record_errors``), else
    the task name from KFP's message."""
    records = []
    for f in sorted(errors.glob("*.json")) if errors.is_dir() else []:
        try:
            records.append(json.loads(f.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    if records:
        r = records[-1]
        return f"task {r['task']} failed: {r['type']}: {r['message']}"
    plain = ANSI.sub("", kfp_message)
    m = re.search(r"Inner task failed: '?([\w-]+)'?|Task '?([\w-]+)'? finished", plain)
    task = next((g for g in m.groups() if g), "") if m else ""
    return (f"task {task or '?'} failed without a Python error (killed by the system, e.g. out of memory?); "
            f"KFP said: {plain}")


def _end_runs(tracking_uri: str, experiment: str, run_name: str, status: str, reason: str) -> None:
    """Mark the MLflow run of this pipeline run (named ``run_name``) FAILED / KILLED if it is still RUNNING."""
    from components.integrations import tracking

    db = tracking.sqlite_path(tracking_uri)
    if db is not None and not db.is_file():
        return

    try:
        ended = tracking.end_named_runs(tracking_uri, experiment, run_name, status, reason)
    except Exception as e:  # noqa: BLE001 - never hide the pipeline's own error behind this one
        logger.warning("could not mark the MLflow run of %s %s: %s", run_name, status, e)
        return
    for rid in ended:
        logger.info("MLflow run %s marked %s", rid, status)


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _plain_output(plain: bool) -> Iterator[None]:
    """No ANSI colour codes in kfp.local's output (and the task logs it relays) when ``plain``."""
    if not plain:
        yield
        return
    from kfp.local import logging_utils

    colours = {k: v for k, v in vars(logging_utils.Color).items() if not k.startswith("_")}
    original_print = builtins.print

    def print_plain(*args, **kwargs):
        return original_print(*(ANSI.sub("", a) if isinstance(a, str) else a for a in args), **kwargs)

    for k in colours:
        setattr(logging_utils.Color, k, "")
    builtins.print = print_plain
    try:
        yield
    finally:
        builtins.print = original_print
        for k, v in colours.items():
            setattr(logging_utils.Color, k, v)


def run_score_local(videos: list[str], model: str, out: str | Path, *, metadata: str = "", shards: int = 2,
                    bin_s: float = 300.0, tracking_uri: str = "", cache: str | None = None,
                    experiment: str = "mouse-action-scoring") -> dict[str, Any]:
    """Run the cohort scoring DAG (plan → shards → gather) locally; the cohort outputs are copied to
    ``out`` (``videos/``, ``cohort.csv``, ``report.html``, ``summary.json``). The cache of scored videos
    defaults to ``out/cache``; MLflow defaults to ``sqlite:///<out>/mlflow.db`` (or $MLFLOW_TRACKING_URI)."""
    from kfp import local

    from mvd.cores import usable_cores

    from .score_dag import PARALLELISM, score_pipeline

    work = Path(out).resolve()
    work.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id()
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "") or f"sqlite:///{work / 'mlflow.db'}"
    cache = str(Path(cache).resolve()) if cache else str(work / "cache")
    items = [v if "://" in v else str(Path(v).resolve()) for v in videos]
    model = str(Path(model).resolve()) if Path(model).is_dir() else model
    metadata = str(Path(metadata).resolve()) if metadata and "://" not in metadata else metadata
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    errors = work / "runs" / run_id / "errors"
    run_env = {"MAR_DRIVER_PID": str(os.getpid()), "MAR_ERROR_DIR": str(errors)}
    if "OMP_NUM_THREADS" not in os.environ:
        # kfp.local runs the shard tasks side by side on this machine: torch in each takes its share of the
        # cores (every one taking all of them oversubscribes the CPU: about 1.5x slower on 2 cores)
        run_env["OMP_NUM_THREADS"] = str(max(1, usable_cores() // max(1, min(shards, PARALLELISM))))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(work / "kfp"))
    t0 = time.perf_counter()
    try:
        with _environ(run_env), _plain_output(not sys.stdout.isatty()):
            task = score_pipeline(videos=json.dumps(items), model=model, metadata=metadata, shards=shards,
                                  bin_s=float(bin_s), cache=cache, tracking_uri=tracking_uri, experiment=experiment,
                                  run_name=run_id, artifact_root=str(work / "mlartifacts"))
    except RuntimeError as e:
        raise PipelineFailed(f"scoring failed: {root_cause(errors, str(e))} (task files under {work / 'kfp'})") from e
    summary = json.loads(task.output)
    arts = summary.pop("artifacts")
    shutil.copytree(arts["cohort"], work, dirs_exist_ok=True)
    shutil.copyfile(arts["report"], work / "report.html")
    summary.update(out=str(work), mlflow_tracking_uri=tracking_uri, wall_s=round(time.perf_counter() - t0, 1))
    return summary
