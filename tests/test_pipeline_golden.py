"""The committed pipeline.yaml is exactly what the DAG compiles to, and it carries the cluster
settings: GPU request, node selector, toleration, secrets by reference, the check-data branch."""

import importlib
import json
from pathlib import Path

import pytest
import yaml

import pipeline.dag as dag
from kfp_spec import SpecError, parse_package
from pipeline.dag import compile_pipeline

ROOT = Path(__file__).resolve().parents[1]
STAGES = {"ingest-op", "check-data-op", "bbox-crop-op", "train-op", "benchmark-op", "register-op", "skip-op"}


def _docs(path: Path) -> tuple[dict, dict]:
    spec, platform = list(yaml.safe_load_all(path.read_text()))
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _tasks(spec: dict) -> dict[str, dict]:
    """Every task of every DAG (root and the condition sub-DAGs), by name."""
    out = dict(spec["root"]["dag"]["tasks"])
    for comp in spec["components"].values():
        out.update(comp.get("dag", {}).get("tasks", {}))
    return out


def _secret_names(executor: dict) -> set[str]:
    return {s["secretName"] for s in executor.get("secretAsEnv", [])}


def test_pipeline_yaml_is_up_to_date(tmp_path):
    out = compile_pipeline(str(tmp_path / "pipeline.yaml"))
    fresh = Path(out).read_text()
    committed = (ROOT / "pipeline.yaml").read_text()
    assert fresh == committed, "pipeline.yaml is stale: run `make compile` and commit it"


def test_dag_shape_and_skip_branch():
    spec, _ = _docs(ROOT / "pipeline.yaml")
    tasks = _tasks(spec)
    assert STAGES <= set(tasks)
    assert set(spec["root"]["dag"]["tasks"]) == {"ingest-op", "check-data-op", "condition-branches-1"}
    assert tasks["check-data-op"]["dependentTasks"] == ["ingest-op"]
    assert set(tasks["register-op"]["dependentTasks"]) == {"train-op", "benchmark-op"}
    conditions = {name: t["triggerPolicy"]["condition"] for name, t in tasks.items() if "triggerPolicy" in t}
    train_branch = [c for c in conditions.values() if "== 'train'" in c and "!" not in c]
    else_branch = [c for c in conditions.values() if "!(" in c and "'train'" in c]
    assert len(train_branch) == 1 and len(else_branch) == 1, conditions
    assert "check-data-op" in train_branch[0] and "decision" in train_branch[0]
    out = spec["root"]["dag"]["outputs"]["parameters"]["Output"]["valueFromParameter"]
    assert out["producerSubtask"] == "condition-branches-1"
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {"source", "config_json", "tracking_uri", "experiment", "force"} <= set(params)
    assert params["force"]["defaultValue"] is False
    assert all(params[p].get("description") for p in params)


GPU_EXECUTORS = {"exec-train-op", "exec-benchmark-op"}


def test_gpu_request_node_selector_toleration_and_requests():
    spec, k8s = _docs(ROOT / "pipeline.yaml")
    executors = spec["deploymentSpec"]["executors"]
    train = executors["exec-train-op"]["container"]["resources"]
    assert train["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert train["accelerator"]["resourceCount"] == "1"
    assert float(train["resourceCpuRequest"]) >= 4 and train["resourceMemoryRequest"] == "16G"
    assert k8s["exec-train-op"]["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
    assert k8s["exec-train-op"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                                    "effect": "NoSchedule"}]
    for name, ex in executors.items():
        res = ex["container"].get("resources", {})
        assert res.get("resourceCpuRequest"), f"{name} has no CPU request"
        if name not in GPU_EXECUTORS:
            assert "accelerator" not in res, f"{name} must not request a GPU"
            assert "nodeSelector" not in k8s.get(name, {}) and "tolerations" not in k8s.get(name, {})


def test_benchmark_runs_on_the_cuda_image_on_a_gpu_node():
    from pipeline.images import CPU_IMAGE, GPU_IMAGE

    spec, k8s = _docs(ROOT / "pipeline.yaml")
    executors = spec["deploymentSpec"]["executors"]
    bench = executors["exec-benchmark-op"]["container"]
    assert bench["image"] == GPU_IMAGE == executors["exec-train-op"]["container"]["image"]
    acc = bench["resources"]["accelerator"]
    assert (acc["resourceType"], acc["resourceCount"]) == ("nvidia.com/gpu", "1")
    assert float(bench["resources"]["resourceCpuRequest"]) >= 4, "decoding threads need CPUs to feed the GPU"
    assert k8s["exec-benchmark-op"]["nodeSelector"] == k8s["exec-train-op"]["nodeSelector"]
    assert k8s["exec-benchmark-op"]["tolerations"] == k8s["exec-train-op"]["tolerations"]
    assert {executors[e]["container"]["image"] for e in executors if e not in GPU_EXECUTORS} == {CPU_IMAGE}


def test_secrets_by_reference_where_needed():
    _, k8s = _docs(ROOT / "pipeline.yaml")
    assert _secret_names(k8s["exec-ingest-op"]) == {"mar-s3", "mar-supervisely"}
    assert _secret_names(k8s["exec-check-data-op"]) == {"mar-mlflow"}
    for name in ("exec-train-op", "exec-benchmark-op", "exec-register-op"):
        assert _secret_names(k8s[name]) == {"mar-s3", "mar-mlflow"}, name
    assert "exec-skip-op" not in k8s
    envs = {m["envVar"]: m["secretKey"] for s in k8s["exec-train-op"]["secretAsEnv"] for m in s["keyToEnv"]}
    assert envs == {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
                    "AWS_ENDPOINT_URL": "AWS_ENDPOINT_URL", "MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",
                    "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD"}
    ingest = {s["secretName"]: s for s in k8s["exec-ingest-op"]["secretAsEnv"]}
    assert ingest["mar-supervisely"]["optional"] is True and ingest["mar-s3"]["optional"] is False
    assert {m["envVar"] for m in ingest["mar-supervisely"]["keyToEnv"]} == {"SERVER_ADDRESS", "API_TOKEN", "TEAM_ID"}


CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIAFAKEKEY0000001", "AWS_SECRET_ACCESS_KEY": "s3-secret-value-must-not-leak",
               "MLFLOW_TRACKING_PASSWORD": "mlflow-password-must-not-leak",
               "API_TOKEN": "supervisely-token-must-not-leak", "KF_PIPELINES_TOKEN": "kfp-token-must-not-leak"}


@pytest.fixture
def reload_dag(monkeypatch):
    """Reload pipeline.dag under a patched environment; restore it afterwards."""
    def _reload(env: dict[str, str]):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        return importlib.reload(dag)
    yield _reload
    monkeypatch.undo()
    importlib.reload(dag)


def test_compile_time_settings_from_env_and_no_credentials(tmp_path, reload_dag, caplog, capsys):
    caplog.set_level("DEBUG")
    m = reload_dag({"MAR_GPU_COUNT": "2", "MAR_GPU_NODE_SELECTOR": "pool=a100",
                    "MAR_GPU_TOLERATION": "dedicated=gpu:NoExecute", "MAR_S3_SECRET": "lab-s3",
                    "MAR_MLFLOW_SECRET": "lab-mlflow", **CREDENTIALS})
    out = Path(m.compile_pipeline(str(tmp_path / "p.yaml")))
    spec, k8s = _docs(out)
    acc = spec["deploymentSpec"]["executors"]["exec-train-op"]["container"]["resources"]["accelerator"]
    assert acc["resourceCount"] == "2"
    bench_acc = spec["deploymentSpec"]["executors"]["exec-benchmark-op"]["container"]["resources"]["accelerator"]
    assert bench_acc["resourceCount"] == "1", "the benchmark uses one GPU whatever train gets"
    assert k8s["exec-train-op"]["nodeSelector"]["labels"] == {"pool": "a100"}
    assert k8s["exec-benchmark-op"]["nodeSelector"]["labels"] == {"pool": "a100"}
    assert k8s["exec-train-op"]["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "gpu",
                                                    "effect": "NoExecute"}]
    assert _secret_names(k8s["exec-register-op"]) == {"lab-s3", "lab-mlflow"}
    text = out.read_text() + caplog.text + "".join(capsys.readouterr())
    for name, value in CREDENTIALS.items():
        assert value not in text, f"{name} leaked into the compiled pipeline or the log"


def test_cpu_training_has_no_gpu_placement(tmp_path, reload_dag):
    m = reload_dag({"MAR_GPU_COUNT": "0"})
    spec, k8s = _docs(Path(m.compile_pipeline(str(tmp_path / "p.yaml"))))
    for name in GPU_EXECUTORS:
        assert "accelerator" not in spec["deploymentSpec"]["executors"][name]["container"]["resources"]
        assert "nodeSelector" not in k8s.get(name, {}) and "tolerations" not in k8s.get(name, {})


@pytest.mark.parametrize("text, expected", [
    ("nvidia.com/gpu:NoSchedule", ("nvidia.com/gpu", "NoSchedule", "")),
    ("dedicated=gpu:PreferNoSchedule", ("dedicated", "PreferNoSchedule", "gpu")),
    ("", None),
])
def test_parse_toleration(text, expected):
    t = dag.parse_toleration(text)
    assert (t if t is None else (t.key, t.effect, t.value)) == expected


@pytest.mark.parametrize("env, var", [
    ({"MAR_GPU_COUNT": "one"}, "MAR_GPU_COUNT"),
    ({"MAR_GPU_NODE_SELECTOR": "gpu"}, "MAR_GPU_NODE_SELECTOR"),
    ({"MAR_GPU_TOLERATION": "nvidia.com/gpu:Sometimes"}, "MAR_GPU_TOLERATION"),
    ({"MAR_S3_SECRET": " "}, "MAR_S3_SECRET"),
])
def test_bad_settings_name_the_variable(env, var):
    with pytest.raises(dag.ClusterSettingsError, match=var):
        dag.settings_from_env(env)


def test_default_settings():
    s = dag.settings_from_env({})
    assert (s.gpu_count, s.gpu_node_selector, s.s3_secret) == (1, ("nvidia.com/gpu.present", "true"), "mar-s3")
    assert json.dumps(s.gpu_toleration.__dict__) == json.dumps({"key": "nvidia.com/gpu", "effect": "NoSchedule",
                                                               "value": ""})


def test_compiled_yaml_parses_as_the_api_server_parses_it(tmp_path, reload_dag):
    """PipelineSpec, PlatformSpec and every KubernetesExecutorConfig through protobuf, unknown fields
    rejected: the committed package and one compiled with other cluster settings."""
    committed = parse_package((ROOT / "pipeline.yaml").read_text())
    assert committed.spec.pipeline_info.name == dag.PIPELINE_NAME
    assert set(committed.kubernetes) >= {"exec-train-op", "exec-benchmark-op", "exec-ingest-op"}
    bench = committed.kubernetes["exec-benchmark-op"]
    assert bench.node_selector.labels["nvidia.com/gpu.present"] == "true"
    assert [(t.key, t.operator, t.effect) for t in bench.tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]
    m = reload_dag({"MAR_GPU_COUNT": "0", "MAR_GPU_TOLERATION": "dedicated=gpu:NoExecute"})
    other = parse_package(Path(m.compile_pipeline(str(tmp_path / "p.yaml"))).read_text())
    assert not other.kubernetes["exec-benchmark-op"].HasField("node_selector")


@pytest.mark.parametrize("where", ["pipeline", "platform", "executor"])
def test_strict_parse_rejects_unknown_fields(where):
    spec, platform = list(yaml.safe_load_all((ROOT / "pipeline.yaml").read_text()))
    if where == "pipeline":
        spec["deploymentSpec"]["executors"]["exec-train-op"]["container"]["gpus"] = 1
    elif where == "platform":
        platform["platforms"]["kubernetes"]["deploymentSpec"]["nodes"] = {}
    else:
        platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train-op"]["tolerations"][0][
            "tolerationSeconds_"] = 5
    with pytest.raises(SpecError):
        parse_package(yaml.safe_dump_all([spec, platform]))
