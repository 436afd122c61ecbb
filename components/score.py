"""Score a whole cohort: label every video of a directory or ``s3://`` prefix with one model, in shards,
and gather a cohort table and report.

Stages (each a plain function; their KFP components are in :mod:`pipeline.ops`):

- :func:`plan_score`: list the videos, check the metadata CSV against them (before any scoring), pin the
  model (``models:/name@alias`` → ``models:/name/<version>``) and split the videos into shards;
- :func:`score_shard`: label the videos of one shard under the model card's inference contract
  (:func:`components.predict.predict_one`, the computation ``mar predict`` runs), writing per video
  ``<name>.frames.csv``, ``<name>.bouts.csv`` and ``<name>.ethogram.png``. A video already scored by the
  same weights under the same contract is taken from the cache (keyed by the video's sha256 and the
  model's weights hash). A video that cannot be scored is recorded with its reason; the others go on;
- :func:`gather_score`: the per-video files, ``cohort.csv`` (one row per video: per class count, total
  duration, mean bout duration, latency to the first bout, counts per time bin, and the metadata
  columns), ``report.html`` and ``summary.json``. It fails only when no video could be scored.
"""

import csv
import json
import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mvd.manifest import sha256_file, write_json
from mvd.video import VideoReadError

from .integrations import storage
from .integrations.cache import Cache, settings_key
from .inputs import VIDEO_SUFFIXES, PredictError, collect_videos, output_stems, registry_store
from .integrations.sources import SLY_SCHEME, SourceError, download_sly_video, list_sly_videos

logger = logging.getLogger(__name__)

VIDEO_COLUMN = "video"
DEFAULT_BIN_S = 300.0
CACHE_ENTRY = "score-"
SHARD_FILE = "shard.json"


class ScoreError(ValueError):
    """Bad cohort input (videos, metadata, shards) or nothing scored; the message names it."""


# ----------------------------------------------------------------------------- plan: videos, metadata, shards
def list_videos(videos: str | list[str]) -> list[str]:
    """Every video of ``videos``: a file, a directory (searched recursively), an ``s3://`` prefix, a
    Supervisely project or dataset (``sly://<project id>[/<dataset id or name>]``), or a list of these (a JSON list in a string is accepted). Each video once, in a stable order."""
    if isinstance(videos, str):
        text = videos.strip()
        items = json.loads(text) if text.startswith("[") else [text]
    else:
        items = list(videos)
    if not items or not all(str(i).strip() for i in items):
        raise ScoreError("no videos given: pass a directory, an s3://bucket/prefix, sly://<project id>[/<dataset>] "
                         "or video files")
    out: list[str] = []
    for item in map(str, items):
        if item.startswith(SLY_SCHEME):
            try:
                found = list_sly_videos(item, VIDEO_SUFFIXES)
            except SourceError as e:
                raise ScoreError(str(e)) from e
            if not found:
                raise ScoreError(f"no video ({', '.join(sorted(VIDEO_SUFFIXES))}) in {item}")
            out.extend(found)
        elif storage.is_s3(item):
            found = [u for u in storage.list_uris(item) if Path(u).suffix.lower() in VIDEO_SUFFIXES]
            if not found:
                raise ScoreError(f"no video ({', '.join(sorted(VIDEO_SUFFIXES))}) under {item}")
            out.extend(found)
        else:
            if not Path(item).exists():
                raise ScoreError(f"{item} does not exist: pass a video file, a directory of videos or an s3:// prefix")
            try:
                out.extend(str(p) for p in collect_videos([item]))
            except PredictError as e:
                raise ScoreError(str(e)) from e
    return list(dict.fromkeys(out))


def _open_local(uri: str, scratch: Path) -> Path:
    if uri.startswith(SLY_SCHEME):
        return download_sly_video(uri, scratch / "sly")
    if not storage.is_s3(uri):
        return Path(uri)
    return storage.download_file(uri, scratch / storage.split_s3(uri)[1])


def read_metadata(path: str, videos: list[str], stems: list[str], scratch: str | Path | None = None
                  ) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The metadata CSV's extra columns and its rows by output name (stem).

    The ``video`` column names each video by its file name, its output name or its full path / URI.
    Raises ScoreError, before anything is scored, when the column is missing, a video is listed twice,
    or a row names a video that is not in the input."""
    if not path:
        return [], {}
    with tempfile.TemporaryDirectory(prefix="mar-meta-") as tmp:
        local = _open_local(path, Path(scratch or tmp))
        try:
            with open(local, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                header = [h.strip() for h in (reader.fieldnames or [])]
                rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise ScoreError(f"metadata {path}: cannot be read as CSV: {e}") from e
    col = next((h for h in header if h.lower() == VIDEO_COLUMN), None)
    if col is None:
        raise ScoreError(f"metadata {path} has no '{VIDEO_COLUMN}' column (columns: {header}); add one naming each "
                         "video by its file name")
    by_key: dict[str, str | None] = {}
    for uri, stem in zip(videos, stems):
        for key in {Path(uri).name, stem, uri, str(Path(uri))}:
            by_key[key] = stem if by_key.get(key, stem) == stem else None  # None: a name several videos share
    extra = [h for h in header if h != col]
    out: dict[str, dict[str, str]] = {}
    for line, r in enumerate(rows, start=2):
        name = r.get(col, "")
        if not name:
            raise ScoreError(f"metadata {path} line {line}: empty '{col}' cell")
        if name not in by_key:
            raise ScoreError(f"metadata {path} line {line}: video {name!r} is not among the {len(videos)} input "
                             f"videos (e.g. {', '.join(Path(v).name for v in videos[:3])}); fix the name or "
                             "remove the row")
        stem = by_key[name]
        if stem is None:
            raise ScoreError(f"metadata {path} line {line}: {name!r} names several input videos; use the "
                             f"output name ({', '.join(s for s in stems if Path(s).name.endswith(name))}) or "
                             "the full path")
        if stem in out:
            raise ScoreError(f"metadata {path} line {line}: video {name!r} is listed twice; keep one row per video")
        out[stem] = {h: r.get(h, "") for h in extra}
    return extra, out


def split_shards(videos: list[str], stems: list[str], n_shards: int) -> list[dict[str, Any]]:
    """At most ``n_shards`` non-empty shards, balanced by file size (largest first to the lightest shard;
    remote videos, ``s3://`` and ``sly://``, count equally)."""
    if n_shards < 1:
        raise ScoreError(f"shards={n_shards}: must be at least 1")
    sizes = [0 if storage.is_s3(v) or v.startswith(SLY_SCHEME) else Path(v).stat().st_size for v in videos]
    order = sorted(range(len(videos)), key=lambda i: (-sizes[i], i))
    n = min(n_shards, len(videos))
    shards: list[list[int]] = [[] for _ in range(n)]
    load = [0] * n
    for i in order:
        k = min(range(n), key=lambda s: (load[s], len(shards[s]), s))
        shards[k].append(i)
        load[k] += sizes[i] or 1
    return [{"shard": k, "videos": [{"video": videos[i], "output": stems[i]} for i in sorted(idx)]}
            for k, idx in enumerate(shards)]


def pin_model(model: str, tracking_uri: str = "") -> dict[str, Any]:
    """``uri`` to score with (an alias resolved to its version, so every shard uses the same weights),
    the registered ``name`` and ``version`` (empty for a model directory). A registered model is looked up
    now, so a mistyped name, alias or version fails before any scoring."""
    if Path(model).is_dir():
        return {"uri": str(model), "name": "", "version": "", "given": model}
    uri = model if model.startswith("models:/") else "models:/" + model
    ref = uri[len("models:/"):]
    name, sep, alias = ref.partition("@")
    if not sep:
        name, _, alias = ref.partition("/")
    if not name or not alias or "/" in alias:
        raise PredictError(f"model {model!r} is neither a model directory nor an MLflow model URI "
                           "(models:/<name>@<alias> or models:/<name>/<version>)")
    from .integrations import tracking

    tracking_uri = registry_store(uri, tracking_uri)
    try:
        c = tracking.client(tracking_uri)
        mv = c.get_model_version_by_alias(name, alias) if sep else c.get_model_version(name, alias)
    except Exception as e:  # noqa: BLE001 - any registry error is reported with the URI and store
        raise PredictError(f"cannot resolve {uri} in {tracking_uri}: {e}") from e
    return {"uri": f"models:/{name}/{mv.version}", "name": name, "version": str(mv.version), "given": model}


def plan_score(videos: str | list[str], model: str, *, metadata: str = "", shards: int = 1,
               tracking_uri: str = "") -> dict[str, Any]:
    """Videos, output names, checked metadata, the pinned model and the shards. Raises ScoreError /
    PredictError on bad input, before anything is scored."""
    found = list_videos(videos)
    stems = output_stems([Path(v) for v in found])
    columns, _ = read_metadata(metadata, found, stems)
    pinned = pin_model(model, tracking_uri)
    return {"videos": [{"video": v, "output": s} for v, s in zip(found, stems)], "metadata": metadata,
            "metadata_columns": columns, "model": pinned, "shards": split_shards(found, stems, shards)}


# ----------------------------------------------------------------------------- score one shard
def cache_entry_name(weights_sha256: str, spec: dict[str, Any]) -> str:
    """The cache entry of a video scored by these weights under this inference contract."""
    return f"{CACHE_ENTRY}{weights_sha256[:16]}-{settings_key(spec, 12)}"


def score_shard(model: str, shard: dict[str, Any], out_dir: str | Path, *, cache: str = "",
                tracking_uri: str = "", device: str | None = None) -> dict[str, Any]:
    """Score the videos of ``shard`` (from :func:`split_shards`) into ``out_dir``; writes and returns the
    shard summary ``{"videos": {output: entry}, "failures": [...]}`` (also ``out_dir/shard.json``)."""
    from .predict import load_predictor, predict_one  # torch and the model: only where videos are scored

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p = load_predictor(model, tracking_uri, device=device)
    weights = sha256_file(p.model_dir / "model.safetensors")
    spec = p.spec.to_dict()
    entry_name = cache_entry_name(weights, spec)
    labels = list(p.card["labels"])
    summary: dict[str, Any] = {"shard": shard.get("shard", 0), "labels": labels, "idle": p.spec.postprocess.idle,
                               "weights_sha256": weights, "inference": spec, "videos": {}, "failures": []}
    with tempfile.TemporaryDirectory(prefix="mar-score-") as tmp:
        store = Cache(cache, Path(tmp) / "cache") if cache else None
        for item in shard["videos"]:
            uri, stem = item["video"], item["output"]
            try:
                local = _open_local(uri, Path(tmp) / "videos")
                sha = sha256_file(local)
            except (OSError, storage.StorageError, SourceError) as e:
                logger.error("%s: %s", uri, e)
                summary["failures"].append({"video": uri, "output": stem, "reason": f"cannot read: {e}"})
                continue
            hit = store.get(sha, entry_name) if store else None
            if hit is not None:
                entry = json.loads((hit / "entry.json").read_text())
                for suffix in (".frames.csv", ".bouts.csv", ".ethogram.png"):
                    shutil.copyfile(hit / f"video{suffix}", out / f"{stem}{suffix}")
                logger.info("%s: scored before by these weights (cache %s)", uri, store)
                summary["videos"][stem] = {**entry, "video": uri, "output": stem, "cached": True}
                continue
            try:
                entry, rows = predict_one(p.net, p.spec, p.detector, local, out, stem, device=p.device)
            except (VideoReadError, ValueError) as e:
                logger.error("%s: %s", uri, e)
                summary["failures"].append({"video": uri, "output": stem, "reason": str(e)})
                continue
            entry = {**entry, "sha256": sha, "bouts": rows}
            if store is not None:
                staging = store.staging(sha, entry_name)
                for suffix in (".frames.csv", ".bouts.csv", ".ethogram.png"):
                    shutil.copyfile(out / f"{stem}{suffix}", staging / f"video{suffix}")
                write_json(staging / "entry.json", entry)
                store.commit(sha, entry_name, staging, {"weights_sha256": weights, "model": model})
            summary["videos"][stem] = {**entry, "video": uri, "output": stem, "cached": False}
    write_json(out / SHARD_FILE, summary)
    return summary


# ----------------------------------------------------------------------------- gather: table, report
def time_bins(duration_s: float, bin_s: float) -> list[tuple[float, float]]:
    """``[start, end)`` bins of ``bin_s`` seconds covering ``duration_s`` (the last one may be partial)."""
    if bin_s <= 0:
        raise ScoreError(f"bin_s={bin_s}: must be positive")
    n = max(1, math.ceil(duration_s / bin_s - 1e-9))
    return [(k * bin_s, (k + 1) * bin_s) for k in range(n)]


def _bin_name(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}s"


def cohort_rows(plan: dict[str, Any], shards: list[dict[str, Any]], metadata: dict[str, dict[str, str]],
                metadata_columns: list[str], bin_s: float = DEFAULT_BIN_S) -> tuple[list[str], list[dict[str, Any]]]:
    """Header and one row per input video (plan order): metadata, status, per action class count, total
    duration, mean bout duration, latency, and counts of bouts starting in each ``bin_s`` bin."""
    scored = {k: v for s in shards for k, v in s["videos"].items()}
    failed = {f["output"]: f["reason"] for s in shards for f in s["failures"]}
    ref = next((s for s in shards if s.get("labels")), None)
    labels, idle = (ref["labels"], ref["idle"]) if ref else ([], None)
    actions = [n for k, n in enumerate(labels) if k != idle]
    longest = max((v["frames"] / v["fps"] for v in scored.values()), default=bin_s)
    bins = time_bins(longest, bin_s)
    header = [VIDEO_COLUMN, "output", *metadata_columns, "status", "reason", "fps", "duration_s"]
    for name in actions:
        header += [f"{name}_count", f"{name}_duration_s", f"{name}_mean_bout_s", f"{name}_latency_s"]
        header += [f"{name}_count_{_bin_name(lo, hi)}" for lo, hi in bins]
    rows = []
    for item in plan["videos"]:
        stem = item["output"]
        row: dict[str, Any] = {VIDEO_COLUMN: item["video"], "output": stem, **metadata.get(stem, {})}
        v = scored.get(stem)
        if v is None:
            row.update(status="failed", reason=failed.get(stem, "not scored (its shard did not finish)"))
            rows.append(row)
            continue
        dur = v["frames"] / v["fps"]
        row.update(status="scored", reason="", fps=v["fps"], duration_s=dur)
        for name in actions:
            c = v["per_class"][name]
            k = labels.index(name)
            starts = [b["start_s"] for b in v["bouts"] if b["label"] == k]
            row[f"{name}_count"] = c["bouts"]
            row[f"{name}_duration_s"] = c["duration_s"]
            row[f"{name}_mean_bout_s"] = c["mean_bout_s"]
            row[f"{name}_latency_s"] = c["latency_s"]
            for lo, hi in bins:
                row[f"{name}_count_{_bin_name(lo, hi)}"] = (sum(lo <= s < hi for s in starts)
                                                            if lo < dur else None)
        rows.append(row)
    return header, rows


def write_cohort_csv(path: str | Path, header: list[str], rows: list[dict[str, Any]]) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in header})
    tmp.replace(path)
    return path


def gather_score(plan: dict[str, Any], shard_dirs: list[str | Path], out_dir: str | Path, *,
                 bin_s: float = DEFAULT_BIN_S, report: str | Path | None = None) -> dict[str, Any]:
    """Collect the shards into ``out_dir``: ``videos/`` (per-video files), ``cohort.csv``, ``report.html``
    (or ``report``) and ``summary.json``; raises ScoreError when no video was scored."""
    from .report.cohort import write_cohort_report

    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    shards = []
    for d in map(Path, shard_dirs):
        if not (d / SHARD_FILE).is_file():
            logger.error("shard output %s holds no %s; its videos are reported as not scored", d, SHARD_FILE)
            continue
        s = json.loads((d / SHARD_FILE).read_text())
        shards.append(s)
        for stem in s["videos"]:
            for suffix in (".frames.csv", ".bouts.csv", ".ethogram.png"):
                if (d / f"{stem}{suffix}").is_file():
                    shutil.copyfile(d / f"{stem}{suffix}", out / "videos" / f"{stem}{suffix}")
    stems = [v["output"] for v in plan["videos"]]
    columns, metadata = read_metadata(plan.get("metadata", ""), [v["video"] for v in plan["videos"]], stems)
    header, rows = cohort_rows(plan, shards, metadata, columns, bin_s)
    write_cohort_csv(out / "cohort.csv", header, rows)
    scored = [r for r in rows if r["status"] == "scored"]
    failures = [{"video": r[VIDEO_COLUMN], "output": r["output"], "reason": r["reason"]}
                for r in rows if r["status"] != "scored"]
    ref = next((s for s in shards if s.get("labels")), {})
    summary = {"model": plan["model"], "weights_sha256": ref.get("weights_sha256", ""),
               "inference": ref.get("inference", {}), "labels": ref.get("labels", []), "bin_s": bin_s,
               "videos": len(rows), "scored": len(scored), "failed": len(failures), "failures": failures,
               "cached": sum(v.get("cached", False) for s in shards for v in s["videos"].values()),
               "metadata_columns": columns}
    report_path = Path(report) if report else out / "report.html"
    write_cohort_report(report_path, header, rows, summary, labels=ref.get("labels", []), idle=ref.get("idle"),
                        metadata_columns=columns, bin_s=bin_s)
    write_json(out / "summary.json", summary)
    if not scored:
        raise ScoreError(f"no video could be scored: {failures}")
    return summary


def log_cohort(tracking_uri: str, experiment: str, run_name: str, out_dir: str | Path, summary: dict[str, Any], *,
               report: str | Path | None = None, params: dict[str, Any] | None = None,
               artifact_root: str = "") -> str:
    """An MLflow run tagged with the model name, version and weights hash, holding the cohort outputs."""
    from .integrations import tracking

    out = Path(out_dir)
    m = summary["model"]
    tags = {"model_name": m.get("name", ""), "model_version": m.get("version", ""), "model_uri": m.get("uri", ""),
            "weights_sha256": summary.get("weights_sha256", ""), "mar.stage": "score"}
    run_id = tracking.start_run(tracking_uri, experiment, run_name, {**(params or {}), "bin_s": summary["bin_s"]},
                                artifact_root, tags=tags)
    c = tracking.client(tracking_uri)
    tracking.log_metrics(c, run_id, {"videos": summary["videos"], "videos_scored": summary["scored"],
                                     "videos_failed": summary["failed"], "videos_cached": summary["cached"]})
    c.log_artifact(run_id, str(out / "cohort.csv"), "cohort")
    c.log_artifact(run_id, str(report or out / "report.html"), "cohort")
    c.log_artifact(run_id, str(out / "summary.json"), "cohort")
    c.log_artifacts(run_id, str(out / "videos"), "cohort/videos")
    c.set_terminated(run_id, "FINISHED")
    return run_id
