"""A fake Supervisely Team Files server on 127.0.0.1: records the bytes of every upload, can fail."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class FakeTeamFiles:
    """The part of the Supervisely public API that Team Files uploads use, on 127.0.0.1."""

    def __init__(self, existing: list[str] | None = None, fail_upload: bool | int = False):
        """``fail_upload``: True answers every upload 500; a number N answers the first N uploads 500."""
        self.requests: list[tuple[str, str]] = []
        self.uploads: list[dict] = []
        self.received: list[tuple[int, int]] = []  # per upload request: (status answered, body bytes received)
        self.files: dict[str, bytes] = {p: b"" for p in (existing or [])}
        self.fail_upload = fail_upload
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _reply(self, code: int, payload) -> None:
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                fake.requests.append(("GET", self.path))
                self._reply(404, {"error": "not found"})

            def do_POST(self):
                url = urlparse(self.path)
                fake.requests.append(("POST", self.path))
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("x-api-key") != "test-token":
                    return self._reply(401, {"error": "bad token"})
                if url.path == "/public/api/v3/file-storage.list":
                    req = json.loads(body)
                    path = req["path"]
                    hits = [{"path": p, "name": p.rsplit("/", 1)[-1], "teamId": req["teamId"]}
                            for p in fake.files if p.startswith(path)]
                    return self._reply(200, hits)
                if url.path == "/public/api/v3/file-storage.bulk.upload":
                    if fake.fail_upload is True or (fake.fail_upload and fake.fail_upload > 0):
                        if fake.fail_upload is not True:
                            fake.fail_upload -= 1
                        fake.received.append((500, len(body)))
                        return self._reply(500, {"error": "storage unavailable"})
                    fake.received.append((200, len(body)))
                    team = int(parse_qs(url.query)["teamId"][0])
                    msg = email.message_from_bytes(
                        b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body,
                        policy=email.policy.HTTP)
                    fields: list[tuple[str, bytes]] = []
                    for part in msg.iter_parts():
                        fields.append((part.get_param("name", header="content-disposition"),
                                       part.get_payload(decode=True)))
                    infos = []
                    # the SDK sends (name, path, file) triples in order
                    for i in range(0, len(fields), 3):
                        (_, name), (_, path), (_, content) = fields[i:i + 3]
                        full = path.decode() + name.decode()
                        fake.files[full] = content
                        fake.uploads.append({"team": team, "path": full, "content": content})
                        infos.append({"id": len(fake.uploads), "teamId": team, "name": name.decode(), "path": full,
                                      "sizeb": len(content)})
                    return self._reply(200, infos)
                return self._reply(404, {"error": f"unknown method {url.path}"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
