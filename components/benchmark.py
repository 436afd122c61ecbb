"""benchmark: sliding-window inference over the full test videos; frame, event and count
metrics; per-video predictions (frames/bouts CSV); an HTML report; figures to MLflow."""


import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mvd.bouts import intervals_to_frame_labels
from mvd.config import Config
from mvd.infer import predict_video
from mvd.metrics import evaluate, metric_key, overlap_recall
from mvd.weights import load_model

from .manifest import read_manifest, write_json
from .report import write_bouts_csv, write_frames_csv, write_report

logger = logging.getLogger(__name__)


def run_benchmark(
    model_dir: str | Path,
    manifest_dir: str | Path,
    crops_dir: str | Path,
    cfg: Config,
    predictions_out: str | Path,
    report_out: str | Path,
    *,
    device: str | None = None,
) -> dict[str, Any]:
    """Scores every test video; returns ``evaluate``'s result (plus ``per_video`` timing)."""
    model, card = load_model(model_dir)
    labels = card["labels"]
    manifest = read_manifest(manifest_dir)
    if manifest.labels != labels:
        raise ValueError(f"model labels {labels} differ from the dataset's {manifest.labels}; "
                         "benchmark a model trained on this label map")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(dev)
    boxes_index = json.loads((Path(crops_dir) / "boxes.json").read_text())["boxes"]
    inp = card["input"]
    pred_dir = Path(predictions_out)
    pred_dir.mkdir(parents=True, exist_ok=True)
    y_true, probs, fps, names = [], [], [], []
    tests = manifest.split("test")
    if not tests:
        raise ValueError(f"manifest in {manifest_dir} has no test video; lower data.test_ratio or add videos")
    for rec in tests:
        b = boxes_index.get(rec.id)
        boxes = np.load(Path(crops_dir) / b["file"]) if b else None
        p = predict_video(model, Path(manifest_dir) / rec.file, boxes, num_frames=inp["num_frames"],
                          sampling_rate=inp["sampling_rate"], input_size=inp["img_size"], num_classes=len(labels),
                          stride=cfg.benchmark.stride, pad=cfg.data.pad_infer, batch_size=cfg.benchmark.batch_size,
                          device=dev, amp=cfg.train.amp, progress=True)
        truth = intervals_to_frame_labels(len(p), [(labels.index(i.label), i.start, min(i.end, len(p) - 1))
                                                   for i in rec.intervals if i.start < len(p)])
        y_true.append(truth)
        probs.append(p)
        fps.append(rec.fps)
        names.append(rec.name)
    b = cfg.benchmark
    result = evaluate(y_true, probs, labels, fps, names,
                      thresholds={k: v for k, v in b.thresholds.items()} or None,
                      min_bout={k: v for k, v in b.min_bout.items()} or None,
                      iou_thresholds=tuple(b.iou_thresholds), hit_tolerance_s=b.hit_tolerance_s)
    result["overlap_recall"] = {
        name: overlap_recall([[(i.start, i.end) for i in rec.intervals if i.label == name] for rec in tests],
                             result["pred_labels"], k)
        for k, name in enumerate(labels) if k != 0
    }
    for name, v in result["overlap_recall"].items():
        if v is not None:
            result["summary"][f"event_overlap_recall/{metric_key(name)}"] = v
    for i, name in enumerate(names):
        pred = np.asarray(result["pred_labels"][i])
        write_frames_csv(pred_dir / f"{name}.frames.csv", pred, probs[i], labels)
        write_bouts_csv(pred_dir / f"{name}.bouts.csv", result["pred_bouts"][i], fps[i])
    write_report(report_out, result, probs=probs, true_labels=y_true, fps=fps,
                 title=f"Benchmark: {card['arch']} on {len(names)} test videos",
                 model_info={"arch": card["arch"], "labels": labels, "data_version": card.get("data_version", "")})
    slim = {k: v for k, v in result.items() if k not in ("pred_labels",)}
    write_json(pred_dir / "metrics.json", slim)
    return result


def headline(result: dict[str, Any], labels: list[str]) -> dict[str, Any]:
    """The figures ``mar run --json`` prints: macro F1, per-class frame P/R/F1/support, and the
    twitch event recall (a true twitch is detected when a predicted twitch bout overlaps it)."""
    frame = result["frame"]
    per_class = {name: {k: frame["per_class"][name][k] for k in ("precision", "recall", "f1", "support")}
                 for name in labels}
    twitch = next((n for n in labels if "twitch" in n.lower()), None)
    twitch_recall = result["overlap_recall"].get(twitch) if twitch is not None else None
    events = {name: {crit: {k: v for k, v in vals.items() if k in ("precision", "recall", "f1", "ap")}
                     for crit, vals in result["events"]["per_class"][name].items() if isinstance(vals, dict)}
              for name in result["events"]["per_class"]}
    counts = result["counts"]["per_class"]
    return {"frame_macro_f1": frame["macro"]["f1"], "frame_weighted_f1": frame["weighted"]["f1"],
            "per_class": per_class, "twitch_event_recall": twitch_recall, "event_overlap_recall": result["overlap_recall"],
            "events": events, "counts": counts}


# ----------------------------------------------------------------------------- KFP component
from kfp import dsl  # noqa: E402
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output  # noqa: E402

from .common import kfp_compile_time  # noqa: E402
from .images import CPU_IMAGE  # noqa: E402


if kfp_compile_time():
    @dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
    def benchmark_op(
        config_json: str,
        model: Input[Model],
        manifest: Input[Dataset],
        crops: Input[Dataset],
        tracking_uri: str,
        mlflow_run_id: str,
        metrics: Output[Metrics],
        confusion: Output[ClassificationMetrics],
        report: Output[HTML],
        predictions: Output[Dataset],
        results: Output[Artifact],
    ):
        """Sliding-window benchmark on the full test videos."""
        from components import tracking
        from components.benchmark import headline, run_benchmark
        from components.common import setup
        from components.manifest import write_json

        cfg = setup(config_json)
        r = run_benchmark(model.path, manifest.path, crops.path, cfg, predictions.path, report.path)
        labels = r["labels"]
        for k, v in r["summary"].items():
            metrics.log_metric(k, float(v))
        confusion.log_confusion_matrix(list(labels), r["frame"]["confusion"])
        write_json(results.path, {"headline": headline(r, labels), "summary": r["summary"]})
        c = tracking.client(tracking_uri)
        tracking.log_metrics(c, mlflow_run_id, r["summary"])
        c.log_artifact(mlflow_run_id, report.path, "benchmark")
        c.log_artifact(mlflow_run_id, str(predictions.path), "benchmark")
