"""The KFP components: one ``@dsl.component`` per stage, each a thin wrapper that parses its inputs,
calls the stage's plain function in :mod:`components` and records its outputs.

A component's body is what runs in the pod: KFP copies the function's source into the compiled
pipeline, so every import a body needs is inside it, and this module itself is only imported where
pipelines are built (``pipeline.dag``, ``pipeline.score_dag``, tests).
"""

from typing import List, NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from pipeline.images import CPU_IMAGE, GPU_IMAGE


# ----------------------------------------------------------------------------- ingest
@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def ingest_op(source: str, config_json: str, manifest: Output[Dataset], report: Output[Artifact]):
    """Read the Supervisely project (directory, s3:// or sly://), validate, split; write the manifest."""
    import json

    from components.common import setup
    from components.ingest import run_ingest

    cfg = setup(config_json)
    m = run_ingest(source, cfg, manifest.path, report.path)
    with open(report.path) as f:
        shape = json.load(f)["shape"]
    manifest.metadata.update({"data_version": m.data_version, "videos": len(m.videos), "shape": shape,
                              "train": len(m.split("train")), "val": len(m.split("val")),
                              "test": len(m.split("test"))})


# ----------------------------------------------------------------------------- check-data
@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def check_data_op(
    config_json: str,
    manifest: Input[Dataset],
    tracking_uri: str,
    force: bool,
) -> NamedTuple("CheckData", [("decision", str), ("reason", str)]):
    """Decide "train" or "skip": skip when the latest registered model already saw this data version."""
    from typing import NamedTuple

    from components.check_data import run_check_data
    from components.common import setup

    cfg = setup(config_json)
    d = run_check_data(manifest.path, cfg, tracking_uri=tracking_uri, force=force)
    out = NamedTuple("CheckData", [("decision", str), ("reason", str)])
    return out(d.decision, d.reason)

@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def skip_op(reason: str) -> str:
    """Stand in for register when nothing was trained; returns {"skipped": true, "reason": ...}."""
    import json
    import logging

    logging.basicConfig(level=logging.INFO)
    logging.getLogger("components.check_data").info("skipped: %s", reason)
    return json.dumps({"skipped": True, "reason": reason})


# ----------------------------------------------------------------------------- bbox-crop
@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def bbox_crop_op(config_json: str, manifest: Input[Dataset], crops: Output[Dataset]):
    """Mouse boxes per frame, training clips cropped and packed into shards, test-video boxes."""
    from components.bbox_crop import run_bbox_crop
    from components.common import setup

    cfg = setup(config_json)
    s = run_bbox_crop(manifest.path, cfg, crops.path)
    crops.metadata.update({"windows_per_class": s["windows_per_class"], "failures": len(s["failures"]),
                           "videos_reused": s["cache"]["videos_reused"],
                           "videos_computed": s["cache"]["videos_computed"]})


# ----------------------------------------------------------------------------- train
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


# ----------------------------------------------------------------------------- benchmark
@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def benchmark_op(
    config_json: str,
    model: Input[Model],
    manifest: Input[Dataset],
    crops: Input[Dataset],
    ingest_report: Input[Artifact],
    tracking_uri: str,
    mlflow_run_id: str,
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    report: Output[HTML],
    predictions: Output[Dataset],
    results: Output[Artifact],
):
    """Sliding-window benchmark on the full test videos."""
    from components.integrations import tracking
    from components.benchmark import headline, run_benchmark
    from components.common import setup
    from mvd.manifest import write_json

    cfg = setup(config_json)
    r = run_benchmark(model.path, manifest.path, crops.path, cfg, predictions.path, report.path,
                      ingest_report=ingest_report.path)
    labels = r["labels"]
    for k, v in r["summary"].items():
        metrics.log_metric(k, float(v))
    confusion.log_confusion_matrix(list(labels), r["frame"]["confusion"])
    write_json(results.path, {"headline": headline(r, labels), "summary": r["summary"]})
    c = tracking.client(tracking_uri)
    tracking.log_metrics(c, mlflow_run_id, r["summary"])
    c.log_artifact(mlflow_run_id, report.path, "benchmark")
    c.log_artifact(mlflow_run_id, str(predictions.path), "benchmark")
    c.log_dict(mlflow_run_id, r["left_out"], "benchmark/left_out.json")
    c.set_tag(mlflow_run_id, "videos_left_out", str(len(r["left_out"])))


# ----------------------------------------------------------------------------- register
@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def register_op(
    config_json: str,
    model: Input[Model],
    results: Input[Artifact],
    report: Input[HTML],
    predictions: Input[Dataset],
    tracking_uri: str,
    mlflow_run_id: str,
    kfp_run_id: str,
) -> str:
    """Register an MLflow model version; returns a JSON summary of the run."""
    import json

    from components.common import setup
    from components.register import run_register

    cfg = setup(config_json)
    res = json.loads(open(results.path).read())
    reg = run_register(model.path, res, cfg, tracking_uri=tracking_uri, mlflow_run_id=mlflow_run_id,
                       kfp_run_id=kfp_run_id, report=report.path)
    artifacts = {"predictions": predictions.path, "report": report.path,
                 "predictions_uri": predictions.uri, "report_uri": report.uri, "model_uri": model.uri}
    return json.dumps({**reg, "metrics": res["headline"], "artifacts": artifacts})


# ----------------------------------------------------------------------------- score
@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def plan_score_op(videos: str, model: str, metadata: str, shards: int, tracking_uri: str,
                  plan: Output[Artifact]) -> list:
    """List the videos, check the metadata against them, pin the model and split the videos into shards
    (returned, each with the pinned model, for the ParallelFor)."""
    from components.common import setup
    from components.score import plan_score
    from mvd.manifest import write_json

    setup("{}")
    p = plan_score(videos, model, metadata=metadata, shards=shards, tracking_uri=tracking_uri)
    write_json(plan.path, p)
    return [{**s, "model": p["model"]["uri"]} for s in p["shards"]]

@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def score_shard_op(shard: dict, cache: str, tracking_uri: str, scored: Output[Dataset]):
    """Detection, sliding window and the model's own post-processing on the videos of one shard."""
    from components.common import setup
    from components.score import score_shard

    setup("{}")
    s = score_shard(shard["model"], shard, scored.path, cache=cache, tracking_uri=tracking_uri)
    scored.metadata.update({"videos": len(s["videos"]), "failures": len(s["failures"])})

@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def gather_score_op(plan: Input[Artifact], scored: Input[List[Dataset]], bin_s: float, tracking_uri: str,
                    experiment: str, run_name: str, artifact_root: str, videos: str,
                    cohort: Output[Dataset], report: Output[HTML]) -> str:
    """Cohort table, report and per-video files, logged to an MLflow run tagged with the model version."""
    import json
    from pathlib import Path

    from components.common import setup
    from components.score import gather_score, log_cohort

    setup("{}")
    p = json.loads(Path(plan.path).read_text())
    summary = gather_score(p, [s.path for s in scored], cohort.path, bin_s=bin_s, report=report.path)
    summary["mlflow_run_id"] = log_cohort(
        tracking_uri, experiment, run_name, cohort.path, summary, report=report.path, artifact_root=artifact_root,
        params={"videos": videos, "shards": len(p["shards"]), "metadata": p.get("metadata", "")})
    summary["artifacts"] = {"cohort": cohort.path, "report": report.path}
    return json.dumps(summary)
