"""``mar submit`` and ``mar schedule``: run the DAG on a Kubeflow Pipelines cluster."""

from __future__ import annotations

import argparse
import json
import os

from mvd.config import build_config, parse_overrides

from .errors import UserError

DEFAULT_EXPERIMENT = "mouse-action-recognition"


def _params(args: argparse.Namespace) -> dict:
    from .cluster import ClusterError, run_parameters, score_parameters

    if args.pipeline == "score":
        try:
            return score_parameters(args.videos, args.model, metadata=args.metadata, shards=args.shards,
                                    bin_s=args.bin_s, cache=args.cache, tracking_uri=args.tracking_uri,
                                    mlflow_experiment=args.mlflow_experiment, run_name=args.mlflow_run_name,
                                    artifact_root=args.artifact_root)
        except ClusterError as e:
            raise UserError(str(e)) from e
    if not args.source:
        raise UserError("--source is required for --pipeline train: s3://bucket/prefix, sly://<project id> or a path "
                        "the pods mount")
    cfg = build_config(args.profile, args.config, parse_overrides(args.set or []))
    return run_parameters(args.source, cfg.to_json(), tracking_uri=args.tracking_uri,
                          mlflow_experiment=args.mlflow_experiment, run_name=args.mlflow_run_name,
                          artifact_root=args.artifact_root, force=args.force)


def _print_upload(r: dict, as_json: bool) -> bool:
    """Print the result as JSON (returns True), or the upload line of a human summary (False)."""
    if as_json:
        print(json.dumps(r))
        return True
    what = "new pipeline" if r["new_pipeline"] else "new version"
    print(f"uploaded {what} {r['version_name']} ({r['pipeline_id']}/{r['version_id']})")
    return False


def cmd_submit(args: argparse.Namespace) -> int:
    from .cluster import ClusterError, submit

    try:
        r = submit(args.host, _params(args), experiment=args.experiment, run_name=args.run_name,
                   namespace=args.namespace, pipeline_name=args.pipeline_name, pipeline_root=args.pipeline_root,
                   pipeline=args.pipeline)
    except ClusterError as e:
        raise UserError(str(e)) from e
    if not _print_upload(r, args.json):
        print(f"run {r['run_id']} started in experiment {args.experiment}: {r['url']}")
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    from .cluster import ClusterError, CronError, schedule

    try:
        r = schedule(args.host, _params(args), cron=args.cron, experiment=args.experiment, name=args.name,
                     namespace=args.namespace, pipeline_name=args.pipeline_name, pipeline_root=args.pipeline_root,
                     max_concurrency=args.max_concurrency, catchup=args.catchup, pipeline=args.pipeline)
    except (ClusterError, CronError) as e:
        raise UserError(str(e)) from e
    if not _print_upload(r, args.json):
        print(f"recurring run {r['name']!r} ({r['recurring_run_id']}) on cron '{r['cron']}' "
              f"in experiment {args.experiment}: {r['url']}")
    return 0


def _add_cluster_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=os.environ.get("KF_PIPELINES_ENDPOINT"),
                   required=not os.environ.get("KF_PIPELINES_ENDPOINT"),
                   help="Kubeflow Pipelines API URL, e.g. http://localhost:8080 (default: $KF_PIPELINES_ENDPOINT); "
                        "a bearer token is read from $KF_PIPELINES_TOKEN")
    p.add_argument("--namespace", default=None, help="Kubeflow profile namespace (required on multi-user clusters)")
    p.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="KFP experiment of the run (created if missing)")
    p.add_argument("--pipeline-name", default=None, help="KFP pipeline name (default mouse-action-recognition, or "
                                                              "mouse-action-scoring with --pipeline score)")
    p.add_argument("--pipeline", choices=["train", "score"], default="train",
                   help="train (default): the training DAG; score: the cohort scoring DAG (--videos, --model, ...)")
    p.add_argument("--source", default="", help="Supervisely project for the pods: s3://bucket/prefix, "
                                                "sly://<project id> or a path mounted in the pods (--pipeline train)")
    p.add_argument("--videos", default="", help="--pipeline score: videos for the pods, s3://bucket/prefix, "
                                                "sly://<project id>[/<dataset>] or a mounted directory")
    p.add_argument("--model", default="", help="--pipeline score: models:/<name>@<alias> or models:/<name>/<version> "
                                               "(default models:/mouse-action-mvd@champion)")
    p.add_argument("--metadata", default="", help="--pipeline score: metadata CSV (s3:// URI or mounted path)")
    p.add_argument("--shards", type=int, default=4, help="--pipeline score: number of shards (default 4)")
    p.add_argument("--bin-s", type=float, default=300.0, help="--pipeline score: time bin in seconds (default 300)")
    p.add_argument("--cache", default="", help="--pipeline score: s3:// prefix of already scored videos")
    p.add_argument("--profile", choices=["cpu", "gpu"], default="gpu", help="configuration profile (default gpu)")
    p.add_argument("--config", help="YAML file with model/data/train/benchmark/register sections")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config key, e.g. train.epochs=5")
    p.add_argument("--tracking-uri", default="", help="MLflow tracking URI the pods use (default: the pipeline's)")
    p.add_argument("--mlflow-experiment", default="", help="MLflow experiment (default: the pipeline's)")
    p.add_argument("--mlflow-run-name", default="", help="MLflow run name (default: generated)")
    p.add_argument("--artifact-root", default="", help="artifact location for a new MLflow experiment")
    p.add_argument("--pipeline-root", default=None, help="KFP pipeline root for this run, e.g. s3://bucket/kfp")
    p.add_argument("--force", action="store_true", help="train even when the data version is unchanged")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")


def add_cluster_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``submit`` and ``schedule`` on the ``mar`` sub-command parser."""
    p = sub.add_parser("submit", help="compile, upload (new version if the pipeline exists) and start a run on a "
                                      "Kubeflow Pipelines cluster")
    _add_cluster_args(p)
    p.add_argument("--run-name", default="", help="KFP run name (default: pipeline name and time)")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("schedule", help="compile, upload and create a recurring run on a cron schedule",
                       epilog="KFP cron has 6 fields, seconds first: 'second minute hour day-of-month month "
                              "day-of-week'. '0 0 3 * * *' = daily at 03:00; '@daily' and '@every 12h' also work. "
                              "With the check-data step a scheduled run trains only when the data changed.")
    _add_cluster_args(p)
    p.add_argument("--cron", required=True, help="6-field cron expression, seconds first, e.g. '0 0 3 * * *'")
    p.add_argument("--name", default="", help="recurring run name (default: pipeline name and cron)")
    p.add_argument("--max-concurrency", type=int, default=1, help="runs allowed at once (default 1)")
    p.add_argument("--catchup", action="store_true", help="backfill runs missed while the schedule was paused")
    p.set_defaults(func=cmd_schedule)
