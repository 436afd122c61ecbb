"""A local fake of the Supervisely public API calls that ``supervisely.download_video_project``
makes, serving a Supervisely video project from disk on 127.0.0.1: projects.meta, datasets.list
(nested datasets by parentId), projects.info, videos.list, videos.annotations.bulk.info, videos.download.
Every request is recorded in ``requests``; ``fail_downloads`` answers that many video downloads 503."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PREFIX = "/public/api/v3/"


class FakeSupervisely:
    def __init__(self, project_dir: str | Path, project_id: int = 77, token: str = "t" * 128,
                 fail_downloads: int = 0):
        import supervisely as sly

        self.project_id, self.token, self.fail_downloads = project_id, token, fail_downloads
        self.requests: list[tuple[str, str, Any]] = []
        project = sly.VideoProject(str(project_dir), sly.OpenMode.READ)
        self.meta = json.loads((Path(project_dir) / "meta.json").read_text())
        self.datasets: list[dict] = []
        self.videos: dict[int, list[dict]] = {}  # dataset id -> video infos
        self.anns: dict[int, dict] = {}  # video id -> annotation JSON
        self.paths: dict[int, Path] = {}  # video id -> file
        ids = iter(range(100, 100000))
        by_path: dict[str, int] = {}
        for ds in sorted(project.datasets, key=lambda d: Path(d.directory).relative_to(project_dir).as_posix()):
            rel = Path(ds.directory).relative_to(project_dir).as_posix()  # a or a/datasets/b
            parent = rel.rsplit("/datasets/", 1)[0] if "/datasets/" in rel else None
            ds_id = next(ids)
            by_path[rel] = ds_id
            self.datasets.append({"id": ds_id, "name": rel.rsplit("/", 1)[-1], "projectId": project_id, "description": "",
                                  "parentId": by_path[parent] if parent else None, "itemsCount": len(ds),
                                  "imagesCount": len(ds), "createdAt": "2026-01-01T00:00:00.000Z",
                                  "updatedAt": "2026-01-01T00:00:00.000Z"})
            self.videos[ds_id] = []
            for name in sorted(ds.get_items_names()):
                vid = next(ids)
                path, ann_path = ds.get_item_paths(name)
                ann = self._with_server_ids(json.loads(Path(ann_path).read_text()), ids)
                self.anns[vid] = {**ann, "videoId": vid, "videoName": name, "datasetId": ds_id}
                self.paths[vid] = Path(path)
                frames = int(ann.get("framesCount", 0))
                size = ann.get("size", {"height": 0, "width": 0})
                self.videos[ds_id].append({
                    "id": vid, "name": name, "hash": f"h{vid}", "datasetId": ds_id, "projectId": project_id,
                    "teamId": 1, "link": None, "createdAt": "2026-01-01T00:00:00.000Z",
                    "updatedAt": "2026-01-01T00:00:00.000Z", "framesCount": frames, "framesToTimecodes": [],
                    "fileMeta": {"size": Path(path).stat().st_size, "framesCount": frames,
                                 "height": size["height"], "width": size["width"], "codecType": "video",
                                 "streams": []},
                    "meta": {}, "customData": {}, "tags": [], "description": ""})
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                req = json.loads(raw) if raw and self.headers.get("Content-Type", "").startswith(
                    "application/json") else {}
                method = self.path.split("?", 1)[0]
                method = method[len(PREFIX):] if method.startswith(PREFIX) else method
                fake.requests.append((self.command, method, req))
                if self.headers.get("x-api-key") != fake.token:
                    return self._send(401, b'{"error": "invalid token"}')
                code, out = fake.route(method, req)
                if isinstance(out, bytes):
                    return self._send(code, out, "application/octet-stream")
                return self._send(code, json.dumps(out).encode())

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @staticmethod
    def _with_server_ids(ann: dict, ids) -> dict:
        """The server gives every tag, object and figure an id (and figures their object's id)."""
        object_ids = {}
        for obj in ann.get("objects", []):
            obj["id"] = object_ids[obj.get("key")] = next(ids)
            for tag in obj.get("tags", []):
                tag["id"] = next(ids)
        for tag in ann.get("tags", []):
            tag["id"] = next(ids)
        for frame in ann.get("frames", []):
            for fig in frame.get("figures", []):
                fig["id"] = next(ids)
                fig["objectId"] = object_ids.get(fig.get("objectKey"))
        return ann

    def methods(self) -> list[str]:
        return [m for _, m, _ in self.requests]

    @staticmethod
    def _page(items: list[dict]) -> dict:
        return {"total": len(items), "perPage": max(1, len(items)), "pagesCount": 1, "entities": items}

    def route(self, method: str, req: dict) -> tuple[int, Any]:
        if method == "projects.meta":
            if req.get("id") != self.project_id:
                return 404, {"error": f"project {req.get('id')} not found"}
            return 200, self.meta
        if method == "projects.info":
            if req.get("id") != self.project_id:
                return 404, {"error": f"project {req.get('id')} not found"}
            return 200, {"id": self.project_id, "name": "mice", "description": "", "type": "videos",
                         "teamId": 1, "workspaceId": 1, "datasetsCount": len(self.datasets),
                         "itemsCount": sum(len(v) for v in self.videos.values()), "settings": {},
                         "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z"}
        if method == "datasets.list":
            return 200, self._page([d for d in self.datasets if d["projectId"] == req.get("projectId")])
        if method == "videos.list":
            return 200, self._page(self.videos.get(req.get("datasetId"), []))
        if method == "videos.annotations.bulk.info":
            return 200, [self.anns[i] for i in req.get("videoIds", [])]
        if method == "videos.download":
            if self.fail_downloads > 0:
                self.fail_downloads -= 1
                return 503, {"error": "temporarily unavailable"}
            return 200, self.paths[req["id"]].read_bytes()
        if method == "instance.version":
            return 200, {"version": "6.12.0"}
        return 404, {"error": f"no such method {method}"}

    def __enter__(self) -> "FakeSupervisely":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
