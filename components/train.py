"""train: fine-tune the MVD video ViT on the clip shards (per-epoch metrics reach MLflow live), then
fit the post-processing rules on the whole validation videos and write them, with the validation
figures, into the model card's inference contract."""


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

from mvd.atomic import atomic_copy_tree, write_text
from mvd.calibrate import ValVideo, fit_postprocess
from mvd.card import inference_spec
from mvd.config import Config, pinned_rules
from mvd.crops_index import read_crops_index
from mvd.manifest import read_manifest, write_json
from mvd.metrics import evaluate
from mvd.shards import ShardReader
from mvd.train import train
from mvd.weights import load_model, read_card, validate_card

from .integrations import tracking
from .scoring import score_records

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
                hit_tolerance_s=b.hit_tolerance_s, pinned=pinned_rules(cfg), objectives=b.objective)
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
        calib = None
        if manifest_dir is not None:
            calib = calibrate_model(work / "best", manifest_dir, crops, cfg)
            tracking.log_metrics(c, run_id, {f"val_{k}": v for k, v in calib.get("metrics", {}).items()})
            c.log_dict(run_id, calib, "calibration.json")
            c.set_tag(run_id, "calibration", calib["status"])
        _copy_tree(work / "best", Path(model_out))
        tracking.log_metrics(c, run_id, {"best_val_score": result["best_metric"], "best_epoch": result["best_epoch"]})
    except BaseException as e:
        killed = isinstance(e, (KeyboardInterrupt, SystemExit))
        tracking.end_run(c, run_id, "KILLED" if killed else "FAILED", f"train: {type(e).__name__}: {e}")
        raise
    return {"mlflow_run_id": run_id, "calibration": calib, **result}


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
