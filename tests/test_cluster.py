"""`mar submit` / `mar schedule` against a local fake of the KFP v2beta1 API; cron validation;
the check-data decision against a sqlite MLflow registry."""

import json
import socket
import time

import pytest

from fake_kfp import FakeKFP
from pipeline import cluster
from pipeline.cli import main

SECRETS = {"AWS_ACCESS_KEY_ID": "AKIAFAKEKEY0000002", "AWS_SECRET_ACCESS_KEY": "s3-secret-must-not-leak-2",
           "MLFLOW_TRACKING_PASSWORD": "mlflow-password-must-not-leak-2", "API_TOKEN": "sly-token-must-not-leak-2"}
KFP_TOKEN = "kfp-bearer-must-not-be-logged"


@pytest.fixture
def env(monkeypatch, tmp_path):
    from kfp.client import Client

    monkeypatch.setattr(Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    monkeypatch.setenv("KF_PIPELINES_TOKEN", KFP_TOKEN)
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(cluster, "BACKOFF_S", 0.01)


@pytest.fixture
def kfp():
    with FakeKFP(token=KFP_TOKEN) as f:
        yield f


def _out(capsys, caplog) -> str:
    c = capsys.readouterr()
    return c.out + c.err + caplog.text


def _assert_no_secret(text: str) -> None:
    for name, value in {**SECRETS, "KF_PIPELINES_TOKEN": KFP_TOKEN}.items():
        assert value not in text, f"{name} leaked"


def test_submit_uploads_then_versions_and_starts_runs(env, kfp, capsys, caplog):
    caplog.set_level("DEBUG")
    args = ["submit", "--host", kfp.url, "--source", "s3://mice/project", "--experiment", "mice-nightly",
            "--set", "train.epochs=3", "--tracking-uri", "http://mlflow.mlflow:5000", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(args + ["--force"]) == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    # one pipeline, two versions: the upload, then upload_version
    assert [p["display_name"] for p in kfp.pipelines.values()] == ["mouse-action-recognition"]
    assert first["new_pipeline"] and not second["new_pipeline"]
    assert first["pipeline_id"] == second["pipeline_id"] and first["version_id"] != second["version_id"]
    uploads = [r.path.rsplit("/", 1)[1] for r in kfp.requests if r.method == "POST" and "upload" in r.path]
    assert uploads == ["upload", "upload_version"]
    spec = kfp.specs[second["version_id"]]
    assert spec["pipelineInfo"]["name"] == "mouse-action-recognition"
    assert "force" in spec["root"]["inputDefinitions"]["parameters"]
    assert "exec-check-data-op" in spec["deploymentSpec"]["executors"]

    # one experiment, reused
    assert [e["display_name"] for e in kfp.experiments.values()] == ["mice-nightly"]
    assert {r["experiment_id"] for r in kfp.runs} == {first["experiment_id"]}

    run1, run2 = kfp.runs
    assert run2["pipeline_version_reference"] == {"pipeline_id": second["pipeline_id"],
                                                  "pipeline_version_id": second["version_id"]}
    p1, p2 = run1["runtime_config"]["parameters"], run2["runtime_config"]["parameters"]
    assert p1["source"] == "s3://mice/project" and p1["tracking_uri"] == "http://mlflow.mlflow:5000"
    assert (p1["force"], p2["force"]) == (False, True)
    cfg = json.loads(p1["config_json"])
    assert cfg["train"]["epochs"] == 3 and cfg["model"]["arch"] == "vit_small"  # gpu profile + override
    assert set(p1) == {"source", "config_json", "force", "tracking_uri"}

    assert all(r.headers.get("authorization") == f"Bearer {KFP_TOKEN}" for r in kfp.requests)
    sent = b"".join(r.body for r in kfp.requests).decode(errors="replace")
    sent += json.dumps([r.query for r in kfp.requests])
    for value in SECRETS.values():
        assert value not in sent
    _assert_no_secret(_out(capsys, caplog))


def test_fake_api_rejects_a_package_that_does_not_parse(env, kfp, capsys, monkeypatch):
    """The fake parses uploads as the API server does; a package with an unknown field is refused."""
    import yaml

    real = cluster.compile_package

    def broken(out_dir, pipeline="train"):
        path = real(out_dir, pipeline)
        spec, platform = list(yaml.safe_load_all(path.read_text()))
        platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train-op"]["nodeSelectr"] = {}
        path.write_text(yaml.safe_dump_all([spec, platform]))
        return path

    monkeypatch.setattr(cluster, "compile_package", broken)
    code = main(["submit", "--host", kfp.url, "--source", "s3://mice/project"])
    assert code != 0
    assert not kfp.pipelines and not kfp.runs
    assert "invalid pipeline spec" in capsys.readouterr().err


def test_schedule_creates_recurring_run(env, kfp, capsys, caplog):
    assert main(["schedule", "--host", kfp.url, "--source", "sly://42", "--cron", "0 0 3 * * *",
                 "--name", "nightly", "--experiment", "scheduled", "--profile", "cpu", "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (rr,) = kfp.recurring_runs
    assert rr["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * *"}}
    assert rr["display_name"] == "nightly" and rr["mode"] == "ENABLE"
    assert rr["max_concurrency"] == 1 and rr["no_catchup"] is True
    assert rr["experiment_id"] == r["experiment_id"]
    assert [e["display_name"] for e in kfp.experiments.values()] == ["scheduled"]
    assert rr["pipeline_version_reference"]["pipeline_version_id"] == r["version_id"]
    params = rr["runtime_config"]["parameters"]
    assert params["source"] == "sly://42" and params["force"] is False
    assert json.loads(params["config_json"])["model"]["arch"] != "vit_small"  # cpu profile
    _assert_no_secret(_out(capsys, caplog))


def test_schedule_rejects_five_field_cron_before_contacting_the_server(env, kfp, capsys):
    assert main(["schedule", "--host", kfp.url, "--source", "s3://b/p", "--cron", "0 3 * * *"]) == 2
    err = capsys.readouterr().err
    assert "6 fields" in err and "'0 0 3 * * *'" in err
    assert kfp.requests == []


def test_multi_user_needs_namespace(env, monkeypatch, tmp_path):
    with FakeKFP(multi_user=True, token=KFP_TOKEN) as f:
        with pytest.raises(cluster.ClusterError, match="--namespace"):
            cluster.connect(f.url)
        r = cluster.submit(f.url, {"source": "s3://b/p", "config_json": "{}", "force": False},
                           experiment="e", namespace="team-mice")
        upload = next(q for q in f.requests if q.path.endswith("/pipelines/upload"))
        assert upload.query["namespace"] == "team-mice"
        assert f.experiments[r["experiment_id"]]["namespace"] == "team-mice"


def test_wrong_token_is_explained(env, monkeypatch):
    monkeypatch.setenv("KF_PIPELINES_TOKEN", "wrong")
    with FakeKFP(token=KFP_TOKEN) as f:
        with pytest.raises(cluster.ClusterError) as e:
            cluster.connect(f.url)
    assert f.url in str(e.value) and "KF_PIPELINES_TOKEN" in str(e.value) and "401" in str(e.value)
    assert len(f.requests) == 1  # 401 is not retried


def test_health_check_retries_then_succeeds(env):
    with FakeKFP(fail_healthz=2, token=KFP_TOKEN) as f:
        cluster.connect(f.url, attempts=3, backoff_s=0.01)
    assert [r.path for r in f.requests][:3] == ["/apis/v2beta1/healthz"] * 3


def test_unreachable_host_fails_bounded_and_names_it(env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    host = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    with pytest.raises(cluster.ClusterError) as e:
        cluster.connect(host, attempts=2, backoff_s=0.01, timeout_s=2)
    assert time.perf_counter() - t0 < 15
    assert host in str(e.value) and "port-forward" in str(e.value)


def test_host_must_be_a_url(env):
    with pytest.raises(cluster.ClusterError, match="not a URL"):
        cluster.connect("localhost:8080")


@pytest.mark.parametrize("expr", ["0 0 3 * * *", "0 30 2 * * MON-FRI", "*/30 * * * * ?", "0 0 0 1,15 JAN-JUN *",
                                  "0 0 */6 * * *", "@daily", "@every 6h30m"])
def test_valid_cron(expr):
    assert cluster.validate_cron(expr) == expr


@pytest.mark.parametrize("expr, says", [
    ("0 3 * * *", "Did you mean '0 0 3 * * *'"),
    ("0 0 3 * *", "has 5 fields"),
    ("0 0 3 * * * *", "has 7 fields"),
    ("60 0 3 * * *", "second value '60'"),
    ("0 0 24 * * *", "hour value '24'"),
    ("0 0 3 0 * *", "day of month value '0'"),
    ("0 0 3 * 13 *", "month value '13'"),
    ("0 0 3 * * 7", "day of week value '7'"),
    ("0 0 5-3 * * *", "runs backwards"),
    ("0 */0 * * * *", "step '0'"),
    ("@sometimes", "unknown descriptor"),
    ("", "empty"),
])
def test_invalid_cron_is_explained(expr, says):
    with pytest.raises(cluster.CronError) as e:
        cluster.validate_cron(expr)
    assert says in str(e.value) and "6 fields" in str(e.value)


# ----------------------------------------------------------------------------- check-data
def _manifest(directory, sha: str):
    from mvd.manifest import Interval, Manifest, VideoRecord

    v = VideoRecord(id="ds/a.mp4", dataset="ds", name="a.mp4", source="a.mp4", file="videos/a.mp4", sha256=sha,
                    fps=30.0, num_frames=100, width=64, height=48, split="train",
                    intervals=[Interval("Self-Grooming", 10, 20)])
    m = Manifest(labels=["idle", "Self-Grooming", "Head/Body TWITCH"], source="demo", videos=[v])
    m.write(directory)
    return m


def test_check_data_against_sqlite_registry(tmp_path, monkeypatch):
    from components.integrations import tracking
    from components.check_data import run_check_data
    from mvd.config import build_config

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    cfg = build_config("cpu")
    name = cfg.register.model_name
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    m = _manifest(tmp_path / "m", "a" * 64)
    assert len(m.data_version) == 16

    d = run_check_data(tmp_path / "m", cfg, tracking_uri=uri)
    assert d.decision == "train" and "no version yet" in d.reason

    c = tracking.client(uri)
    c.create_registered_model(name)
    src = (tmp_path / "model").as_uri()
    c.create_model_version(name, src, tags={"data_version": "0123456789abcdef"})
    d = run_check_data(tmp_path / "m", cfg, tracking_uri=uri)
    assert d.decision == "train" and "0123456789abcdef" in d.reason

    c.create_model_version(name, src, tags={"data_version": m.data_version})
    d = run_check_data(tmp_path / "m", cfg, tracking_uri=uri)
    assert d.decision == "skip" and "version 2" in d.reason and m.data_version in d.reason

    d = run_check_data(tmp_path / "m", cfg, tracking_uri=uri, force=True)
    assert d.decision == "train" and "force" in d.reason

    m2 = _manifest(tmp_path / "m2", "b" * 64)  # new data
    assert m2.data_version != m.data_version
    assert run_check_data(tmp_path / "m2", cfg, tracking_uri=uri).decision == "train"

    c.create_model_version(name, src, tags={"data_version": "fedcba9876543210"})  # latest moved on
    assert run_check_data(tmp_path / "m", cfg, tracking_uri=uri).decision == "train"
