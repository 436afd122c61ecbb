"""Kubeflow Pipelines cluster: upload the compiled DAG (a new version when the pipeline name
exists), start runs and recurring runs through ``kfp.Client``.

Authentication: a bearer token from ``KF_PIPELINES_TOKEN`` when set, otherwise whatever the kfp
context (``~/.config/kfp/context.json``: cookie or header) provides. Credentials for S3, MLflow and
Supervisely never travel with a run: the pods read them from Kubernetes secrets (see pipeline/dag.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

logger = logging.getLogger(__name__)

TOKEN_ENV = "KF_PIPELINES_TOKEN"
ATTEMPTS = 3
TIMEOUT_S = 15.0
BACKOFF_S = 1.0
T = TypeVar("T")


class ClusterError(RuntimeError):
    """The cluster could not be reached or refused a request; the message names the host and what to check."""


class CronError(ValueError):
    """A schedule that Kubeflow Pipelines would reject; the message shows the expected format."""


# ----------------------------------------------------------------------------- cron
_CRON_FIELDS = (  # name, low, high, names
    ("second", 0, 59, None),
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day of week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_CRON_HELP = ("Kubeflow Pipelines cron has 6 fields, seconds first: 'second minute hour day-of-month month "
              "day-of-week', e.g. '0 0 3 * * *' = every day at 03:00:00, '0 30 2 * * MON-FRI' = 02:30 on weekdays; "
              "'@daily', '@hourly' and '@every 6h' also work")


def _cron_value(text: str, field: str, low: int, high: int, names: tuple[str, ...] | None, expr: str) -> int:
    if names and text.upper() in names:
        return names.index(text.upper()) + low
    if not text.isdigit() or not low <= int(text) <= high:
        raise CronError(f"cron {expr!r}: {field} value {text!r} is not in {low}-{high}"
                        f"{' or ' + '/'.join(names) if names else ''}. {_CRON_HELP}")
    return int(text)


def validate_cron(expr: str) -> str:
    """The normalised cron expression (single spaces) or CronError explaining KFP's 6-field format."""
    expr = " ".join(expr.split())
    if not expr:
        raise CronError(f"empty cron expression. {_CRON_HELP}")
    if expr.startswith("@"):
        if expr in _DESCRIPTORS:
            return expr
        m = re.fullmatch(r"@every ((\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+)", expr)
        if m:
            return expr
        raise CronError(f"cron {expr!r}: unknown descriptor. {_CRON_HELP}")
    fields = expr.split(" ")
    if len(fields) == 5:
        raise CronError(f"cron {expr!r} has 5 fields (standard crontab); {_CRON_HELP}. "
                        f"Did you mean '0 {expr}'?")
    if len(fields) != 6:
        raise CronError(f"cron {expr!r} has {len(fields)} fields. {_CRON_HELP}")
    for text, (field, low, high, names) in zip(fields, _CRON_FIELDS):
        if text == "?" and field in ("day of month", "day of week"):
            continue
        for part in text.split(","):
            rng, _, step = part.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                raise CronError(f"cron {expr!r}: {field} step {step!r} must be a positive number. {_CRON_HELP}")
            if rng == "*":
                continue
            lo, dash, hi = rng.partition("-")
            a = _cron_value(lo, field, low, high, names, expr)
            if dash and _cron_value(hi, field, low, high, names, expr) < a:
                raise CronError(f"cron {expr!r}: {field} range {rng!r} runs backwards. {_CRON_HELP}")
    return expr


# ----------------------------------------------------------------------------- connection
def _explain(host: str, what: str, e: BaseException) -> str:
    import kfp_server_api

    hint = (f"Check that {host} is the Kubeflow Pipelines API endpoint (e.g. http://localhost:8080 after "
            "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`) and that it is reachable from here")
    if isinstance(e, kfp_server_api.ApiException):
        body = e.body.decode(errors="replace") if isinstance(e.body, bytes) else str(e.body or "")
        detail = f"HTTP {e.status} {e.reason or ''}".strip() + (f": {body[:300]}" if body else "")
        if e.status in (401, 403):
            hint = (f"{host} refused the credentials: set {TOKEN_ENV} to a valid token (or log in so the kfp "
                    "context holds a session cookie), and check that you may use the namespace (--namespace)")
        elif e.status == 404:
            hint = (f"{host} has no such Kubeflow Pipelines v2beta1 endpoint: check the URL (no trailing UI path "
                    "such as /pipeline/#) and that the server runs KFP 2.x")
        elif e.status and 400 <= e.status < 500:
            hint = "the server rejected the request as sent; see its message"
    else:
        detail = f"{type(e).__name__}: {e}"
    return f"Kubeflow Pipelines at {host}: {what} failed ({detail}). {hint}."


def _transient(e: BaseException) -> bool:
    import kfp_server_api
    import urllib3

    if isinstance(e, kfp_server_api.ApiException):
        return e.status in (0, None, 429, 500, 502, 503, 504)
    return isinstance(e, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


def call(host: str, what: str, fn: Callable[[], T], *, attempts: int = ATTEMPTS, backoff_s: float = BACKOFF_S) -> T:
    """``fn()`` with bounded retries on transient errors; ClusterError naming ``host`` and ``what`` otherwise.
    Pass ``attempts=1`` for requests that create something (a retry could create it twice)."""
    import kfp_server_api
    import urllib3

    for i in range(1, attempts + 1):
        try:
            return fn()
        except (kfp_server_api.ApiException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError,
                ValueError) as e:
            if i < attempts and _transient(e):
                logger.warning("%s at %s failed (attempt %d of %d): %s; retrying", what, host, i, attempts,
                               type(e).__name__)
                time.sleep(backoff_s * 2 ** (i - 1))
                continue
            raise ClusterError(_explain(host, what, e)) from e
    raise AssertionError("unreachable")


def _context() -> dict[str, Any]:
    from kfp.client import Client

    path = Path(Client._LOCAL_KFP_CONTEXT)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        logger.warning("ignoring unreadable kfp context %s", path)
        return {}


def check_health(host: str, token: str | None, *, timeout_s: float = TIMEOUT_S, attempts: int = ATTEMPTS,
                 backoff_s: float = BACKOFF_S) -> bool:
    """GET /apis/v2beta1/healthz with a timeout and bounded retries; returns whether KFP is multi-user."""
    import kfp_server_api

    cfg = kfp_server_api.Configuration(host=host)
    cfg.retries = 0
    if token:
        cfg.api_key["authorization"] = token
        cfg.api_key_prefix["authorization"] = "Bearer"
    ctx = _context()
    api = kfp_server_api.ApiClient(cfg, cookie=ctx.get("client_authentication_cookie"),
                                   header_name=ctx.get("client_authentication_header_name"),
                                   header_value=ctx.get("client_authentication_header_value"))
    healthz = kfp_server_api.HealthzServiceApi(api)
    try:
        r = call(host, "the health check", lambda: healthz.healthz_service_get_healthz(_request_timeout=timeout_s),
                 attempts=attempts, backoff_s=backoff_s)
    finally:
        api.close()
    return bool(getattr(r, "multi_user", False))


def connect(host: str, *, namespace: str | None = None, token: str | None = None, attempts: int = ATTEMPTS,
            backoff_s: float = BACKOFF_S, timeout_s: float = TIMEOUT_S):
    """A ``kfp.Client`` for ``host`` after a bounded health check; multi-user clusters need ``namespace``."""
    from kfp import Client

    if not re.match(r"^https?://[^/\s]+", host or ""):
        raise ClusterError(f"--host {host!r} is not a URL: give the Kubeflow Pipelines endpoint, e.g. "
                           "http://localhost:8080 or https://kubeflow.example.org/pipeline")
    host = host.rstrip("/")
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    multi_user = check_health(host, token, timeout_s=timeout_s, attempts=attempts, backoff_s=backoff_s)
    if multi_user and not namespace:
        raise ClusterError(f"Kubeflow Pipelines at {host} is multi-user: pass --namespace <your profile namespace>")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return call(host, "connecting", lambda: Client(host=host, existing_token=token,
                                                         namespace=namespace or "kubeflow"), attempts=1)


@contextlib.contextmanager
def _links_to_log():
    """kfp.Client prints UI links; send them to the log instead of stdout."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield
    for line in buf.getvalue().splitlines():
        if line.strip():
            logger.info("%s", line.strip())


# ----------------------------------------------------------------------------- publishing
@dataclass
class Published:
    host: str
    pipeline_id: str
    version_id: str
    version_name: str
    new_pipeline: bool
    experiment_id: str


def compile_package(out_dir: str | Path, pipeline: str = "train") -> Path:
    """Compile the training DAG (or, with ``pipeline="score"``, the cohort scoring DAG) to
    ``out_dir/pipeline.yaml`` (with the MAR_* settings of this environment)."""
    if pipeline == "score":
        from .score_dag import compile_score_pipeline as compile_pipeline
    else:
        from .dag import compile_pipeline

    return Path(compile_pipeline(str(Path(out_dir) / "pipeline.yaml")))


def default_pipeline_name(pipeline: str = "train") -> str:
    if pipeline == "score":
        from .score_dag import PIPELINE_NAME
    else:
        from .dag import PIPELINE_NAME
    return PIPELINE_NAME


def version_name(pipeline_name: str, package: Path) -> str:
    digest = hashlib.sha256(package.read_bytes()).hexdigest()[:8]
    return f"{pipeline_name}-{time.strftime('%Y%m%d-%H%M%S')}-{digest}"


def find_pipeline(client, host: str, name: str, namespace: str | None) -> str | None:
    flt = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})
    r = call(host, f"looking up pipeline {name!r}",
             lambda: client.list_pipelines(filter=flt, namespace=namespace, page_size=10))
    found = [p for p in (r.pipelines or []) if p.display_name == name]
    if len(found) > 1:
        raise ClusterError(f"Kubeflow Pipelines at {host} holds {len(found)} pipelines named {name!r}: "
                           "delete the duplicates or pass another --pipeline-name")
    return found[0].pipeline_id if found else None


def upload(client, host: str, package: Path, name: str, *, namespace: str | None = None,
           description: str = "") -> tuple[str, str, str, bool]:
    """Upload ``package`` as pipeline ``name``, or as a new version of it when it exists.
    Returns (pipeline_id, version_id, version_name, created_pipeline)."""
    vname = version_name(name, package)
    pid = find_pipeline(client, host, name, namespace)
    with _links_to_log():
        if pid is None:
            p = call(host, f"uploading pipeline {name!r}",
                     lambda: client.upload_pipeline(str(package), pipeline_name=name, description=description or None,
                                                    namespace=namespace), attempts=1)
            versions = call(host, f"listing the versions of pipeline {name!r}",
                            lambda: client.list_pipeline_versions(p.pipeline_id, page_size=1,
                                                                  sort_by="created_at desc"))
            if not versions.pipeline_versions:
                raise ClusterError(f"Kubeflow Pipelines at {host} created pipeline {name!r} ({p.pipeline_id}) "
                                   "but lists no version of it: check the pipeline in the KFP UI")
            v = versions.pipeline_versions[0]
            logger.info("uploaded new pipeline %s (%s), version %s", name, p.pipeline_id, v.pipeline_version_id)
            return p.pipeline_id, v.pipeline_version_id, v.display_name or vname, True
        v = call(host, f"uploading a new version of pipeline {name!r}",
                 lambda: client.upload_pipeline_version(str(package), pipeline_version_name=vname, pipeline_id=pid,
                                                        description=description or None), attempts=1)
    logger.info("uploaded version %s (%s) of pipeline %s (%s)", vname, v.pipeline_version_id, name, pid)
    return pid, v.pipeline_version_id, vname, False


def publish(client, host: str, *, pipeline_name: str, experiment: str, namespace: str | None = None,
            description: str = "", pipeline: str = "train") -> Published:
    """Compile, upload (new pipeline or new version) and get or create the KFP experiment."""
    with tempfile.TemporaryDirectory(prefix="mar-kfp-") as d:
        package = compile_package(d, pipeline)
        pid, vid, vname, new = upload(client, host, package, pipeline_name, namespace=namespace,
                                      description=description)
    with _links_to_log():
        exp = call(host, f"getting or creating experiment {experiment!r}",
                   lambda: client.create_experiment(experiment, namespace=namespace), attempts=1)
    return Published(host, pid, vid, vname, new, exp.experiment_id)


def run_parameters(source: str, config_json: str, *, tracking_uri: str = "", mlflow_experiment: str = "",
                   run_name: str = "", artifact_root: str = "", force: bool = False) -> dict[str, Any]:
    """Pipeline parameters for a cluster run; empty optional values keep the pipeline's defaults."""
    if not source:
        raise ClusterError("--source is required: an s3://bucket/prefix, sly://<project id> or a path the pods mount")
    if "://" not in source:
        logger.warning("source %s is a local path: the pipeline pods must be able to read it (a mounted volume); "
                       "use s3://… or sly://… otherwise", source)
    params: dict[str, Any] = {"source": source, "config_json": config_json, "force": bool(force)}
    for key, value in (("tracking_uri", tracking_uri), ("experiment", mlflow_experiment), ("run_name", run_name),
                       ("artifact_root", artifact_root)):
        if value:
            params[key] = value
    return params


def score_parameters(videos: str, model: str, *, metadata: str = "", shards: int = 4, bin_s: float = 300.0,
                     cache: str = "", tracking_uri: str = "", mlflow_experiment: str = "", run_name: str = "",
                     artifact_root: str = "") -> dict[str, Any]:
    """Parameters of a cohort scoring run; empty optional values keep the pipeline's defaults."""
    if not videos:
        raise ClusterError("--videos is required for --pipeline score: a directory the pods mount or s3://bucket/prefix")
    if shards < 1:
        raise ClusterError(f"--shards {shards}: must be at least 1")
    params: dict[str, Any] = {"videos": videos, "shards": int(shards), "bin_s": float(bin_s)}
    for key, value in (("model", model), ("metadata", metadata), ("cache", cache), ("tracking_uri", tracking_uri),
                       ("experiment", mlflow_experiment), ("run_name", run_name), ("artifact_root", artifact_root)):
        if value:
            params[key] = value
    return params


def submit(host: str, params: dict[str, Any], *, experiment: str, run_name: str = "", namespace: str | None = None,
           pipeline_name: str | None = None, pipeline_root: str | None = None, client=None,
           pipeline: str = "train") -> dict[str, Any]:
    """Compile, upload and start one run of the ``pipeline`` DAG (train or score); returns the ids and
    the run's UI link."""
    pipeline_name = pipeline_name or default_pipeline_name(pipeline)
    client = client or connect(host, namespace=namespace)
    host = host.rstrip("/")
    pub = publish(client, host, pipeline_name=pipeline_name, experiment=experiment, namespace=namespace,
                  pipeline=pipeline)
    job = run_name or f"{pipeline_name} {time.strftime('%Y-%m-%d %H:%M:%S')}"
    with _links_to_log():
        run = call(host, f"starting run {job!r}",
                   lambda: client.run_pipeline(pub.experiment_id, job, params=params, pipeline_id=pub.pipeline_id,
                                               version_id=pub.version_id, pipeline_root=pipeline_root or None),
                   attempts=1)
    logger.info("started run %s in experiment %s", run.run_id, experiment)
    return {"host": host, "pipeline_id": pub.pipeline_id, "version_id": pub.version_id,
            "version_name": pub.version_name, "new_pipeline": pub.new_pipeline, "experiment_id": pub.experiment_id,
            "run_id": run.run_id, "url": f"{host}/#/runs/details/{run.run_id}"}


def schedule(host: str, params: dict[str, Any], *, cron: str, experiment: str, name: str = "",
             namespace: str | None = None, pipeline_name: str | None = None, pipeline_root: str | None = None,
             max_concurrency: int = 1, catchup: bool = False, client=None, pipeline: str = "train") -> dict[str, Any]:
    """Compile, upload and create a recurring run of the ``pipeline`` DAG (train or score) on a 6-field
    cron schedule (validated first)."""
    cron = validate_cron(cron)
    if max_concurrency < 1:
        raise ClusterError(f"--max-concurrency {max_concurrency}: must be at least 1")
    pipeline_name = pipeline_name or default_pipeline_name(pipeline)
    client = client or connect(host, namespace=namespace)
    host = host.rstrip("/")
    pub = publish(client, host, pipeline_name=pipeline_name, experiment=experiment, namespace=namespace,
                  pipeline=pipeline)
    job = name or f"{pipeline_name} ({cron})"
    rr = call(host, f"creating recurring run {job!r}",
              lambda: client.create_recurring_run(pub.experiment_id, job, cron_expression=cron,
                                                  max_concurrency=max_concurrency, no_catchup=not catchup,
                                                  params=params, pipeline_id=pub.pipeline_id,
                                                  version_id=pub.version_id, pipeline_root=pipeline_root or None),
              attempts=1)
    logger.info("created recurring run %s (%s) in experiment %s", job, rr.recurring_run_id, experiment)
    return {"host": host, "pipeline_id": pub.pipeline_id, "version_id": pub.version_id,
            "version_name": pub.version_name, "new_pipeline": pub.new_pipeline, "experiment_id": pub.experiment_id,
            "recurring_run_id": rr.recurring_run_id, "name": job, "cron": cron,
            "url": f"{host}/#/recurringrun/details/{rr.recurring_run_id}"}
