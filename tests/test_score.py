"""Cohort scoring: metadata checks, the cohort table against ``run_predict``, failures kept in the
table, the cache, the compiled score pipeline, and ``mar score`` through kfp.local."""

import csv
import json
from pathlib import Path

import pytest
import yaml

from components.predict import run_predict
from components.score import ScoreError, gather_score, plan_score, read_metadata, score_shard, split_shards
from pipeline.score_dag import compile_score_pipeline

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["idle", "Self-Grooming", "Head/Body TWITCH"]
ACTIONS = LABELS[1:]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from mvd.config import build_config
    from mvd.train import build_model, model_card
    from mvd.weights import save_model

    cfg = build_config("cpu", overrides={"model.num_frames": 4, "benchmark.stride": 4})
    out = tmp_path_factory.mktemp("model")
    save_model(build_model(cfg, 3), out, model_card(cfg, LABELS, "dv"))
    return out


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from pipeline.demo import render_video

    d = tmp_path_factory.mktemp("videos")
    for i in range(3):
        render_video(d / f"m{i}.mp4", num_frames=60 + 15 * i, size=(64, 48), fps=15, seed=i)
    return d


def _csv(path: Path, rows: list[list[str]]) -> str:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return str(path)


def _table(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("rows, message", [
    ([["animal", "group"], ["a1", "ctrl"]], "no 'video' column"),
    ([["video", "group"], ["m0.mp4", "ctrl"], ["m0.mp4", "drug"]], "listed twice"),
    ([["video", "group"], ["m0.mp4", "ctrl"], ["m9.mp4", "drug"]], "'m9.mp4' is not among"),
])
def test_bad_metadata_is_refused_before_scoring(tmp_path, videos, model_dir, rows, message):
    meta = _csv(tmp_path / "meta.csv", rows)
    with pytest.raises(ScoreError, match=message):
        plan_score(str(videos), str(model_dir), metadata=meta, shards=2)


def test_metadata_matches_names_and_paths(tmp_path, videos):
    vids = sorted(str(p) for p in videos.glob("*.mp4"))
    meta = _csv(tmp_path / "meta.csv", [["Video", "dose"], ["m0.mp4", "0"], [vids[1], "1"]])
    cols, rows = read_metadata(meta, vids, [Path(v).name for v in vids])
    assert cols == ["dose"] and rows == {"m0.mp4": {"dose": "0"}, "m1.mp4": {"dose": "1"}}


def test_shards_are_balanced_and_cover_every_video(videos):
    vids = sorted(str(p) for p in videos.glob("*.mp4"))
    shards = split_shards(vids, [Path(v).name for v in vids], 2)
    assert len(shards) == 2 and all(s["videos"] for s in shards)
    assert sorted(v["video"] for s in shards for v in s["videos"]) == vids
    assert len(split_shards(vids, [Path(v).name for v in vids], 8)) == 3


def _score(plan, model_dir, work: Path, cache: str = "") -> dict:
    dirs = []
    for s in plan["shards"]:
        d = work / f"shard{s['shard']}"
        score_shard(str(model_dir), s, d, cache=cache, device="cpu")
        dirs.append(d)
    return gather_score(plan, dirs, work / "cohort", bin_s=2.0)


def test_cohort_counts_equal_predict_and_failures_stay_in_the_table(tmp_path, videos, model_dir):
    bad = tmp_path / "in" / "broken.mp4"
    bad.parent.mkdir()
    bad.write_bytes(b"not a video")
    items = [str(videos), str(bad)]
    meta = _csv(tmp_path / "meta.csv", [["video", "animal", "group", "dose"], ["m0.mp4", "a0", "ctrl", "0"],
                                        ["m1.mp4", "a1", "drug", "1"], ["m2.mp4", "a2", "drug", "3"],
                                        ["broken.mp4", "a3", "ctrl", "0"]])
    plan = plan_score(json.dumps(items), str(model_dir), metadata=meta, shards=2)
    summary = _score(plan, model_dir, tmp_path / "work", cache=str(tmp_path / "cache"))
    rows = {r["output"]: r for r in _table(tmp_path / "work" / "cohort" / "cohort.csv")}
    assert len(rows) == 4 and (summary["scored"], summary["failed"]) == (3, 1)
    assert rows["broken.mp4"]["status"] == "failed" and rows["broken.mp4"]["reason"]
    assert rows["broken.mp4"]["animal"] == "a3" and rows["broken.mp4"]["Self-Grooming_count"] == ""
    expected = run_predict(str(model_dir), [str(videos)], tmp_path / "predict", device="cpu")
    for video, v in expected["videos"].items():
        row = rows[v["output"]]
        assert row["status"] == "scored" and row["group"] in ("ctrl", "drug")
        for name in ACTIONS:
            c = v["per_class"][name]
            assert int(row[f"{name}_count"]) == c["bouts"]
            assert float(row[f"{name}_duration_s"]) == pytest.approx(c["duration_s"])
            bins = [k for k in row if k.startswith(f"{name}_count_") and row[k] != ""]
            assert bins and sum(int(row[k]) for k in bins) == c["bouts"]
        for suffix in (".frames.csv", ".bouts.csv"):
            got = (tmp_path / "work" / "cohort" / "videos" / f"{v['output']}{suffix}").read_text()
            assert got == (tmp_path / "predict" / f"{v['output']}{suffix}").read_text()
    page = (tmp_path / "work" / "cohort" / "report.html").read_text()
    assert "Dose–response" in page and "data:image/png;base64," in page and "broken.mp4" in page

    # the same videos again: every scored video comes from the cache, with the same table
    again = _score(plan, model_dir, tmp_path / "again", cache=str(tmp_path / "cache"))
    assert again["cached"] == 3 and again["scored"] == 3
    cached_rows = {r["output"]: r for r in _table(tmp_path / "again" / "cohort" / "cohort.csv")}
    assert cached_rows == rows


def test_cache_skips_a_scored_video(tmp_path, videos, model_dir, monkeypatch):
    import components.predict as predict

    plan = plan_score(str(videos / "m0.mp4"), str(model_dir), shards=1)
    cache = str(tmp_path / "cache")
    first = score_shard(str(model_dir), plan["shards"][0], tmp_path / "a", cache=cache, device="cpu")
    assert not first["videos"]["m0.mp4"]["cached"]

    def must_not_run(*a, **k):
        raise AssertionError("a cached video was scored again")

    monkeypatch.setattr(predict, "predict_one", must_not_run)
    second = score_shard(str(model_dir), plan["shards"][0], tmp_path / "b", cache=cache, device="cpu")
    assert second["videos"]["m0.mp4"]["cached"]
    assert (tmp_path / "b" / "m0.mp4.bouts.csv").read_text() == (tmp_path / "a" / "m0.mp4.bouts.csv").read_text()


def test_nothing_scored_fails(tmp_path, model_dir):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    plan = plan_score(str(bad), str(model_dir), shards=1)
    with pytest.raises(ScoreError, match="no video could be scored"):
        _score(plan, model_dir, tmp_path / "work")


def test_score_pipeline_yaml_is_up_to_date_with_gpu_parallel_for(tmp_path):
    fresh = Path(compile_score_pipeline(str(tmp_path / "score_pipeline.yaml"))).read_text()
    assert fresh == (ROOT / "score_pipeline.yaml").read_text(), \
        "score_pipeline.yaml is stale: run `make compile` and commit it"
    spec, platform = list(yaml.safe_load_all(fresh))
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    loops = {k: t for k, t in spec["root"]["dag"]["tasks"].items() if "iteratorPolicy" in t}
    assert len(loops) == 1
    (loop_name, loop), = loops.items()
    assert loop["iteratorPolicy"]["parallelismLimit"] >= 1
    assert "plan-score-op" in loop["parameterIterator"]["items"]["inputParameter"]
    inner = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert set(inner) == {"score-shard-op"}
    gather = spec["root"]["dag"]["tasks"]["gather-score-op"]
    assert set(gather["dependentTasks"]) == {loop_name, "plan-score-op"}
    executors = spec["deploymentSpec"]["executors"]
    shard = executors["exec-score-shard-op"]["container"]
    assert "cuda" in shard["image"]
    assert shard["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert k8s["exec-score-shard-op"]["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
    assert k8s["exec-score-shard-op"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    for name in ("exec-plan-score-op", "exec-gather-score-op"):
        assert "accelerator" not in executors[name]["container"].get("resources", {})
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {"videos", "model", "metadata", "shards", "bin_s", "cache"} <= set(params)


@pytest.mark.slow
def test_mar_score_end_to_end_through_kfp_local(tmp_path, videos, model_dir, capsys):
    from components.integrations import tracking
    from pipeline.cli import main

    meta = _csv(tmp_path / "meta.csv", [["video", "group"], ["m0.mp4", "ctrl"], ["m1.mp4", "drug"]])
    out = tmp_path / "out"
    rc = main(["score", str(videos), "--model", str(model_dir), "--metadata", meta, "--out", str(out),
               "--shards", "2", "--bin-s", "2"])
    assert rc == 0, capsys.readouterr()
    rows = _table(out / "cohort.csv")
    assert [r["status"] for r in rows] == ["scored"] * 3
    assert {r["output"]: r["group"] for r in rows} == {"m0.mp4": "ctrl", "m1.mp4": "drug", "m2.mp4": ""}
    assert (out / "report.html").is_file() and (out / "videos" / "m2.mp4.frames.csv").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scored"] == 3
    c = tracking.client(f"sqlite:///{out / 'mlflow.db'}")
    runs = c.search_runs([c.get_experiment_by_name("mouse-action-scoring").experiment_id])
    assert len(runs) == 1 and runs[0].data.tags["weights_sha256"] == summary["weights_sha256"]
    assert "model_version" in runs[0].data.tags


def test_submit_and_schedule_the_score_pipeline(monkeypatch, tmp_path, capsys):
    from kfp.client import Client

    from fake_kfp import FakeKFP
    from pipeline import cluster
    from pipeline.cli import main

    monkeypatch.setattr(Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    monkeypatch.setattr(cluster, "BACKOFF_S", 0.01)
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    monkeypatch.setenv("KF_PIPELINES_TOKEN", "t")
    with FakeKFP(token="t") as kfp:
        common = ["--host", kfp.url, "--pipeline", "score", "--videos", "s3://lab/cohort1",
                  "--model", "models:/mouse-action-mvd/3", "--metadata", "s3://lab/cohort1.csv", "--shards", "8",
                  "--json"]
        assert main(["submit", *common]) == 0
        r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert main(["schedule", *common, "--cron", "0 0 4 * * *"]) == 0
        assert [p["display_name"] for p in kfp.pipelines.values()] == ["mouse-action-scoring"]
        spec = kfp.specs[r["version_id"]]
        assert "exec-score-shard-op" in spec["deploymentSpec"]["executors"]
        params = kfp.runs[0]["runtime_config"]["parameters"]
        assert params == {"videos": "s3://lab/cohort1", "model": "models:/mouse-action-mvd/3",
                          "metadata": "s3://lab/cohort1.csv", "shards": 8, "bin_s": 300.0}
        assert kfp.recurring_runs[0]["runtime_config"]["parameters"]["videos"] == "s3://lab/cohort1"
        assert main(["submit", "--host", kfp.url, "--pipeline", "score"]) == 2
        assert "--videos is required" in capsys.readouterr().err


# ----------------------------------------------------------------------------- remote inputs: s3://, sly://, models:/
def _bouts(d: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(d.glob("*.bouts.csv"))}


@pytest.mark.s3
def test_videos_and_metadata_under_an_s3_prefix(tmp_path, videos, model_dir, s3_server, monkeypatch):
    from components.integrations import storage

    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    bucket = s3_server.bucket()
    for p in sorted(videos.glob("*.mp4")):
        storage.upload_file(p, f"s3://{bucket}/cohort 1/day1/{p.name}")
    storage.upload_file(videos / "m0.mp4", f"s3://{bucket}/cohort 1/notes/m0.txt")  # not a video: skipped
    meta = _csv(tmp_path / "meta.csv", [["video", "dose"], ["m0.mp4", "0"], ["m2.mp4", "3"]])
    storage.upload_file(meta, f"s3://{bucket}/meta.csv")

    plan = plan_score(f"s3://{bucket}/cohort 1", str(model_dir), metadata=f"s3://{bucket}/meta.csv", shards=2)
    assert [v["video"] for v in plan["videos"]] == [f"s3://{bucket}/cohort 1/day1/m{i}.mp4" for i in range(3)]
    summary = _score(plan, model_dir, tmp_path / "work")
    assert (summary["scored"], summary["failed"]) == (3, 0)
    rows = {r["output"]: r for r in _table(tmp_path / "work" / "cohort" / "cohort.csv")}
    assert {k: r["dose"] for k, r in rows.items()} == {"m0.mp4": "0", "m1.mp4": "", "m2.mp4": "3"}
    run_predict(str(model_dir), [str(videos)], tmp_path / "predict", device="cpu")
    assert _bouts(tmp_path / "work" / "cohort" / "videos") == _bouts(tmp_path / "predict")

    with pytest.raises(ScoreError, match=f"no video .* under s3://{bucket}/nothing"):
        plan_score(f"s3://{bucket}/nothing", str(model_dir))
    with pytest.raises(ScoreError, match="'m9.mp4' is not among"):
        storage.upload_file(_csv(tmp_path / "bad.csv", [["video"], ["m9.mp4"]]), f"s3://{bucket}/bad.csv")
        plan_score(f"s3://{bucket}/cohort 1", str(model_dir), metadata=f"s3://{bucket}/bad.csv")


def test_videos_of_a_supervisely_dataset(tmp_path, model_dir, sly_server):
    from components.predict import PredictError

    plan = plan_score("sly://77/test", str(model_dir), shards=2)
    assert [v["video"] for v in plan["videos"]] == [f"sly://77/test/{n}.mp4" for n in ("full1", "full2", "untagged")]
    nested = plan_score("sly://77/train", str(model_dir))["videos"]  # a dataset brings its nested datasets
    assert {v["video"] for v in nested} == {"sly://77/train/Self-Grooming/g1.mp4", "sly://77/train/Self-Grooming/g2.mp4",
                                            "sly://77/train/Head-Body_TWITCH/t1.mp4", "sly://77/train/idle/i1.mp4",
                                            "sly://77/train/rearing/r1.mp4"}
    assert len(plan_score("sly://77", str(model_dir))["videos"]) == 8  # the whole project
    ids = {d["name"]: d["id"] for d in sly_server.datasets}
    assert plan_score(f"sly://77/{ids['test']}", str(model_dir))["videos"] == plan["videos"]  # by dataset id

    summary = _score(plan, model_dir, tmp_path / "work")
    assert summary["scored"] == 3 and "videos.download" in sly_server.methods()
    local = [str(p) for p in sly_server.paths.values() if p.name.startswith(("full", "untagged"))]
    run_predict(str(model_dir), local, tmp_path / "predict", device="cpu")
    assert _bouts(tmp_path / "work" / "cohort" / "videos") == _bouts(tmp_path / "predict")

    with pytest.raises(ScoreError, match=r"project 77 has no dataset 'tets' \(its datasets: test, train"):
        plan_score("sly://77/tets", str(model_dir))
    with pytest.raises(ScoreError, match="sly://88: Supervisely project 88 was not found"):
        plan_score("sly://88", str(model_dir))
    with pytest.raises((ScoreError, PredictError)):
        plan_score("sly://77/test", "no-such-model-dir")


def test_registered_model_is_pinned_before_scoring(tmp_path, videos, model_dir, monkeypatch):
    from components.integrations import tracking
    from components.predict import PredictError
    from components.register import run_register
    from mvd.config import build_config

    for k in ("MAR_MIRROR_URI", "SERVER_ADDRESS", "API_TOKEN", "TEAM_ID"):
        monkeypatch.delenv(k, raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = build_config("cpu", overrides={"model.num_frames": 4, "benchmark.stride": 4})
    run_id = tracking.start_run(uri, "exp", "train", {}, artifact_root=str(tmp_path / "mlartifacts"))
    reg = run_register(model_dir, {"summary": {"frame_macro_f1": 0.5}}, cfg, tracking_uri=uri, mlflow_run_id=run_id)
    name = reg["model_name"]

    plan = plan_score(str(videos / "m1.mp4"), f"models:/{name}@champion", shards=1, tracking_uri=uri)
    assert plan["model"] == {"uri": f"models:/{name}/1", "name": name, "version": "1",
                             "given": f"models:/{name}@champion"}
    assert plan_score(str(videos / "m1.mp4"), f"{name}@champion", tracking_uri=uri)["model"]["version"] == "1"
    shard = score_shard(plan["model"]["uri"], plan["shards"][0], tmp_path / "shard", tracking_uri=uri, device="cpu")
    assert not shard["failures"]
    run_predict(str(model_dir), [str(videos / "m1.mp4")], tmp_path / "predict", device="cpu")
    assert _bouts(tmp_path / "shard") == _bouts(tmp_path / "predict")

    for bad, message in [(f"models:/{name}@best", "cannot resolve .*@best"), (f"models:/{name}/7", "cannot resolve .*/7"),
                         ("models:/no-such-model@champion", "cannot resolve"), ("models:/", "neither a model directory")]:
        with pytest.raises(PredictError, match=message):
            plan_score(str(videos / "m1.mp4"), bad, tracking_uri=uri)
