"""The Kubeflow Pipelines DAG: ingest → bbox-crop → train (GPU) → benchmark → register."""


from kfp import dsl

from components.bbox_crop import bbox_crop_op
from components.benchmark import benchmark_op
from components.ingest import ingest_op
from components.register import register_op
from components.train import train_op
from mvd.config import build_config

PIPELINE_NAME = "mouse-action-recognition"
DEFAULT_CONFIG_JSON = build_config("gpu").to_json()


@dsl.pipeline(name=PIPELINE_NAME)
def mar_pipeline(
    source: str,
    config_json: str = DEFAULT_CONFIG_JSON,
    tracking_uri: str = "http://mlflow:5000",
    experiment: str = "mouse-action-recognition",
    run_name: str = "",
    artifact_root: str = "",
) -> str:
    """Train, benchmark and register an MVD video model of mouse behaviours (idle, Self-Grooming,
    Head/Body TWITCH) from an annotated Supervisely video project.

    Args:
        source: Supervisely video project: a directory, an s3://bucket/prefix or sly://<project id>.
        config_json: Full run configuration as JSON (model, data, train, benchmark, register sections);
            `mar config --profile gpu` prints the default.
        tracking_uri: MLflow tracking URI (server URL, or sqlite:///path for a local run).
        experiment: MLflow experiment the run is logged to.
        run_name: MLflow run name; empty = MLflow's generated name.
        artifact_root: Artifact location for a newly created MLflow experiment; empty = the server's default.
    """
    ingest = ingest_op(source=source, config_json=config_json).set_display_name("ingest")
    crop = bbox_crop_op(config_json=config_json, manifest=ingest.outputs["manifest"]).set_display_name("bbox-crop")
    train = train_op(
        config_json=config_json, crops=crop.outputs["crops"], tracking_uri=tracking_uri, experiment=experiment,
        run_name=run_name, artifact_root=artifact_root, kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    ).set_display_name("train")
    train.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
    train.set_cpu_request("4").set_memory_request("16G")
    bench = benchmark_op(
        config_json=config_json, model=train.outputs["model"], manifest=ingest.outputs["manifest"],
        crops=crop.outputs["crops"], tracking_uri=tracking_uri, mlflow_run_id=train.outputs["Output"],
    ).set_display_name("benchmark")
    reg = register_op(
        config_json=config_json, model=train.outputs["model"], results=bench.outputs["results"],
        report=bench.outputs["report"], predictions=bench.outputs["predictions"], tracking_uri=tracking_uri,
        mlflow_run_id=train.outputs["Output"], kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    ).set_display_name("register")
    for t in (ingest, crop, train, bench, reg):
        t.set_caching_options(False)
    return reg.output


def compile_pipeline(out: str = "pipeline.yaml") -> str:
    from kfp import compiler

    compiler.Compiler().compile(mar_pipeline, package_path=out)
    return out
