"""The committed pipeline.yaml is exactly what the DAG compiles to."""

from pathlib import Path

import yaml

from pipeline.dag import compile_pipeline

ROOT = Path(__file__).resolve().parents[1]


def test_pipeline_yaml_is_up_to_date(tmp_path):
    out = compile_pipeline(str(tmp_path / "pipeline.yaml"))
    fresh = Path(out).read_text()
    committed = (ROOT / "pipeline.yaml").read_text()
    assert fresh == committed, "pipeline.yaml is stale: run `make compile` and commit it"


def test_dag_shape_and_gpu_request():
    spec = yaml.safe_load((ROOT / "pipeline.yaml").read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"ingest-op", "bbox-crop-op", "train-op", "benchmark-op", "register-op"}
    assert tasks["bbox-crop-op"]["dependentTasks"] == ["ingest-op"]
    assert set(tasks["register-op"]["dependentTasks"]) == {"train-op", "benchmark-op"}
    train_exec = spec["deploymentSpec"]["executors"]["exec-train-op"]["container"]
    assert train_exec["resources"]["accelerator"]["resourceCount"] == "1"
    assert "nvidia.com/gpu" in str(train_exec["resources"]["accelerator"])
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {"source", "config_json", "tracking_uri", "experiment"} <= set(params)
    assert all(params[p].get("description") for p in params)
