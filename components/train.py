"""train: fine-tune the MVD video ViT on the clip shards (per-epoch metrics reach MLflow live), then
fit the post-processing rules on the whole validation videos and write them, with the validation
figures, into the model card's inference contract."""


import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from mvd.atomic import write_text
from mvd.calibrate import ValVideo, fit_postprocess
from mvd.card import inference_spec
from mvd.config import Config, pinned_rules
from mvd.crops_index import read_crops_index
from mvd.manifest import read_manifest
from mvd.metrics import evaluate
from mvd.shards import ShardReader
from mvd.train import train
from mvd.weights import load_model, read_card, validate_card

from . import tracking
from .scoring import score_records

logger = logging.getLogger(__name__)


def _copy_tree(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        if p.is_file():
            shutil.copy2(p, dst / p.name)


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def calibrate_model(model_dir: str | Path, manifest_dir: str | Path, crops_dir: str | Path, cfg: Config, *,
                    device: str | None = None) -> dict[str, Any]:
    """Fit the post-processing on the manifest's validation videos and write it into the model card.

    Returns the card's ``inference.calibration``: ``status`` (``fitted`` / ``default``), the videos,
    per-class fit reports and the validation figures under the final rules (``metrics``). Without
    validation videos, or with ``benchmark.calibrate`` off, the default (and pinned) rules are kept
    and ``reason`` says why.
    """
    import torch

    model_dir = Path(model_dir)
    model, card = load_model(model_dir)
    labels = card["labels"]
    spec = inference_spec(card, str(model_dir))
    vals = read_manifest(manifest_dir).split("val")
    calib: dict[str, Any] = {"status": "default", "videos": [r.id for r in vals]}
    if not cfg.benchmark.calibrate:
        calib["reason"] = "benchmark.calibrate is off: default and pinned rules kept"
    elif not vals:
        calib["reason"] = ("no validation video (data.val_ratio, too few training videos, or a Training Data "
                           "project): default and pinned rules kept")
    else:
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model.to(dev)
        scored, failures = score_records(model, spec, manifest_dir, vals, read_crops_index(crops_dir), device=dev,
                                         amp=cfg.train.amp)
        calib["failures"] = failures
        if not scored:
            calib["reason"] = f"no validation video could be scored ({failures}): default and pinned rules kept"
        else:
            b = cfg.benchmark
            post, per_class = fit_postprocess(
                [ValVideo(s.name, s.labelled.probs, s.true_bouts, s.labelled.info.fps) for s in scored], labels,
                hit_tolerance_s=b.hit_tolerance_s, pinned=pinned_rules(cfg))
            r = evaluate([s.truth for s in scored], [s.labelled.probs for s in scored], labels,
                         [s.labelled.info.fps for s in scored], [s.name for s in scored], post=post,
                         iou_thresholds=tuple(b.iou_thresholds), hit_tolerance_s=b.hit_tolerance_s,
                         true_bouts=[s.true_bouts for s in scored])
            spec.postprocess = post
            calib.update(status="fitted" if any(v["status"] == "fitted" for v in per_class.values()) else "default",
                         per_class=per_class, metrics=r["summary"])
            if calib["status"] == "default":
                calib["reason"] = "; ".join(v.get("reason", "") for v in per_class.values())
    if "reason" in calib:
        logger.warning("post-processing not fitted for %s: %s", model_dir, calib["reason"])
    spec.calibration = calib
    card = read_card(model_dir)
    card["inference"] = spec.to_dict()
    validate_card(card, str(model_dir / "model_card.json"))
    write_text(model_dir / "model_card.json", json.dumps(card, indent=2, sort_keys=True) + "\n")
    return calib


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
    manifest_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Trains; fits the post-processing on the validation videos of ``manifest_dir`` (when given);
    writes the best model (safetensors + card) to ``model_out``; returns a summary."""
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
    calib = None
    if manifest_dir is not None:
        calib = calibrate_model(work / "best", manifest_dir, crops, cfg)
        tracking.log_metrics(c, run_id, {f"val_{k}": v for k, v in calib.get("metrics", {}).items()})
        c.log_dict(run_id, calib, "calibration.json")
        c.set_tag(run_id, "calibration", calib["status"])
    _copy_tree(work / "best", Path(model_out))
    tracking.log_metrics(c, run_id, {"best_val_score": result["best_metric"], "best_epoch": result["best_epoch"]})
    return {"mlflow_run_id": run_id, "calibration": calib, **result}


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
        manifest: Input[Dataset],
        tracking_uri: str,
        experiment: str,
        run_name: str,
        artifact_root: str,
        kfp_run_id: str,
        model: Output[Model],
        checkpoints: Output[Artifact],
        metrics: Output[Metrics],
    ) -> str:
        """Fine-tune the MVD ViT, then fit the post-processing on the validation videos; returns the MLflow run id."""
        from components.common import setup
        from components.train import run_train

        cfg = setup(config_json)
        s = run_train(crops.path, cfg, model.path, checkpoints.path, tracking_uri=tracking_uri, experiment=experiment,
                      run_name=run_name, artifact_root=artifact_root, kfp_run_id=kfp_run_id,
                      manifest_dir=manifest.path)
        metrics.log_metric("best_val_score", float(s["best_metric"]))
        metrics.log_metric("best_epoch", float(s["best_epoch"]))
        calib = s["calibration"] or {}
        for k, v in calib.get("metrics", {}).items():
            metrics.log_metric(f"val_{k}", float(v))
        model.metadata.update({"arch": cfg.model.arch, "mlflow_run_id": s["mlflow_run_id"],
                               "calibration": calib.get("status", "none")})
        return s["mlflow_run_id"]
