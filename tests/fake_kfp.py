"""A small in-memory fake of the Kubeflow Pipelines v2beta1 REST API on 127.0.0.1, enough for
``kfp.Client`` 2.17: healthz, pipeline upload / upload_version (multipart), pipelines list (filter on
display_name) / get / get by name, pipeline versions list, experiments create / list / get, runs
create, recurring runs create. Every request is recorded in ``requests``. An uploaded package that
does not parse as the real API server parses it (``kfp_spec.parse_package``: protobuf, unknown fields
rejected) is answered 400 and stored nowhere."""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import yaml

from kfp_spec import SpecError, parse_package

PREFIX = "/apis/v2beta1"
NOW = "2026-01-01T00:00:00Z"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    files: dict[str, bytes] = field(default_factory=dict)


def _parse_multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    out = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        out[name] = part.get_payload(decode=True)
    return out


def _matches(item: dict, flt: str | None) -> bool:
    if not flt:
        return True
    for p in json.loads(flt).get("predicates", []):
        if p.get("operation") in ("EQUALS", 1) and item.get(p["key"]) != p.get("stringValue"):
            return False
    return True


class FakeKFP:
    """``with FakeKFP() as kfp: kfp.url``. State: pipelines, versions, experiments, runs, recurring_runs."""

    def __init__(self, multi_user: bool = False, fail_healthz: int = 0, token: str | None = None):
        self.multi_user = multi_user
        self.token = token  # when set, requests without "Authorization: Bearer <token>" get 401
        self.fail_healthz = fail_healthz  # answer 503 this many times first
        self.requests: list[Request] = []
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, list[dict]] = {}
        self.specs: dict[str, dict] = {}  # version id -> uploaded pipeline spec (first YAML document)
        self.experiments: dict[str, dict] = {}
        self.runs: list[dict] = []
        self.recurring_runs: list[dict] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --------------------------------------------------------------- lifecycle
    def __enter__(self) -> "FakeKFP":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10

            def log_message(self, *a: Any) -> None:
                pass

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                u = urlparse(self.path)
                req = Request(self.command, unquote(u.path), {k: v[-1] for k, v in parse_qs(u.query).items()},
                              {k.lower(): v for k, v in self.headers.items()}, body)
                ctype = self.headers.get("Content-Type", "")
                if ctype.startswith("multipart/form-data"):
                    req.files = _parse_multipart(ctype, body)
                elif body:
                    req.json = json.loads(body)
                with fake._lock:
                    fake.requests.append(req)
                    status, out = fake.route(req)
                data = json.dumps(out).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --------------------------------------------------------------- API
    def _id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    def _add_version(self, pipeline_id: str, name: str, description: str, package: bytes) -> dict:
        v = {"pipeline_id": pipeline_id, "pipeline_version_id": self._id("version"), "display_name": name,
             "name": name, "description": description, "created_at": NOW}
        self.versions.setdefault(pipeline_id, []).append(v)
        self.specs[v["pipeline_version_id"]] = next(yaml.safe_load_all(package))
        return v

    def route(self, r: Request) -> tuple[int, Any]:
        p = r.path
        if self.token is not None and r.headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"error": "unauthenticated"}
        if not p.startswith(PREFIX):
            return 404, {"error": f"no route {p}"}
        p = p[len(PREFIX):]
        if r.method == "GET" and p == "/healthz":
            if self.fail_healthz > 0:
                self.fail_healthz -= 1
                return 503, {"error": "starting"}
            return 200, {"commit_sha": "fake", "tag_name": "2.5.0", "multi_user": self.multi_user}
        if r.method == "POST" and p in ("/pipelines/upload", "/pipelines/upload_version"):
            try:
                parse_package(r.files.get("uploadfile", b""))
            except SpecError as e:
                return 400, {"error": f"invalid pipeline spec: {e}", "code": 3}
        if r.method == "POST" and p == "/pipelines/upload":
            name = r.query["name"]
            if any(x["display_name"] == name for x in self.pipelines.values()):
                return 409, {"error": f"pipeline {name} already exists"}
            pl = {"pipeline_id": self._id("pipeline"), "display_name": name, "name": name,
                  "description": r.query.get("description", ""), "namespace": r.query.get("namespace", ""),
                  "created_at": NOW}
            self.pipelines[pl["pipeline_id"]] = pl
            self._add_version(pl["pipeline_id"], name, pl["description"], r.files["uploadfile"])
            return 200, pl
        if r.method == "POST" and p == "/pipelines/upload_version":
            pid = r.query.get("pipelineid")
            if pid not in self.pipelines:
                return 404, {"error": f"pipeline {pid} not found"}
            return 200, self._add_version(pid, r.query["name"], r.query.get("description", ""),
                                          r.files["uploadfile"])
        if r.method == "GET" and p == "/pipelines":
            found = [x for x in self.pipelines.values() if _matches(x, r.query.get("filter"))]
            return 200, {"pipelines": found, "total_size": len(found)}
        if r.method == "GET" and p.startswith("/pipelines/names/"):
            name = p.rsplit("/", 1)[1]
            found = [x for x in self.pipelines.values() if x["display_name"] == name]
            return (200, found[0]) if found else (404, {"error": f"pipeline {name} not found"})
        parts = p.strip("/").split("/")
        if r.method == "GET" and len(parts) == 3 and parts[0] == "pipelines" and parts[2] == "versions":
            vs = list(reversed(self.versions.get(parts[1], [])))  # newest first
            return 200, {"pipeline_versions": vs[: int(r.query.get("page_size", 10))], "total_size": len(vs)}
        if r.method == "GET" and len(parts) == 2 and parts[0] == "pipelines":
            pl = self.pipelines.get(parts[1])
            return (200, pl) if pl else (404, {"error": f"pipeline {parts[1]} not found"})
        if r.method == "GET" and p == "/experiments":
            found = [x for x in self.experiments.values() if _matches(x, r.query.get("filter"))]
            return 200, {"experiments": found, "total_size": len(found)}
        if r.method == "POST" and p == "/experiments":
            exp = {**r.json, "experiment_id": self._id("experiment"), "created_at": NOW, "storage_state": "AVAILABLE"}
            self.experiments[exp["experiment_id"]] = exp
            return 200, exp
        if r.method == "GET" and len(parts) == 2 and parts[0] == "experiments":
            exp = self.experiments.get(parts[1])
            return (200, exp) if exp else (404, {"error": f"experiment {parts[1]} not found"})
        if r.method == "POST" and p == "/runs":
            run = {**r.json, "run_id": self._id("run"), "state": "PENDING", "created_at": NOW}
            self.runs.append(run)
            return 200, run
        if r.method == "POST" and p == "/recurringruns":
            rr = {**r.json, "recurring_run_id": self._id("recurring"), "status": "ENABLED", "created_at": NOW}
            self.recurring_runs.append(rr)
            return 200, rr
        return 404, {"error": f"no route {r.method} {r.path}"}
