"""``mar``: run the pipeline locally, make a demo project, compile, check boxes, import weights."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from mvd.atomic import DiskFullError
from mvd.config import ConfigError, build_config, parse_overrides

from .cli_cluster import add_cluster_commands
from .cli_registry import add_registry_commands
from .errors import UserError

log = logging.getLogger("mar")




def _default_profile() -> str:
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def _config(args: argparse.Namespace):
    profile = args.profile or _default_profile()
    return build_config(profile, args.config, parse_overrides(args.set or []))


def _print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary))
        return
    if summary.get("skipped"):
        print(f"skipped: {summary['reason']}")
        return
    m = summary["metrics"]
    print(f"\nrun {summary['run_id']} finished in {summary['wall_s']} s")
    print(f"  frame macro F1 (action classes): {m['frame_macro_f1']:.3f}")
    for name, pc in m["per_class"].items():
        f1 = "n/a" if pc["f1"] is None else f"{pc['f1']:.3f}"
        print(f"  {name:>20}: F1 {f1}  support {pc['support']}")
    for name, ev in m.get("events", {}).items():
        hit = ev.get("hit", {})
        if hit.get("f1") is not None:
            print(f"  {name:>20}: events (hit rule) precision {hit['precision']:.3f} recall {hit['recall']:.3f} "
                  f"F1 {hit['f1']:.3f}")
    for name, c in m.get("counts", {}).items():
        err = "n/a" if c.get("count_total_error") is None else f"{100 * c['count_total_error']:.1f}%"
        mae = "n/a" if c.get("count_mae") is None else f"{c['count_mae']:.2f}"
        print(f"  {name:>20}: {c['pred_count']} bouts predicted / {c['true_count']} true "
              f"(total error {err}, per-video MAE {mae})")
    for f in m.get("left_out", []):
        print(f"  left out at {f['stage']}: {f['video']}: {f['reason']}")
    print(f"  model: {summary['model_name']} version {summary['model_version']} "
          f"({'champion' if summary['promoted'] else 'candidate'}: {summary['promotion_reason']})")
    print(f"  report: {summary['artifacts']['report']}")
    print(f"  predictions: {summary['artifacts']['predictions']}")
    uri = summary["mlflow_tracking_uri"]
    print(f"  MLflow UI: {uri}" if uri.startswith(("http://", "https://"))
          else f"  MLflow UI: mlflow ui --backend-store-uri {uri}")


def cmd_run(args: argparse.Namespace) -> int:
    from components.ingest import IngestError

    from .local import PipelineFailed, PreflightError, preflight, run_local

    cfg = _config(args)
    try:
        preflight(args.source, cfg)
    except (IngestError, PreflightError) as e:
        raise UserError(str(e)) from e
    try:
        summary = run_local(args.source, cfg, args.workdir, force=getattr(args, "force", False),
                            artifact_root=args.artifact_root, tracking_uri=args.tracking_uri,
                            experiment=args.experiment)
    except (PipelineFailed, PreflightError) as e:
        raise UserError(str(e)) from e
    _print_summary(summary, args.json)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import write_demo_project

    work = Path(args.workdir)
    project = work / "demo_project"
    if not (project / "meta.json").exists() or args.regenerate:
        if project.exists():
            import shutil

            shutil.rmtree(project)
        log.info("writing a synthetic Supervisely project of %d videos to %s", args.videos, project)
        write_demo_project(project, n_videos=args.videos, seed=args.seed, duration_s=(30.0, 40.0))
    args.source = str(project)
    return cmd_run(args)


def cmd_compile(args: argparse.Namespace) -> int:
    if args.pipeline == "score":
        from .score_dag import compile_score_pipeline

        print(compile_score_pipeline(args.out or "score_pipeline.yaml"))
        return 0
    from .dag import compile_pipeline

    print(compile_pipeline(args.out or "pipeline.yaml"))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    import yaml

    print(yaml.safe_dump(_config(args).to_dict(), sort_keys=False))
    return 0


def cmd_boxes(args: argparse.Namespace) -> int:
    from mvd.contact_sheet import boxes_for_videos

    rows = boxes_for_videos([Path(v) for v in args.videos], Path(args.out), detector=args.detector)
    bad = 0
    for r in rows:
        if r.get("error"):
            bad += 1
            print(f"{r['video']}: FAILED: {r['error']}", file=sys.stderr)
        else:
            print(f"{r['video']}: {r['frames']} frames, mouse found in {100 * r['detected_fraction']:.1f}% "
                  f"-> {r['boxes_csv']}, {r['contact_sheet']}")
    return 1 if bad == len(rows) else 0


def cmd_import_checkpoint(args: argparse.Namespace) -> int:
    from mvd.config import DEFAULT_LABELS
    from mvd.weights import import_checkpoint, read_state_dict

    try:
        labels = args.labels.split(",") if args.labels else None
        if labels is None:
            state = read_state_dict(args.checkpoint)
            if "head.weight" not in state and "backbone.head.weight" not in state:
                labels = build_config("cpu", args.config, {}).data.labels if args.config else list(DEFAULT_LABELS)
                print(f"{args.checkpoint} has no classification head (a pre-trained backbone): a new head for "
                      f"{labels} ({'from ' + args.config if args.config else 'the standard labels'}); "
                      "pass --labels to choose others", file=sys.stderr)
        out = import_checkpoint(args.checkpoint, args.arch, args.out, labels=labels,
                                num_classes=len(labels) if labels else None,
                                num_frames=args.num_frames, img_size=args.input_size)
    except ValueError as e:  # unsafe pickle, not a checkpoint, wrong architecture: all named by the message
        raise UserError(str(e)) from e
    print(out)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from components.predict import PredictError, run_predict
    from components.integrations.registry import resolve_tracking_uri

    try:
        s = run_predict(args.model, args.videos, args.out, tracking_uri=resolve_tracking_uri(args.tracking_uri,
                                                                                            args.workdir),
                        detector=args.detector,
                        stride=args.stride, batch_size=args.batch_size)
    except PredictError as e:
        raise UserError(str(e)) from e
    for video, v in s["videos"].items():
        counts = ", ".join(f"{k}: {c['bouts']} bouts {c['duration_s']:.1f} s" for k, c in v["per_class"].items()
                           if c["bouts"] is not None)
        print(f"{video}: {counts}")
    for f in s["failures"]:
        print(f"{f['video']}: FAILED: {f['reason']}", file=sys.stderr)
    print(f"results in {args.out}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from components.inputs import PredictError
    from components.score import ScoreError, plan_score

    from .local import PipelineFailed, run_score_local

    out = Path(args.out)
    tracking_uri = (args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
                    or f"sqlite:///{out.resolve() / 'mlflow.db'}")
    try:  # bad videos, metadata or model reference: reported before any scoring starts
        plan_score(args.videos, args.model, metadata=args.metadata, shards=args.shards, tracking_uri=tracking_uri)
        s = run_score_local(args.videos, args.model, out, metadata=args.metadata, shards=args.shards,
                            bin_s=args.bin_s, tracking_uri=tracking_uri, cache=args.cache)
    except (ScoreError, PredictError, PipelineFailed) as e:
        raise UserError(str(e)) from e
    for f in s["failures"]:
        print(f"{f['video']}: FAILED: {f['reason']}", file=sys.stderr)
    m = s["model"]
    print(f"scored {s['scored']} of {s['videos']} videos ({s['cached']} from the cache) with "
          f"{m['name'] + ' version ' + m['version'] if m['version'] else m['uri']} in {s['wall_s']} s")
    print(f"  cohort table: {out / 'cohort.csv'}")
    print(f"  report: {out / 'report.html'}")
    print(f"  MLflow run {s['mlflow_run_id']} in {s['mlflow_tracking_uri']}")
    return 0


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", choices=["cpu", "gpu"], default=None,
                   help="gpu = ViT-S 16×224 (the reference defaults), cpu = tiny ViT; default: gpu if CUDA is available")
    p.add_argument("--config", help="YAML file with model/data/train/benchmark/register sections")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config key, e.g. train.epochs=5")
    p.add_argument("--workdir", default="work", help="where runs, the MLflow store and artifacts go (default ./work)")
    p.add_argument("--json", action="store_true", help="print the run summary as one JSON line last")
    p.add_argument("--artifact-root", default="",
                   help="MLflow artifact location for a new experiment (directory or s3://bucket/prefix); "
                        "default <workdir>/mlartifacts for the local store, the server's artifact store for a server")
    _add_tracking_args(p)
    p.add_argument("--experiment", default="mouse-action-recognition",
                   help="MLflow experiment the run is logged to (default mouse-action-recognition)")


def _add_tracking_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tracking-uri", default="",
                   help="MLflow tracking URI, e.g. http://mlflow:5000 (default: env MLFLOW_TRACKING_URI, else "
                        "sqlite:///<workdir>/mlflow.db); a server's credentials come from the environment only: "
                        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mar", description="Mouse action recognition: MVD training pipeline")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run ingest → bbox-crop → train → benchmark → register locally (kfp.local)")
    p.add_argument("--source", required=True, help="Supervisely video project directory")
    _add_run_args(p)
    p.add_argument("--force", action="store_true",
                   help="train even when the latest registered model was trained on the same data version")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="write a synthetic Supervisely project and run the pipeline on it")
    p.add_argument("--videos", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--regenerate", action="store_true", help="rewrite the demo project even if it exists")
    _add_run_args(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("compile", help="compile the DAG to pipeline.yaml (or the scoring DAG to score_pipeline.yaml)")
    p.add_argument("--pipeline", choices=["train", "score"], default="train")
    p.add_argument("--out", default=None, help="default pipeline.yaml, or score_pipeline.yaml with --pipeline score")
    p.set_defaults(func=cmd_compile)

    add_cluster_commands(sub)

    p = sub.add_parser("config", help="print the resolved configuration as YAML")
    _add_run_args(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("boxes", help="detect the mouse in videos: per-video boxes CSV + contact sheet PNG")
    p.add_argument("videos", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--detector", default="background")
    p.set_defaults(func=cmd_boxes)

    p = sub.add_parser("predict", help="label new videos with a trained model (frames/bouts CSV, ethogram, counts)")
    p.add_argument("videos", nargs="+", help="video files or directories of videos")
    p.add_argument("--model", required=True,
                   help="model directory, models:/<name>@<alias>, models:/<name>/<version> or <name>@<alias>")
    p.add_argument("--out", required=True)
    _add_tracking_args(p)
    p.add_argument("--workdir", default="work", help="workdir of local runs, for the default store (default ./work)")
    p.add_argument("--detector", default=None,
                   help="mouse detector (default: the one the model was trained with, from its card)")
    p.add_argument("--stride", type=int, default=None,
                   help="window stride in frames (default: the model card's, as benchmarked; another stride "
                        "gives other labels than the benchmark's)")
    p.add_argument("--batch-size", type=int, default=None, help="windows per batch (default: the model card's)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("score", help="score a cohort: label every video in shards (kfp.local), cohort table + report")
    p.add_argument("videos", nargs="+", help="video files, directories of videos, s3:// prefixes or Supervisely projects/datasets "
                   "(sly://<project id>[/<dataset id or name>], with SERVER_ADDRESS and API_TOKEN set)")
    p.add_argument("--model", required=True,
                   help="model directory, models:/<name>@<alias>, models:/<name>/<version> or <name>@<alias>")
    p.add_argument("--metadata", default="",
                   help="CSV with a 'video' column (file name) and any others (animal, group, dose, session...)")
    p.add_argument("--out", default="cohort", help="output directory (default ./cohort)")
    p.add_argument("--shards", type=int, default=2, help="number of shards the videos are split into (default 2)")
    p.add_argument("--bin-s", type=float, default=300.0, help="time bin of the per-bin counts in seconds (default 300)")
    p.add_argument("--cache", default=None, help="cache of scored videos (directory or s3:// prefix; default OUT/cache)")
    p.add_argument("--tracking-uri", default="",
                   help="MLflow tracking URI (the registry for models:/ references; default $MLFLOW_TRACKING_URI, "
                        "else sqlite:///OUT/mlflow.db)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("import-checkpoint", help="convert an official MVD checkpoint to safetensors + model card")
    p.add_argument("checkpoint")
    p.add_argument("--arch", required=True, choices=["vit_small", "vit_base", "vit_large", "vit_tiny"])
    p.add_argument("--out", required=True)
    p.add_argument("--labels", default="", help="comma-separated class names, if the checkpoint has a head for them "
                                                "(default for a head-less checkpoint: data.labels of --config, "
                                                "else the standard idle,Self-Grooming,Head/Body TWITCH)")
    p.add_argument("--config", help="YAML config whose data.labels name the classes of a head-less checkpoint")
    p.add_argument("--num-frames", type=int, default=16)
    p.add_argument("--input-size", type=int, default=224)
    p.set_defaults(func=cmd_import_checkpoint)

    add_registry_commands(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (UserError, ConfigError, FileNotFoundError, DiskFullError) as e:
        print(f"mar {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
