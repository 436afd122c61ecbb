"""benchmark: sliding-window inference over the full test videos; frame, event and count
metrics; per-video predictions (frames/bouts CSV); an HTML report; figures to MLflow."""


import json
import logging
from pathlib import Path
from typing import Any

import torch

from mvd.card import inference_spec
from mvd.config import Config
from mvd.crops_index import read_crops_index
from mvd.labels import action_indices
from mvd.manifest import read_manifest, write_json
from mvd.metrics import evaluate, metric_key, overlap_recall
from mvd.weights import load_model

from .report import write_bouts_csv, write_frames_csv, write_report
from .scoring import score_records

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
    ingest_report: str | Path | None = None,
) -> dict[str, Any]:
    """Scores every test video under the model card's inference contract (window, stride, crop pad,
    post-processing); returns ``evaluate``'s result plus ``overlap_recall``, ``failures`` (test
    videos that could not be scored) and ``left_out`` (every video left out by ingest, bbox-crop or
    the benchmark, with the stage and the reason)."""
    model, card = load_model(model_dir)
    labels = card["labels"]
    spec = inference_spec(card, str(model_dir))
    manifest = read_manifest(manifest_dir)
    if manifest.labels != labels:
        raise ValueError(f"model labels {labels} differ from the dataset's {manifest.labels}; "
                         "benchmark a model trained on this label map")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(dev)
    tests = manifest.split("test")
    if not tests:
        raise ValueError(f"manifest in {manifest_dir} has no test video; lower data.test_ratio or add videos")
    index = read_crops_index(crops_dir)
    scored, failures = score_records(model, spec, manifest_dir, tests, index, device=dev, amp=cfg.train.amp)
    if not scored:
        raise RuntimeError(f"no test video could be scored: {failures}")
    left_out = left_out_videos(ingest_report, index.failures, failures)
    b = cfg.benchmark
    result = evaluate([s.truth for s in scored], [s.labelled.probs for s in scored], labels,
                      [s.labelled.info.fps for s in scored], [s.name for s in scored], post=spec.postprocess,
                      iou_thresholds=tuple(b.iou_thresholds), hit_tolerance_s=b.hit_tolerance_s,
                      true_bouts=[s.true_bouts for s in scored])
    result["failures"] = failures
    result["left_out"] = left_out
    result["overlap_recall"] = {
        name: overlap_recall([[(t.start, t.end) for t in s.true_bouts if t.label == k] for s in scored],
                             result["pred_labels"], k)
        for k, name in enumerate(labels) if k in action_indices(labels)
    }
    for name, v in result["overlap_recall"].items():
        if v is not None:
            result["summary"][f"event_overlap_recall/{metric_key(name)}"] = v
    pred_dir = Path(predictions_out)
    pred_dir.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(scored):
        write_frames_csv(pred_dir / f"{s.name}.frames.csv", result["pred_labels"][i], s.labelled.probs, labels)
        write_bouts_csv(pred_dir / f"{s.name}.bouts.csv", result["pred_bouts"][i], s.labelled.info.fps)
    objectives = ", ".join(f"{name}: {c['objective']}" for name, c in spec.calibration.get("per_class", {}).items()
                           if "objective" in c)  # what each fitted rule maximised on the validation videos
    write_report(report_out, result, probs=[s.labelled.probs for s in scored], true_labels=[s.truth for s in scored],
                 fps=[s.labelled.info.fps for s in scored],
                 title=f"Benchmark: {card['arch']} on {len(scored)} test videos",
                 model_info={"arch": card["arch"], "labels": labels, "data_version": card.get("data_version", ""),
                             "calibration": spec.calibration.get("status", "none"),
                             **({"calibration_objective": objectives} if objectives else {}),
                             "stride": spec.stride, "crop_pad": spec.crop_pad, "crop_mode": spec.crop_mode,
                             "test_time_views": spec.tta_views, "stitch_sigma": spec.stitch_sigma})
    slim = {k: v for k, v in result.items() if k not in ("pred_labels",)}
    write_json(pred_dir / "metrics.json", slim)
    return result


def left_out_videos(ingest_report: str | Path | None, crop_failures: list[dict[str, str]],
                    bench_failures: list[dict[str, str]]) -> list[dict[str, str]]:
    """Every video a stage left out, as ``{video, stage, reason}``: excluded at ingest (from its
    report), failed in bbox-crop, or not scorable in the benchmark."""
    out = []
    if ingest_report and Path(ingest_report).is_file():
        for d in json.loads(Path(ingest_report).read_text()).get("decisions", []):
            if d.get("decision") == "excluded" and d.get("video"):
                out.append({"video": d["video"], "stage": "ingest", "reason": d["reason"]})
    out += [{"video": f["video"], "stage": "bbox-crop", "reason": f["reason"]} for f in crop_failures]
    out += [{"video": f["video"], "stage": "benchmark", "reason": f["reason"]} for f in bench_failures]
    return out


def headline(result: dict[str, Any], labels: list[str]) -> dict[str, Any]:
    """The figures ``mar run --json`` prints: macro F1, per-class frame P/R/F1/support, event
    P/R/F1, counts per class (total and per video, errors, agreement) and the twitch event recall
    (a true twitch is detected when a predicted twitch bout overlaps it) with its precision."""
    frame = result["frame"]
    per_class = {name: {k: frame["per_class"][name][k] for k in ("precision", "recall", "f1", "support")}
                 for name in labels}
    twitch = next((n for n in labels if "twitch" in n.lower()), None)
    twitch_recall = result["overlap_recall"].get(twitch) if twitch is not None else None
    events = {name: {crit: {k: v for k, v in vals.items() if k in ("precision", "recall", "f1", "ap")}
                     for crit, vals in result["events"]["per_class"][name].items() if isinstance(vals, dict)}
              for name in result["events"]["per_class"]}
    counts = {name: {k: c[k] for k in ("true_count", "pred_count", "count_total_error", "count_mae",
                                      "true_duration_s", "pred_duration_s", "duration_total_error")}
              | {"icc": c["count_agreement"]["icc"], "pearson_r": c["count_agreement"]["pearson_r"],
                 "bias": c["count_agreement"]["bias"]}
              for name, c in result["counts"]["per_class"].items()}
    per_video = [{"video": v["video"], "fps": v["fps"],
                  **{name: {k: c[k] for k in ("true_count", "pred_count", "true_duration_s", "pred_duration_s")}
                     for name, c in v["per_class"].items()}} for v in result["counts"]["per_video"]]
    twitch_precision = (result["events"]["per_class"][twitch]["hit"]["precision"]
                        if twitch in result["events"]["per_class"] else None)
    return {"frame_macro_f1": frame["macro"]["f1"], "frame_weighted_f1": frame["weighted"]["f1"],
            "per_class": per_class, "twitch_event_recall": twitch_recall, "twitch_event_precision": twitch_precision,
            "event_overlap_recall": result["overlap_recall"], "events": events, "counts": counts,
            "counts_per_video": per_video, "failures": result.get("failures", []),
            "left_out": result.get("left_out", []),
            "postprocess": result["postprocess"]}
