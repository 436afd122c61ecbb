"""Copies of a registered model outside MLflow: an S3 (or local) prefix and Supervisely Team Files.

``files`` maps a relative destination name to a local file or directory, e.g.
``{"model.safetensors": ..., "model_card.json": ..., "config.json": ..., "report.html": ...}``.
On S3 the names are kept; in Team Files the layout is the reference app's:
``/experiments/{project_id}_{project_name}/{run}_MVD/`` with weights under ``checkpoints/`` and
the model card as ``model_meta.json``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from typing import Mapping

from . import storage

logger = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
TEAM_FILES_RETRIES = 3
TEAM_FILES_BACKOFF_S = 2.0  # first wait between upload attempts; doubles each time
TEAM_FILES_CHUNK = 20 * 1024 * 1024  # files per request up to about this many bytes (a bigger file goes alone)
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


class MirrorError(RuntimeError):
    """A configured mirror could not be written; the message names the destination."""


def _expand(files: Mapping[str, str | os.PathLike[str]]) -> list[tuple[str, Path]]:
    """(relative name, local file) pairs; directories expand to their files under ``name/``."""
    out = []
    for name, src in files.items():
        src = Path(src)
        rel = str(name).strip("/")
        if not rel or ".." in Path(rel).parts:
            raise ValueError(f"mirror: bad destination name {name!r} for {src}")
        if src.is_dir():
            out.extend((f"{rel}/{f.relative_to(src).as_posix()}", f)
                       for f in sorted(p for p in src.rglob("*") if p.is_file()))
        elif src.is_file():
            out.append((rel, src))
        else:
            raise FileNotFoundError(f"mirror: {src} (for {name!r}) does not exist")
    return out


def mirror_to_s3(files: Mapping[str, str | os.PathLike[str]], uri_prefix: str) -> list[str]:
    """Upload ``files`` to ``uri_prefix/<name>`` (s3:// or a local directory); returns the URIs."""
    out = [storage.upload_file(src, storage.join(uri_prefix, rel)) for rel, src in _expand(files)]
    logger.info("mirrored %d files to %s", len(out), uri_prefix)
    return out


def team_files_dir(project_id: int | str, project_name: str, run_name: str) -> str:
    """``/experiments/{project_id}_{project_name}/{run}_MVD/`` with path-unsafe characters replaced."""
    def safe(s: str) -> str:
        return re.sub(r"[/\\]+", "_", str(s)).strip() or "unnamed"

    return f"/experiments/{safe(project_id)}_{safe(project_name)}/{safe(run_name)}_MVD/"


def team_files_name(rel: str) -> str:
    """Where one mirrored file goes inside the run folder."""
    if rel == "model_card.json":
        return "model_meta.json"
    if rel.endswith(WEIGHT_SUFFIXES) and not rel.startswith("checkpoints/"):
        return f"checkpoints/{rel}"
    return rel


def team_files_settings(team_id: int | None = None) -> tuple[str, str, int] | None:
    """(server address, token, team id) from SERVER_ADDRESS, API_TOKEN, TEAM_ID; None if incomplete."""
    server, token = os.environ.get("SERVER_ADDRESS", ""), os.environ.get("API_TOKEN", "")
    team = team_id if team_id is not None else os.environ.get("TEAM_ID", "")
    if not (server and token and str(team).strip()):
        return None
    try:
        return server, token, int(team)
    except ValueError as e:
        raise ValueError(f"TEAM_ID must be an integer team id, got {team!r}") from e


def _chunks(pairs: list[tuple[str, Path]], limit: int = TEAM_FILES_CHUNK) -> list[list[tuple[str, Path]]]:
    out: list[list[tuple[str, Path]]] = []
    size = 0
    for dst, src in pairs:
        n = src.stat().st_size
        if not out or (size > 0 and size + n > limit):
            out.append([])
            size = 0
        out[-1].append((dst, src))
        size += n
    return out


def _post_chunk(api, team: int, chunk: list[tuple[str, Path]], retry_count: int) -> list[dict]:
    """One bulk-upload request, retried on connection errors and 408/429/5xx with a new multipart body
    each time (the SDK's own retry re-posts the stream it already read, i.e. an empty body)."""
    import time

    import requests
    from requests_toolbelt import MultipartEncoder

    for attempt in range(1, max(1, retry_count) + 1):
        with contextlib.ExitStack() as stack:
            fields = []
            for dst, src in chunk:
                folder, name = dst.rsplit("/", 1)
                fields += [("name", name), ("path", folder + "/"),
                           ("file", (name, stack.enter_context(open(src, "rb")), "application/octet-stream"))]
            encoder = MultipartEncoder(fields=fields)
            try:
                resp = api.post(f"file-storage.bulk.upload?teamId={team}", encoder, retries=1, raise_error=True)
                return resp.json()
            except requests.HTTPError as e:
                code = e.response.status_code if e.response is not None else None
                if code not in TRANSIENT_STATUS or attempt >= retry_count:
                    raise
                reason = f"HTTP {code}"
            except (requests.ConnectionError, requests.Timeout) as e:
                if attempt >= retry_count:
                    raise
                reason = type(e).__name__
        wait = TEAM_FILES_BACKOFF_S * 2 ** (attempt - 1)
        logger.warning("Team Files upload of %d file(s) failed (%s); attempt %d of %d in %.1f s",
                       len(chunk), reason, attempt + 1, retry_count, wait)
        time.sleep(wait)
    raise AssertionError("unreachable")


def mirror_to_team_files(
    files: Mapping[str, str | os.PathLike[str]],
    *,
    project_id: int | str,
    project_name: str,
    run_name: str,
    team_id: int | None = None,
    retry_count: int = TEAM_FILES_RETRIES,
) -> list[str] | None:
    """Upload ``files`` to Supervisely Team Files; returns the remote paths, or None when not configured.

    Needs SERVER_ADDRESS, API_TOKEN and a team id (``team_id`` or env TEAM_ID). An existing run
    folder is never overwritten: the SDK picks a free name (``…_MVD_000``, ``…_MVD_001``, …).
    Files go up in requests of about 20 MiB, each tried up to ``retry_count`` times on a transient
    failure with a freshly built body.
    """
    settings = team_files_settings(team_id)
    if settings is None:
        logger.info("Team Files mirror skipped: set SERVER_ADDRESS, API_TOKEN and TEAM_ID to enable it")
        return None
    server, token, team = settings
    import requests
    import supervisely as sly

    pairs = [(team_files_name(rel), src) for rel, src in _expand(files)]
    remote_dir = team_files_dir(project_id, project_name, run_name)
    api = sly.Api(server, token, retry_count=retry_count, ignore_task_id=True)
    try:
        remote_dir = api.file.get_free_dir_name(team, remote_dir).rstrip("/") + "/"
        dst = [remote_dir + rel for rel, _ in pairs]
        infos = [info for chunk in _chunks(list(zip(dst, (src for _, src in pairs))))
                 for info in _post_chunk(api, team, chunk, retry_count)]
    except (requests.RequestException, OSError, ValueError) as e:
        raise MirrorError(f"upload to Supervisely Team Files {server} team {team} {remote_dir} failed: "
                          f"{type(e).__name__}: {e}") from e
    if len(infos) != len(dst):
        raise MirrorError(f"Team Files {server} team {team}: uploaded {len(dst)} files to {remote_dir} but the "
                          f"server acknowledged {len(infos)}")
    logger.info("mirrored %d files to Team Files %s (team %d)", len(dst), remote_dir, team)
    return dst


def mirror_model(
    model_dir: str | os.PathLike[str],
    config_json: str,
    *,
    name: str,
    version: str,
    run_name: str,
    report: str | os.PathLike[str] | None = None,
) -> dict[str, list[str] | None]:
    """Mirror a registered model (weights, model card, config, report) where the environment says.

    ``MAR_MIRROR_URI`` (s3:// or local prefix) → ``<prefix>/models/<name>/<version>/``; Team Files
    when SERVER_ADDRESS, API_TOKEN and TEAM_ID are set, under project PROJECT_ID / PROJECT_NAME
    (defaults ``local`` and the model name). Returns the written locations, None where not configured.
    """
    import tempfile

    model_dir = Path(model_dir)
    files: dict[str, Path] = {p.name: p for p in sorted(model_dir.iterdir()) if p.is_file()}
    if report is not None:
        files["report.html"] = Path(report)
    prefix = os.environ.get("MAR_MIRROR_URI", "").strip()
    out: dict[str, list[str] | None] = {"s3": None, "team_files": None}
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "config.json"
        cfg_path.write_text(config_json)
        files["config.json"] = cfg_path
        if prefix:
            out["s3"] = mirror_to_s3(files, storage.join(prefix, "models", name, str(version)))
        else:
            logger.info("S3 mirror skipped: set MAR_MIRROR_URI (s3://bucket/prefix or a directory) to enable it")
        out["team_files"] = mirror_to_team_files(
            files, project_id=os.environ.get("PROJECT_ID", "") or "local",
            project_name=os.environ.get("PROJECT_NAME", "") or name, run_name=run_name)
    return out
