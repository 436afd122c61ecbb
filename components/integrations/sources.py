"""Where an ingest source lives: resolve ``--source`` to a local Supervisely project directory.

Accepted sources:

- a local directory holding the project (``meta.json`` plus dataset folders);
- ``s3://bucket/prefix``: a project stored under an object-storage prefix (``meta.json`` directly
  under the prefix), downloaded with :mod:`components.integrations.storage`;
- ``sly://<project id>``: a project on a Supervisely instance, downloaded with the SDK's
  ``download_video_project`` (nested datasets included). Needs ``SERVER_ADDRESS`` and ``API_TOKEN``
  in the environment; network failures are retried a bounded number of times.

For cohort scoring (:mod:`components.score`), :func:`list_sly_videos` lists the videos of a project or of
one dataset, ``sly://<project id>/<dataset>``, without their annotations, and :func:`download_sly_video`
fetches one of them where a shard needs it.

Remote projects are downloaded under a scratch directory into a temporary name and renamed when
complete, so a half-downloaded project is never read.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SLY_SCHEME = "sly://"
S3_SCHEME = "s3://"


class SourceError(ValueError):
    """The source cannot be resolved; the message names it and what to do."""


@dataclass(frozen=True)
class ResolvedSource:
    uri: str  # what was given
    kind: str  # local | s3 | sly
    path: Path  # local project directory
    downloaded: bool  # True when ``path`` is a scratch copy the caller may delete

    def origin(self, local_file: str | Path) -> str:
        """Where a file of the local project came from (a URI for remote sources)."""
        if not self.downloaded:
            return str(local_file)
        rel = Path(local_file).resolve().relative_to(self.path.resolve()).as_posix()
        return f"{self.uri.rstrip('/')}/{rel}"


def resolve_source(source: str, scratch: str | Path, *, retries: int = 3, backoff_s: float = 2.0) -> ResolvedSource:
    """Local project directory for ``source``; remote projects are downloaded under ``scratch``."""
    source = str(source).strip()
    if not source:
        raise SourceError("empty --source: give a project directory, s3://bucket/prefix or sly://<project id>")
    if source.startswith(S3_SCHEME):
        return ResolvedSource(source, "s3", _download_s3(source, Path(scratch)), True)
    if source.startswith(SLY_SCHEME):
        return ResolvedSource(source, "sly", _download_sly(source, Path(scratch), retries, backoff_s), True)
    if "://" in source:
        raise SourceError(f"source {source!r} has an unknown scheme; use a local directory, "
                          "s3://bucket/prefix or sly://<project id>")
    return ResolvedSource(source, "local", Path(source), False)


def _fresh_tmp(scratch: Path, name: str) -> tuple[Path, Path]:
    scratch.mkdir(parents=True, exist_ok=True)
    final = scratch / name
    tmp = scratch / f".{name}.tmp-{uuid.uuid4().hex[:8]}"
    return tmp, final


def _publish(tmp: Path, final: Path) -> Path:
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def _download_s3(uri: str, scratch: Path) -> Path:
    from . import storage

    prefix = uri.rstrip("/") + "/"
    tmp, final = _fresh_tmp(scratch, "project")
    try:
        try:
            files = storage.download_dir(prefix, tmp)
        except storage.ObjectNotFoundError as e:
            raise SourceError(f"source {uri} holds no objects ({e}): upload the exported Supervisely project "
                              "(meta.json and dataset folders) under that prefix") from e
        except storage.StorageError as e:
            raise SourceError(f"source {uri} could not be downloaded: {e}") from e
        if not (tmp / "meta.json").is_file():
            raise SourceError(f"source {uri} is not a Supervisely project: there is no {prefix}meta.json. "
                              "Point --source at the prefix that holds meta.json and the dataset folders")
        logger.info("downloaded %d objects of %s", len(files), uri)
        return _publish(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def sly_project_id(uri: str) -> int:
    """The project id of ``sly://<id>``."""
    project_id, rest = _sly_parts(uri, "sly://<numeric project id>, e.g. sly://12345")
    if rest:
        raise SourceError(f"source {uri!r}: expected sly://<numeric project id>, e.g. sly://12345")
    return project_id


def sly_api(uri: str, retries: int = 3):  # noqa: ANN201 - supervisely.Api, imported lazily
    """A Supervisely API client from ``SERVER_ADDRESS`` and ``API_TOKEN``; the error names ``uri``."""
    server, token = os.environ.get("SERVER_ADDRESS", ""), os.environ.get("API_TOKEN", "")
    missing = [name for name, value in (("SERVER_ADDRESS", server), ("API_TOKEN", token)) if not value]
    if missing:
        raise SourceError(f"source {uri} needs Supervisely credentials: set {' and '.join(missing)} in the "
                          "environment (SERVER_ADDRESS=https://<your instance>, API_TOKEN from your account "
                          "settings); on a cluster mount them from a Kubernetes secret")
    import supervisely as sly  # heavy import, only where needed

    return sly.Api(server_address=server, token=token, retry_count=max(1, retries))


def _download_sly(uri: str, scratch: Path, retries: int, backoff_s: float) -> Path:
    import supervisely as sly

    project_id = sly_project_id(uri)
    api = sly_api(uri, retries)
    server = os.environ["SERVER_ADDRESS"]
    tmp, final = _fresh_tmp(scratch, "project")
    attempts = max(1, retries)
    try:
        for attempt in range(1, attempts + 1):
            try:
                sly.download_video_project(api, project_id, str(tmp), log_progress=False,
                                           resume_download=attempt > 1)
                break
            except sly.api.project_api.ProjectNotFound as e:
                raise SourceError(f"Supervisely project {project_id} was not found on {server}: check the id in "
                                  f"{uri} and that the API_TOKEN's user is in the project's team") from e
            except OSError as e:  # requests' network and HTTP errors are OSErrors
                status = getattr(getattr(e, "response", None), "status_code", None)
                if status in (401, 403):
                    raise SourceError(f"{server} refused API_TOKEN (HTTP {status}) for Supervisely project "
                                      f"{project_id}: check the token and that its user may read the project") from e
                if status == 404 and attempt == 1 and not (tmp / "meta.json").exists():
                    raise SourceError(f"Supervisely project {project_id} was not found on {server}: check the id "
                                      f"in {uri} and that the API_TOKEN's user is in the project's team") from e
                if attempt == attempts:
                    raise SourceError(f"downloading Supervisely project {project_id} from {server} failed "
                                      f"after {attempts} attempts: {e}") from e
                wait = backoff_s * 2 ** (attempt - 1)
                logger.warning("downloading project %d failed (attempt %d of %d): %s; retrying in %.1f s",
                               project_id, attempt, attempts, e, wait)
                time.sleep(wait)
        if not (tmp / "meta.json").is_file():
            raise SourceError(f"Supervisely project {project_id} downloaded without meta.json; check the project id")
        return _publish(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


# ----------------------------------------------------------------------------- single videos of a Supervisely project
_VIDEO_IDS: dict[tuple[str, int, str], dict[str, int]] = {}  # (server, project, dataset path) -> {video name: id}


def _sly_parts(uri: str, expected: str) -> tuple[int, str]:
    """(project id, the rest of the path) of ``sly://<project id>[/...]``."""
    head, _, rest = uri[len(SLY_SCHEME):].strip("/").partition("/")
    if not head.isdigit():
        raise SourceError(f"{uri!r}: expected {expected}")
    return int(head), rest


def _sly_call(uri: str, what: str, fn, *args, **kwargs):  # noqa: ANN001, ANN202
    """Run one API call; HTTP and network errors become a SourceError naming ``uri`` and what failed."""
    try:
        return fn(*args, **kwargs)
    except OSError as e:  # requests' network and HTTP errors are OSErrors
        status = getattr(getattr(e, "response", None), "status_code", None)
        hint = (" check API_TOKEN and that its user may read the project" if status in (401, 403)
                else " check the project id and that the API_TOKEN's user is in the project's team" if status == 404
                else "")
        raise SourceError(f"{uri}: {what} failed ({'HTTP ' + str(status) if status else e});{hint or ' try again'}") from e


def _sly_datasets(api, uri: str, project_id: int) -> dict[str, int]:  # noqa: ANN001
    """``{"dataset" or "parent/child": dataset id}`` of every (nested) dataset of the project."""
    if _sly_call(uri, f"looking up project {project_id}", api.project.get_info_by_id, project_id) is None:
        raise SourceError(f"{uri}: Supervisely project {project_id} was not found on {os.environ['SERVER_ADDRESS']}: "
                          "check the id and that the API_TOKEN's user is in the project's team")
    infos = _sly_call(uri, f"listing the datasets of project {project_id}", api.dataset.get_list, project_id,
                      recursive=True)
    by_id = {d.id: d for d in infos}

    def path(d) -> str:  # noqa: ANN001
        parent = by_id.get(getattr(d, "parent_id", None))
        return f"{path(parent)}/{d.name}" if parent is not None else d.name

    return {path(d): d.id for d in infos}


def list_sly_videos(uri: str, suffixes: set[str] | frozenset[str], retries: int = 3) -> list[str]:
    """The videos of ``sly://<project id>`` (every dataset, nested ones included) or of one dataset,
    ``sly://<project id>/<dataset id | dataset name | parent/child>``, as ``sly://<project id>/<dataset
    path>/<video name>`` URIs (what :func:`download_sly_video` fetches), sorted."""
    project_id, want = _sly_parts(uri, "sly://<project id> or sly://<project id>/<dataset>, e.g. sly://12345/day1")
    api = sly_api(uri, retries)
    datasets = _sly_datasets(api, uri, project_id)
    if want:
        chosen = {p: i for p, i in datasets.items() if p == want or (want.isdigit() and str(i) == want)}
        if not chosen:
            raise SourceError(f"{uri}: project {project_id} has no dataset {want!r} (its datasets: "
                              f"{', '.join(sorted(datasets)) or 'none'}); give a dataset id or name")
        # a dataset with nested datasets brings its children along
        root = next(iter(chosen))
        chosen = {p: i for p, i in datasets.items() if p == root or p.startswith(root + "/")}
    else:
        chosen = datasets
    out = []
    for ds_path, ds_id in sorted(chosen.items()):
        for v in _sly_call(uri, f"listing the videos of dataset {ds_path!r}", api.video.get_list, ds_id):
            if Path(v.name).suffix.lower() in suffixes:
                out.append(f"{SLY_SCHEME}{project_id}/{ds_path}/{v.name}")
    return sorted(out)


def download_sly_video(uri: str, dest_dir: str | Path, retries: int = 3) -> Path:
    """Download the video ``sly://<project id>/<dataset path>/<video name>`` to ``dest_dir/<dataset
    path>/<video name>`` (a temporary name, renamed when complete)."""
    expected = "sly://<project id>/<dataset>/<video name>"
    project_id, tail = _sly_parts(uri, expected)
    ds_path, _, name = tail.rpartition("/")
    if not ds_path or not name:
        raise SourceError(f"{uri!r}: expected {expected}")
    api = sly_api(uri, retries)
    key = (os.environ["SERVER_ADDRESS"], project_id, ds_path)
    if key not in _VIDEO_IDS:  # a shard downloads many videos of one dataset: list it once
        datasets = _sly_datasets(api, uri, project_id)
        if ds_path not in datasets:
            raise SourceError(f"{uri}: project {project_id} has no dataset {ds_path!r} (any more); its datasets: "
                              f"{', '.join(sorted(datasets)) or 'none'}")
        videos = _sly_call(uri, f"listing the videos of dataset {ds_path!r}", api.video.get_list, datasets[ds_path])
        _VIDEO_IDS[key] = {v.name: v.id for v in videos}
    video_id = _VIDEO_IDS[key].get(name)
    if video_id is None:
        raise SourceError(f"{uri}: dataset {ds_path!r} has no video {name!r} (any more)")
    final = Path(dest_dir) / ds_path / name
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        _sly_call(uri, "downloading the video", api.video.download_path, video_id, str(tmp))
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final
