"""The cluster path against real servers on 127.0.0.1: the whole DAG over HTTP to an ``mlflow
server`` with basic auth, a PostgreSQL backend store and its artifacts proxied to a SeaweedFS S3
bucket. The pipeline's processes hold no S3 credentials: every artifact goes through the server."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from s3server import HOST, free_ports

pytestmark = [pytest.mark.slow, pytest.mark.s3]

ROOT = Path(__file__).resolve().parents[1]
HEALTH_TIMEOUT_S = 120.0
ADMIN = "mar-admin"


# ----------------------------------------------------------------------------------- PostgreSQL
@dataclass
class Postgres:
    uri: str
    data: Path
    log: Path
    as_user: list[str]

    def stop(self) -> None:
        subprocess.run([*self.as_user, pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "20", "stop"],
                       capture_output=True, timeout=30)


def pg_bin(name: str) -> str | None:
    """A PostgreSQL program from PATH, else from Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / name).is_file():
            return str(d / name)
    return None


def start_postgres() -> Postgres:
    """A throw-away cluster in a temp dir on a free loopback port (as user postgres when run as root,
    since initdb refuses root)."""
    base = Path(tempfile.mkdtemp(prefix="mar-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, sock, log = base / "data", base / "sock", base / "postgres.log"
    subprocess.run([*as_user, "mkdir", "-p", str(sock)], check=True)
    subprocess.run([*as_user, pg_bin("initdb"), "-D", str(data), "-U", "mar", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True, timeout=120)
    (port,) = free_ports(1)
    proc = subprocess.run([*as_user, pg_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                           "-o", f"-p {port} -k {sock} -c listen_addresses={HOST}", "start"],
                          capture_output=True, text=True, timeout=90)
    if proc.returncode != 0:
        raise RuntimeError(f"pg_ctl start failed: {proc.stderr}\n{log.read_text(errors='replace')[-3000:]}")
    return Postgres(uri=f"postgresql+psycopg2://mar@{HOST}:{port}/postgres", data=data, log=log, as_user=as_user)


@pytest.fixture(scope="module")
def postgres():
    if pg_bin("initdb") is None or pg_bin("pg_ctl") is None:
        pytest.skip("needs PostgreSQL (initdb, pg_ctl): apt-get install postgresql")
    import psycopg2  # noqa: F401 - a dev dependency: the server's postgresql+psycopg2 store fails without it

    pg = start_postgres()
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(pg.data.parent, ignore_errors=True)


# ----------------------------------------------------------------------------------- MLflow server
@dataclass
class MlflowServer:
    url: str
    proc: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """The server spawns uvicorn workers and job runners: stop its whole process group."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)


def start_mlflow(base: Path, backend: str, artifacts: str, env: dict[str, str], *,
                 app_name: str = "") -> MlflowServer:
    import requests

    (port,) = free_ports(1)
    log = base / "mlflow-server.log"
    args = [sys.executable, "-m", "mlflow", "server", "--host", HOST, "--port", str(port), "--workers", "1",
            "--backend-store-uri", backend, "--artifacts-destination", artifacts]
    if app_name:
        args += ["--app-name", app_name]
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=base,
                                env=env, start_new_session=True)
    server = MlflowServer(url=f"http://{HOST}:{port}", proc=proc, log=log)
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            server.stop()
            raise RuntimeError(f"mlflow server exited with {proc.returncode}:\n{server.log_text()[-4000:]}")
        try:
            if requests.get(f"{server.url}/health", timeout=2).status_code == 200:
                # the first API call loads the stores (and the auth app): wait for it once here
                requests.get(f"{server.url}/api/2.0/mlflow/experiments/search", params={"max_results": 1},
                             timeout=HEALTH_TIMEOUT_S)
                return server
        except requests.RequestException:
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"mlflow server did not answer /health within {HEALTH_TIMEOUT_S} s:\n"
                       f"{server.log_text()[-4000:]}")


def _client_env(**extra: str) -> dict[str, str]:
    """This environment without any S3 credential or endpoint, nor MLflow settings of its own."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "MLFLOW_TRACKING_", "MLFLOW_S3_")) and k != "MAR_MIRROR_URI"}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["PYTHONPATH"] = str(ROOT)  # the component processes import this checkout
    env.update(extra)
    return env


def _mar(*argv: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory):
    from pipeline.demo import write_demo_project

    root = tmp_path_factory.mktemp("server-e2e") / "project"
    return write_demo_project(root, n_videos=5, seed=3, duration_s=(10, 12), sizes=[(160, 120), (192, 144)])


@pytest.fixture(scope="module")
def auth_server(postgres, s3_server, tmp_path_factory):
    """basic-auth MLflow server: PostgreSQL store, artifacts proxied to a fresh S3 bucket."""
    base = tmp_path_factory.mktemp("mlflow-server")
    bucket = s3_server.bucket()
    password = "pw-" + secrets.token_hex(12)
    config = base / "basic_auth.ini"
    config.write_text("[mlflow]\ndefault_permission = READ\n"
                      f"database_uri = sqlite:///{base / 'basic_auth.db'}\n"
                      f"admin_username = {ADMIN}\nadmin_password = {password}\n"
                      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    env = {**_client_env(), **s3_server.env(), "MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint_url,
           "MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}
    server = start_mlflow(base, postgres.uri, f"s3://{bucket}/mlflow", env, app_name="basic-auth")
    try:
        yield server, bucket, password
    finally:
        server.stop()


def _text_files(root: Path) -> str:
    out = []
    for p in root.rglob("*"):
        if p.is_file() and p.stat().st_size < 5_000_000:
            out.append(p.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(out)


def test_dag_over_http_postgres_s3_with_basic_auth(tiny_project, auth_server, s3_server, postgres, tmp_path):
    server, bucket, password = auth_server
    env = _client_env(MLFLOW_TRACKING_USERNAME=ADMIN, MLFLOW_TRACKING_PASSWORD=password)
    work = tmp_path / "work"
    argv = ["run", "--source", str(tiny_project.root), "--profile", "cpu", "--set", "train.epochs=1",
            "--set", "train.samples_per_epoch=32", "--set", "benchmark.stride=4", "--workdir", str(work),
            "--tracking-uri", server.url,
            "--experiment", "mar-server-e2e", "--json"]
    t0 = time.perf_counter()
    proc = _mar(*argv, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:] + "\nSERVER LOG:\n" + server.log_text()[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["mlflow_tracking_uri"] == server.url
    print(f"DAG over HTTP: {time.perf_counter() - t0:.1f} s")

    # the run, its metrics and the model version live on the server (PostgreSQL); artifacts went through
    # the server's proxy into the bucket
    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN, password
    try:
        c = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        run = c.get_run(summary["mlflow_run_id"])
        exp = c.get_experiment_by_name("mar-server-e2e")
        mv = c.get_model_version_by_alias(summary["model_name"], "candidate")
    finally:
        os.environ.pop("MLFLOW_TRACKING_USERNAME")
        os.environ.pop("MLFLOW_TRACKING_PASSWORD")
    assert run.info.status == "FINISHED" and "frame_macro_f1" in run.data.metrics
    assert exp.artifact_location.startswith("mlflow-artifacts:"), exp.artifact_location
    assert str(mv.version) == summary["model_version"]
    import psycopg2

    with psycopg2.connect(host=HOST, port=int(postgres.uri.rsplit(":", 1)[1].split("/")[0]), user="mar",
                          dbname="postgres") as conn, conn.cursor() as cur:
        cur.execute("select count(*) from runs where run_uuid = %s", (summary["mlflow_run_id"],))
        assert cur.fetchone()[0] == 1
    keys = [o["Key"] for page in s3_server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]
    assert any(k.startswith("mlflow/") and k.endswith("MLmodel") for k in keys), keys[:20]
    assert any(k.startswith("mlflow/") and k.endswith("model.safetensors") for k in keys), keys[:20]

    # unchanged data: the second run skips
    again = _mar(*argv, env=env)
    assert again.returncode == 0, again.stderr[-4000:]
    skipped = json.loads(again.stdout.strip().splitlines()[-1])
    assert skipped["skipped"] is True, skipped

    # models list with the right credentials
    listed = _mar("models", "list", "--tracking-uri", server.url, "--json", env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert [r["version"] for r in json.loads(listed.stdout)] == [summary["model_version"]]

    # a wrong password: one paragraph naming the URI, exit 2, no traceback, nothing new registered
    bad = _client_env(MLFLOW_TRACKING_USERNAME=ADMIN, MLFLOW_TRACKING_PASSWORD="wrong-" + password)
    for cmd in (["models", "list", "--tracking-uri", server.url],
                ["run", *argv[1:-1], "--workdir", str(tmp_path / "bad-work")]):
        res = _mar(*cmd, env=bad, timeout=300)
        assert res.returncode == 2, (cmd, res.stderr[-3000:])
        err = res.stderr.strip()
        assert server.url in err and "refused the credentials" in err, err
        assert "Traceback" not in err and len([ln for ln in err.splitlines() if ": error: " in ln]) == 1, err
        assert password not in err
    assert not (tmp_path / "bad-work" / "runs").exists()
    assert _mar("models", "list", "--tracking-uri", server.url, "--json", env=env, timeout=120).stdout == listed.stdout

    # no credential in the logs, the workdir or the MLflow params
    for text in (proc.stdout, proc.stderr, again.stdout, again.stderr, _text_files(work),
                 json.dumps(run.data.params), json.dumps(run.data.tags)):
        assert password not in text


def test_server_whose_artifact_store_refuses(tiny_project, s3_server, tmp_path):
    """S3 refuses the server (a wrong secret key): `mar run` stops before any stage with one paragraph
    naming the URI and the artifact store."""
    env = {**_client_env(), **s3_server.env(), "MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint_url,
           "AWS_SECRET_ACCESS_KEY": "not-the-secret-key"}
    server = start_mlflow(tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}", f"s3://{s3_server.bucket()}/mlflow", env)
    try:
        res = _mar("run", "--source", str(tiny_project.root), "--profile", "cpu", "--workdir", str(tmp_path / "w"),
                   "--tracking-uri", server.url, env=_client_env(), timeout=300)
    finally:
        server.stop()
    err = res.stderr.strip()
    assert res.returncode == 2, err
    assert server.url in err and "artifact store" in err and "Traceback" not in err, err
    assert not (tmp_path / "w" / "runs").exists()
