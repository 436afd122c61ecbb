"""The cohort scoring DAG: plan → ParallelFor over shards (score-shard, GPU node) → gather.

Placement and secrets come from the same MAR_* compile-time settings as the training DAG
(:mod:`pipeline.dag`); ``MAR_SCORE_PARALLELISM`` (default 4) bounds how many shards run at once.
"""

import os

from kfp import dsl

from components.score import DEFAULT_BIN_S

from .dag import ClusterSettingsError, _gpu_placement, _resources, _secrets
from .ops import gather_score_op, plan_score_op, score_shard_op

PIPELINE_NAME = "mouse-action-scoring"
DEFAULT_EXPERIMENT = "mouse-action-scoring"


def parallelism_from_env(env: dict[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    raw = env.get("MAR_SCORE_PARALLELISM", "4").strip()
    if not raw.isdigit() or int(raw) < 1:
        raise ClusterSettingsError(f"MAR_SCORE_PARALLELISM={raw!r}: expected a whole number of shards run at once (≥ 1)")
    return int(raw)


PARALLELISM = parallelism_from_env()


@dsl.pipeline(name=PIPELINE_NAME)
def score_pipeline(
    videos: str,
    model: str = "models:/mouse-action-mvd@champion",
    metadata: str = "",
    shards: int = 4,
    bin_s: float = DEFAULT_BIN_S,
    cache: str = "",
    tracking_uri: str = "http://mlflow:5000",
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str = "",
    artifact_root: str = "",
) -> str:
    """Score a cohort of videos with a trained model: per-video frames and bouts, a cohort table with
    per-class counts, durations, latencies and time-binned counts joined to the metadata, and a report.

    Args:
        videos: Videos to score: a directory, an s3://bucket/prefix, a Supervisely project or dataset
            (sly://<project id>[/<dataset id or name>]), a video file, or a JSON list of these.
        model: models:/<name>@<alias>, models:/<name>/<version>, or a model directory the pods can read.
        metadata: Optional CSV (path or s3:// URI) with a `video` column (file name) and any others
            (animal, group, dose, session...), joined to the cohort table; checked before scoring.
        shards: Number of shards the videos are split into (each scored by one GPU task).
        bin_s: Width in seconds of the time bins of the per-bin counts.
        cache: Directory or s3:// prefix of scored videos (keyed by video sha256 + model weights); empty = none.
        tracking_uri: MLflow tracking URI (the model registry, and where the cohort run is logged).
        experiment: MLflow experiment of the cohort run.
        run_name: MLflow run name; empty = MLflow's generated name.
        artifact_root: Artifact location for a newly created MLflow experiment; empty = the server's default.
    """
    plan = plan_score_op(videos=videos, model=model, metadata=metadata, shards=shards,
                         tracking_uri=tracking_uri).set_display_name("plan")
    _resources(plan, "500m", "1G")
    _secrets(plan, s3=True, mlflow=True, supervisely=True)
    with dsl.ParallelFor(plan.outputs["Output"], parallelism=PARALLELISM, name="shards") as shard:
        score = score_shard_op(shard=shard, cache=cache,
                               tracking_uri=tracking_uri).set_display_name("score-shard")
        _resources(score, "4", "16G")
        _gpu_placement(score)
        _secrets(score, s3=True, mlflow=True, supervisely=True)
    gather = gather_score_op(plan=plan.outputs["plan"], scored=dsl.Collected(score.outputs["scored"]),
                             bin_s=bin_s, tracking_uri=tracking_uri, experiment=experiment, run_name=run_name,
                             artifact_root=artifact_root, videos=videos).set_display_name("gather")
    _resources(gather, "1", "4G")
    _secrets(gather, s3=True, mlflow=True)
    return gather.outputs["Output"]


def compile_score_pipeline(out: str = "score_pipeline.yaml") -> str:
    from kfp import compiler

    compiler.Compiler().compile(score_pipeline, package_path=out)
    return out
