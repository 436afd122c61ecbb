"""train: fine-tune the MVD video ViT on the clip shards; per-epoch metrics reach MLflow live."""


import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException

from mvd.atomic import atomic_copy_tree
from mvd.config import Config
from mvd.shards import ShardReader
from mvd.train import train

from . import tracking
from .manifest import write_json

logger = logging.getLogger(__name__)

STATE_FILE = "train_state.json"  # beside the checkpoints: what a later run needs to resume this one


def _copy_tree(src: Path, dst: Path) -> None:
    atomic_copy_tree(src, dst)


def _plain_config(cfg: Config) -> dict[str, Any]:
    d = cfg.to_dict()
    d["train"] = {**d["train"], "resume": ""}
    return d


def _epoch(ckpt: Path) -> int:
    m = re.search(r"epoch(\d+)", ckpt.name)
    return int(m.group(1)) if m else -1


def find_resume_checkpoint(checkpoints_out: Path, cfg: Config, data_version: str, c: Any) -> Path | None:
    """The newest checkpoint of an earlier, unfinished training with the same configuration and
    data version, in the sibling pipeline runs of the local pipeline root (env MAR_PIPELINE_ROOT,
    set by ``mar run``); None elsewhere. A training is unfinished when neither it nor a run that
    resumed it wrote a ``last/`` model; one whose MLflow run is still RUNNING (alive) is never taken."""
    root = os.environ.get("MAR_PIPELINE_ROOT", "")
    if not root:
        return None
    root, here = Path(root).resolve(), checkpoints_out.resolve()
    try:
        rel = here.relative_to(root)
    except ValueError:
        return None
    if len(rel.parts) < 2:
        return None
    want = _plain_config(cfg)
    states: dict[Path, dict[str, Any]] = {}
    for state_file in root.glob("/".join(("*", *rel.parts[1:], STATE_FILE))):
        try:
            states[state_file.parent.resolve()] = json.loads(state_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
    continued: dict[Path, list[Path]] = {}  # training dir -> the dirs of runs that resumed it
    for work, state in states.items():
        if state.get("resumed_from"):
            continued.setdefault(Path(state["resumed_from"]).resolve().parent.parent, []).append(work)

    def done(work: Path, seen: frozenset = frozenset()) -> bool:  # finished, itself or by a continuation
        return (work / "last").exists() or any(done(w, seen | {work}) for w in continued.get(work, []) if w not in seen)

    found: list[Path] = []
    for work, state in states.items():
        if work == here or done(work):
            continue
        if state.get("config") != want or state.get("data_version") != data_version:
            continue
        try:
            if c.get_run(state["mlflow_run_id"]).info.status == "RUNNING":
                continue
        except (KeyError, MlflowException):
            pass
        found += (work / "checkpoints").glob("checkpoint-epoch*.pt")
    if not found:
        return None
    return max(found, key=lambda p: (_epoch(p), p.stat().st_mtime))


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_train(
    crops_dir: str | Path,
    cfg: Config,
    model_out: str | Path,
    checkpoints_out: str | Path,
    *,
    tracking_uri: str,
    experiment: str,
    run_name: str = "",
    artifact_root: str = "",
    kfp_run_id: str = "",
) -> dict[str, Any]:
    """Trains; writes the best model (safetensors + card) to ``model_out``; returns a summary."""
    crops = Path(crops_dir)
    reader = ShardReader(crops / "clips")
    labels = reader.index["labels"]
    data_version = reader.index.get("data_version", "")
    work = Path(checkpoints_out)
    c = tracking.client(tracking_uri)
    tracking.end_orphaned_runs(c, tracking.ensure_experiment(c, experiment, artifact_root))
    tags = {"data_version": data_version, "kfp_run_id": kfp_run_id, "labels": json.dumps(labels)}
    resume = None if cfg.train.resume else find_resume_checkpoint(work, cfg, data_version, c)
    if resume is not None:
        logger.info("resuming the unfinished training of an earlier run from %s", resume)
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, resume=str(resume)))
        tags["resumed_from"] = str(resume)
    run_id = tracking.start_run(tracking_uri, experiment, run_name, cfg.flat(), artifact_root, tags=tags)
    try:
        c.log_dict(run_id, cfg.to_dict(), "config.json")
        write_json(work / STATE_FILE, {"config": _plain_config(cfg), "data_version": data_version,
                                        "mlflow_run_id": run_id, "resumed_from": str(resume or "")})
        if resume is not None:
            _continue_from(resume, work, c, run_id)
        if _gpu_count() > 1 and "WORLD_SIZE" not in os.environ:
            result = _train_torchrun(crops, cfg, work, labels, data_version, _gpu_count())
            for row in result["history"]:
                tracking.log_metrics(c, run_id, {k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
        else:
            r = train(cfg, crops / "clips", work, labels=labels, data_version=data_version,
                      callback=tracking.EpochLogger(tracking_uri, run_id))
            result = {"best_metric": r.best_metric, "best_epoch": r.best_epoch, "history": r.history}
        _copy_tree(work / "best", Path(model_out))
        tracking.log_metrics(c, run_id, {"best_val_macro_f1": result["best_metric"],
                                         "best_epoch": result["best_epoch"]})
    except BaseException as e:
        killed = isinstance(e, (KeyboardInterrupt, SystemExit))
        tracking.end_run(c, run_id, "KILLED" if killed else "FAILED", f"train: {type(e).__name__}: {e}")
        raise
    return {"mlflow_run_id": run_id, **result}


def _continue_from(ckpt: Path, work: Path, c: Any, run_id: str) -> None:
    """Start a resumed training where the earlier one stood: its best model so far (the trainer
    saves ``best/`` only on improvement) and its per-epoch curves on the new MLflow run."""
    import torch

    earlier = ckpt.parent.parent
    if (earlier / "best").is_dir():
        atomic_copy_tree(earlier / "best", work / "best")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    for row in state.get("history", []):
        tracking.log_metrics(c, run_id, {k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))


def _train_torchrun(crops: Path, cfg: Config, work: Path, labels: list[str], data_version: str, nproc: int) -> dict:
    """Multi-GPU on one node: re-launch ``mvd.train`` under torchrun (DDP)."""
    cfg_path = work / "config.json"
    work.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(cfg.to_json())
    out_json = work / "result.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "components.train", str(crops / "clips"), str(cfg_path), str(work), json.dumps(labels),
           data_version, str(out_json)]
    logger.info("launching DDP training on %d GPUs", nproc)
    subprocess.run(cmd, check=True)
    return json.loads(out_json.read_text())


def _ddp_main(argv: list[str]) -> None:
    from mvd.config import config_from_json

    clips, cfg_path, work, labels, data_version, out_json = argv
    cfg = config_from_json(Path(cfg_path).read_text())
    r = train(cfg, clips, work, labels=json.loads(labels), data_version=data_version)
    if int(os.environ.get("RANK", "0")) == 0:
        Path(out_json).write_text(json.dumps({"best_metric": r.best_metric, "best_epoch": r.best_epoch,
                                              "history": r.history}))


if __name__ == "__main__":
    _ddp_main(sys.argv[1:])


# ----------------------------------------------------------------------------- KFP component
from kfp import dsl  # noqa: E402
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output  # noqa: E402

from .common import kfp_compile_time  # noqa: E402
from .images import GPU_IMAGE  # noqa: E402


if kfp_compile_time():
    @dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
    def train_op(
        config_json: str,
        crops: Input[Dataset],
        tracking_uri: str,
        experiment: str,
        run_name: str,
        artifact_root: str,
        kfp_run_id: str,
        model: Output[Model],
        checkpoints: Output[Artifact],
        metrics: Output[Metrics],
    ) -> str:
        """Fine-tune the MVD ViT; returns the MLflow run id."""
        from components.common import setup
        from components.train import run_train

        cfg = setup(config_json)
        s = run_train(crops.path, cfg, model.path, checkpoints.path, tracking_uri=tracking_uri, experiment=experiment,
                      run_name=run_name, artifact_root=artifact_root, kfp_run_id=kfp_run_id)
        metrics.log_metric("best_val_macro_f1", float(s["best_metric"]))
        metrics.log_metric("best_epoch", float(s["best_epoch"]))
        model.metadata.update({"arch": cfg.model.arch, "mlflow_run_id": s["mlflow_run_id"]})
        return s["mlflow_run_id"]
