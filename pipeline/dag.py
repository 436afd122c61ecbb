"""The Kubeflow Pipelines DAG: ingest → check-data → [bbox-crop → train (GPU) → benchmark (GPU) → register].

Cluster placement is fixed when the pipeline is compiled (KFP resources and Kubernetes settings are
not run parameters), from these environment variables:

    MAR_GPU_COUNT           GPUs for the train task (default 1; 0 = train and benchmark on CPU, no GPU node
                            placement); the benchmark task takes one GPU whenever this is not 0
    MAR_GPU_NODE_SELECTOR   "key=value" node label for the train and benchmark tasks
                            (default nvidia.com/gpu.present=true; "" = none)
    MAR_GPU_TOLERATION      taint the train and benchmark tasks tolerate, kubectl style "key[=value]:Effect"
                            (default nvidia.com/gpu:NoSchedule; "" = none)
    MAR_S3_SECRET           Kubernetes secret with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL
                            (default mar-s3; required by the pods)
    MAR_MLFLOW_SECRET       secret with MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD (default mar-mlflow; optional)
    MAR_SUPERVISELY_SECRET  secret with SERVER_ADDRESS, API_TOKEN, TEAM_ID (default mar-supervisely; optional)

Each secret key becomes the environment variable of the same name in the tasks that need it;
credentials are never pipeline parameters.
"""

import os
from dataclasses import dataclass

from kfp import dsl, kubernetes

from mvd.config import build_config

from .ops import bbox_crop_op, benchmark_op, check_data_op, ingest_op, register_op, skip_op, train_op

PIPELINE_NAME = "mouse-action-recognition"
DEFAULT_CONFIG_JSON = build_config("gpu").to_json()

S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")
MLFLOW_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
SUPERVISELY_KEYS = ("SERVER_ADDRESS", "API_TOKEN", "TEAM_ID")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


class ClusterSettingsError(ValueError):
    """A MAR_* compile-time setting is malformed; the message names the variable."""


@dataclass(frozen=True)
class Toleration:
    key: str
    effect: str
    value: str = ""


@dataclass(frozen=True)
class ClusterSettings:
    gpu_count: int = 1
    gpu_node_selector: tuple[str, str] | None = ("nvidia.com/gpu.present", "true")
    gpu_toleration: Toleration | None = Toleration("nvidia.com/gpu", "NoSchedule")
    s3_secret: str = "mar-s3"
    mlflow_secret: str = "mar-mlflow"
    supervisely_secret: str = "mar-supervisely"


def parse_node_selector(text: str) -> tuple[str, str] | None:
    text = text.strip()
    if not text:
        return None
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ClusterSettingsError(f"MAR_GPU_NODE_SELECTOR={text!r}: expected key=value, e.g. "
                                   "nvidia.com/gpu.present=true, or empty for no node selector")
    return key.strip(), value.strip()


def parse_toleration(text: str) -> Toleration | None:
    text = text.strip()
    if not text:
        return None
    kv, sep, effect = text.rpartition(":")
    key, _, value = kv.partition("=")
    if not sep or not key or effect not in TAINT_EFFECTS:
        raise ClusterSettingsError(f"MAR_GPU_TOLERATION={text!r}: expected key[=value]:Effect with Effect one of "
                                   f"{', '.join(TAINT_EFFECTS)} (e.g. nvidia.com/gpu:NoSchedule), or empty for none")
    return Toleration(key=key, effect=effect, value=value)


def settings_from_env(env: dict[str, str] | None = None) -> ClusterSettings:
    """Compile-time cluster settings from MAR_* environment variables (see the module docstring)."""
    env = os.environ if env is None else env
    d = ClusterSettings()
    raw = env.get("MAR_GPU_COUNT", str(d.gpu_count)).strip()
    if not raw.isdigit():
        raise ClusterSettingsError(f"MAR_GPU_COUNT={raw!r}: expected a whole number of GPUs (0 = CPU training)")
    names = {}
    for var, default in (("MAR_S3_SECRET", d.s3_secret), ("MAR_MLFLOW_SECRET", d.mlflow_secret),
                         ("MAR_SUPERVISELY_SECRET", d.supervisely_secret)):
        names[var] = env.get(var, default).strip()
        if not names[var]:
            raise ClusterSettingsError(f"{var} is empty: name the Kubernetes secret (default {default})")
    sel = env.get("MAR_GPU_NODE_SELECTOR")
    tol = env.get("MAR_GPU_TOLERATION")
    return ClusterSettings(
        gpu_count=int(raw),
        gpu_node_selector=d.gpu_node_selector if sel is None else parse_node_selector(sel),
        gpu_toleration=d.gpu_toleration if tol is None else parse_toleration(tol),
        s3_secret=names["MAR_S3_SECRET"], mlflow_secret=names["MAR_MLFLOW_SECRET"],
        supervisely_secret=names["MAR_SUPERVISELY_SECRET"],
    )


SETTINGS = settings_from_env()


def _secrets(task: dsl.PipelineTask, *, s3: bool = False, mlflow: bool = False, supervisely: bool = False) -> None:
    """Credentials from Kubernetes secrets as environment variables (key name = variable name)."""
    if s3:
        kubernetes.use_secret_as_env(task, SETTINGS.s3_secret, {k: k for k in S3_KEYS})
    if mlflow:
        kubernetes.use_secret_as_env(task, SETTINGS.mlflow_secret, {k: k for k in MLFLOW_KEYS}, optional=True)
    if supervisely:
        kubernetes.use_secret_as_env(task, SETTINGS.supervisely_secret, {k: k for k in SUPERVISELY_KEYS},
                                     optional=True)


def _resources(task: dsl.PipelineTask, cpu: str, memory: str) -> dsl.PipelineTask:
    return task.set_cpu_request(cpu).set_memory_request(memory).set_caching_options(False)


def _gpu_placement(task: dsl.PipelineTask, count: int | None = None) -> None:
    """``count`` GPUs (default MAR_GPU_COUNT) on a GPU node; nothing when MAR_GPU_COUNT is 0."""
    if SETTINGS.gpu_count <= 0:
        return
    task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(count or SETTINGS.gpu_count)
    if SETTINGS.gpu_node_selector:
        kubernetes.add_node_selector(task, *SETTINGS.gpu_node_selector)
    tol = SETTINGS.gpu_toleration
    if tol:
        kubernetes.add_toleration(task, key=tol.key, operator="Equal" if tol.value else "Exists",
                                  value=tol.value or None, effect=tol.effect)


@dsl.pipeline(name=PIPELINE_NAME)
def mar_pipeline(
    source: str,
    config_json: str = DEFAULT_CONFIG_JSON,
    tracking_uri: str = "http://mlflow:5000",
    experiment: str = "mouse-action-recognition",
    run_name: str = "",
    artifact_root: str = "",
    force: bool = False,
) -> str:
    """Train, benchmark and register an MVD video model of mouse behaviours (idle, Self-Grooming,
    Head/Body TWITCH) from an annotated Supervisely video project; skip training when the data is unchanged.

    Args:
        source: Supervisely video project: a directory, an s3://bucket/prefix or sly://<project id>.
        config_json: Full run configuration as JSON (model, data, train, benchmark, register sections);
            `mar config --profile gpu` prints the default.
        tracking_uri: MLflow tracking URI (server URL, or sqlite:///path for a local run).
        experiment: MLflow experiment the run is logged to.
        run_name: MLflow run name; empty = MLflow's generated name.
        artifact_root: Artifact location for a newly created MLflow experiment; empty = the server's default.
        force: Train even when the latest registered model was trained on the same data version.
    """
    ingest = ingest_op(source=source, config_json=config_json).set_display_name("ingest")
    _resources(ingest, "1", "2G")
    _secrets(ingest, s3=True, supervisely=True)
    check = check_data_op(config_json=config_json, manifest=ingest.outputs["manifest"], tracking_uri=tracking_uri,
                          force=force).set_display_name("check-data")
    _resources(check, "250m", "512M")
    _secrets(check, mlflow=True)
    with dsl.If(check.outputs["decision"] == "train", name="new-data"):
        crop = bbox_crop_op(config_json=config_json, manifest=ingest.outputs["manifest"]).set_display_name("bbox-crop")
        _resources(crop, "2", "4G")
        train = train_op(
            config_json=config_json, crops=crop.outputs["crops"], manifest=ingest.outputs["manifest"],
            tracking_uri=tracking_uri, experiment=experiment,
            run_name=run_name, artifact_root=artifact_root, kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        ).set_display_name("train")
        _resources(train, "4", "16G")
        _gpu_placement(train)
        _secrets(train, s3=True, mlflow=True)
        bench = benchmark_op(
            config_json=config_json, model=train.outputs["model"], manifest=ingest.outputs["manifest"],
            crops=crop.outputs["crops"], ingest_report=ingest.outputs["report"], tracking_uri=tracking_uri,
            mlflow_run_id=train.outputs["Output"],
        ).set_display_name("benchmark")
        # the CUDA image on a GPU node, like train; 4 CPUs so that threaded decoding and cropping keep it fed
        _resources(bench, "4", "16G")
        _gpu_placement(bench, 1)
        _secrets(bench, s3=True, mlflow=True)
        reg = register_op(
            config_json=config_json, model=train.outputs["model"], results=bench.outputs["results"],
            report=bench.outputs["report"], predictions=bench.outputs["predictions"], tracking_uri=tracking_uri,
            mlflow_run_id=train.outputs["Output"], kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        ).set_display_name("register")
        _resources(reg, "1", "4G")
        _secrets(reg, s3=True, mlflow=True)
    with dsl.Else(name="no-new-data"):
        skip = skip_op(reason=check.outputs["reason"]).set_display_name("skip")
        _resources(skip, "100m", "128M")
    return dsl.OneOf(reg.output, skip.output)


def compile_pipeline(out: str = "pipeline.yaml") -> str:
    from kfp import compiler

    compiler.Compiler().compile(mar_pipeline, package_path=out)
    return out
