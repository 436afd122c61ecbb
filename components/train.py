"""train: fine-tune the MVD video ViT on the clip shards; per-epoch metrics reach MLflow live."""


import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from mvd.config import Config
from mvd.shards import ShardReader
from mvd.train import train

from . import tracking

logger = logging.getLogger(__name__)


def _copy_tree(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        if p.is_file():
            shutil.copy2(p, dst / p.name)


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
    run_id = tracking.start_run(
        tracking_uri, experiment, run_name, cfg.flat(), artifact_root,
        tags={"data_version": data_version, "kfp_run_id": kfp_run_id, "labels": json.dumps(labels)},
    )
    c = tracking.client(tracking_uri)
    c.log_dict(run_id, cfg.to_dict(), "config.json")
    work = Path(checkpoints_out)
    if _gpu_count() > 1 and "WORLD_SIZE" not in os.environ:
        result = _train_torchrun(crops, cfg, work, labels, data_version, _gpu_count())
        for row in result["history"]:
            tracking.log_metrics(c, run_id, {k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
    else:
        r = train(cfg, crops / "clips", work, labels=labels, data_version=data_version,
                  callback=tracking.EpochLogger(tracking_uri, run_id))
        result = {"best_metric": r.best_metric, "best_epoch": r.best_epoch, "history": r.history}
    _copy_tree(work / "best", Path(model_out))
    tracking.log_metrics(c, run_id, {"best_val_macro_f1": result["best_metric"], "best_epoch": result["best_epoch"]})
    return {"mlflow_run_id": run_id, **result}


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
