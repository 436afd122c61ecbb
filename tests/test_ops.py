"""Each KFP component run alone through kfp.local, as a pipeline task would run it: a fresh process
executing the component's compiled body, with its inputs and outputs as KFP artifacts.

The stage functions have their own tests; these check the wrappers in ``pipeline.ops``: that every
body imports what it uses, passes its inputs through and records its outputs and metadata."""

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

LABELS = ["idle", "Self-Grooming", "Head/Body TWITCH"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """kfp.local with a subprocess runner, a tiny project and a tiny training config."""
    from kfp import local

    from mvd.config import build_config
    from pipeline.demo import write_demo_project

    root = tmp_path_factory.mktemp("ops")
    project = write_demo_project(root / "project", n_videos=5, seed=3, duration_s=(10, 12),
                                 sizes=[(160, 120), (192, 144)])
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "kfp"))
    cfg = build_config("cpu", overrides={"train.epochs": 1, "train.samples_per_epoch": 32,
                                              "benchmark.stride": 4})
    return {"root": root, "project": project.root, "config": cfg.to_json(),
            "tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "artifact_root": str(root / "mlartifacts")}


@pytest.fixture(scope="module")
def ingested(env):
    from pipeline.ops import ingest_op

    return ingest_op(source=str(env["project"]), config_json=env["config"])


# Artifacts reach a component run alone only through a pipeline: each of these runs one component as the
# only task of a pipeline whose artifact inputs are imported (dsl.importer) from earlier components' outputs.
def _imported(uri: str, cls):  # noqa: ANN001, ANN202
    from kfp import dsl

    return dsl.importer(artifact_uri=uri, artifact_class=cls, reimport=False).output


@pytest.fixture(scope="module")
def cropped(env, ingested):
    from kfp import dsl
    from kfp.dsl import Dataset

    from pipeline.ops import bbox_crop_op

    @dsl.pipeline(name="bbox-crop-alone")
    def alone(manifest: str, config_json: str) -> Dataset:
        return bbox_crop_op(config_json=config_json, manifest=_imported(manifest, Dataset)).outputs["crops"]

    return alone(manifest=ingested.outputs["manifest"].uri, config_json=env["config"]).output


@pytest.fixture(scope="module")
def trained(env, ingested, cropped):
    from typing import NamedTuple

    from kfp import dsl
    from kfp.dsl import Dataset, Model

    from pipeline.ops import train_op

    @dsl.pipeline(name="train-alone")
    def alone(manifest: str, crops: str, config_json: str, tracking_uri: str, artifact_root: str
              ) -> NamedTuple("Trained", [("model", Model), ("run_id", str)]):
        t = train_op(config_json=config_json, crops=_imported(crops, Dataset), manifest=_imported(manifest, Dataset),
                     tracking_uri=tracking_uri, experiment="ops", run_name="ops-run", artifact_root=artifact_root,
                     kfp_run_id="kfp-ops")
        out = NamedTuple("Trained", [("model", Model), ("run_id", str)])
        return out(t.outputs["model"], t.outputs["Output"])

    t = alone(manifest=ingested.outputs["manifest"].uri, crops=cropped.uri, config_json=env["config"],
              tracking_uri=env["tracking_uri"], artifact_root=env["artifact_root"])
    return t.outputs["model"], t.outputs["run_id"]


@pytest.fixture(scope="module")
def benchmarked(env, ingested, cropped, trained):
    from typing import NamedTuple

    from kfp import dsl
    from kfp.dsl import HTML, Artifact, Dataset, Model

    from pipeline.ops import benchmark_op

    outputs = NamedTuple("Benchmarked", [("results", Artifact), ("report", HTML), ("predictions", Dataset)])

    @dsl.pipeline(name="benchmark-alone")
    def alone(model: str, manifest: str, crops: str, ingest_report: str, config_json: str, tracking_uri: str,
              mlflow_run_id: str) -> outputs:
        t = benchmark_op(config_json=config_json, model=_imported(model, Model), manifest=_imported(manifest, Dataset),
                         crops=_imported(crops, Dataset), ingest_report=_imported(ingest_report, Artifact),
                         tracking_uri=tracking_uri, mlflow_run_id=mlflow_run_id)
        return outputs(t.outputs["results"], t.outputs["report"], t.outputs["predictions"])

    model, run_id = trained
    t = alone(model=model.uri, manifest=ingested.outputs["manifest"].uri, crops=cropped.uri,
              ingest_report=ingested.outputs["report"].uri, config_json=env["config"],
              tracking_uri=env["tracking_uri"], mlflow_run_id=run_id)
    return t.outputs


def test_ingest_op(ingested):
    from mvd.manifest import read_manifest

    manifest = ingested.outputs["manifest"]
    m = read_manifest(manifest.path)
    assert manifest.metadata["videos"] == len(m.videos) == 5
    assert manifest.metadata["data_version"] == m.data_version
    assert (manifest.metadata["train"], manifest.metadata["val"], manifest.metadata["test"]) == \
        (len(m.split("train")), len(m.split("val")), len(m.split("test")))
    assert json.loads(Path(ingested.outputs["report"].path).read_text())["shape"] == manifest.metadata["shape"]


def test_check_data_op_and_skip_op(env, ingested):
    from typing import NamedTuple

    from kfp import dsl
    from kfp.dsl import Dataset

    from pipeline.ops import check_data_op, skip_op

    @dsl.pipeline(name="check-data-alone")
    def alone(manifest: str, config_json: str, tracking_uri: str
              ) -> NamedTuple("Decision", [("decision", str), ("reason", str)]):
        t = check_data_op(config_json=config_json, manifest=_imported(manifest, Dataset), tracking_uri=tracking_uri,
                          force=True)
        out = NamedTuple("Decision", [("decision", str), ("reason", str)])
        return out(t.outputs["decision"], t.outputs["reason"])

    t = alone(manifest=ingested.outputs["manifest"].uri, config_json=env["config"], tracking_uri=env["tracking_uri"])
    assert t.outputs["decision"] == "train" and t.outputs["reason"].startswith("force=true")
    assert json.loads(skip_op(reason="same data").output) == {"skipped": True, "reason": "same data"}


def test_bbox_crop_op(cropped):
    crops = cropped
    assert set(crops.metadata) == {"windows_per_class", "failures", "videos_reused", "videos_computed"}
    assert crops.metadata["failures"] == 0 and crops.metadata["videos_computed"] == 5
    assert all(crops.metadata["windows_per_class"][k] > 0 for k in LABELS)
    assert (Path(crops.path) / "boxes.json").is_file()


def test_train_op(env, trained):
    from components.integrations import tracking

    model, run_id = trained
    card = json.loads((Path(model.path) / "model_card.json").read_text())
    assert card["labels"] == LABELS and "inference" in card
    assert model.metadata["mlflow_run_id"] == run_id and model.metadata["arch"] == "vit_tiny"
    assert model.metadata["calibration"] == card["inference"]["calibration"]["status"]
    run = tracking.client(env["tracking_uri"]).get_run(run_id)
    assert run.data.tags["kfp_run_id"] == "kfp-ops" and "train_loss" in run.data.metrics


def test_benchmark_op(env, benchmarked, trained):
    from components.integrations import tracking

    results = json.loads(Path(benchmarked["results"].path).read_text())
    assert {"headline", "summary"} <= set(results)
    assert 0.0 <= results["summary"]["frame_macro_f1"] <= 1.0
    report = Path(benchmarked["report"].path).read_text()
    assert report.startswith("<!DOCTYPE html>")
    assert "<dt>crop mode</dt><dd>track</dd>" in report  # the profile's crop rule, named for the reader
    assert list(Path(benchmarked["predictions"].path).glob("*.frames.csv"))
    run = tracking.client(env["tracking_uri"]).get_run(trained[1])
    assert run.data.metrics["frame_macro_f1"] == pytest.approx(results["summary"]["frame_macro_f1"])
    assert "videos_left_out" in run.data.tags


def test_register_op(env, trained, benchmarked):
    from kfp import dsl
    from kfp.dsl import HTML, Artifact, Dataset, Model

    from pipeline.ops import register_op

    @dsl.pipeline(name="register-alone")
    def alone(model: str, results: str, report: str, predictions: str, config_json: str, tracking_uri: str,
              mlflow_run_id: str) -> str:
        return register_op(config_json=config_json, model=_imported(model, Model),
                           results=_imported(results, Artifact), report=_imported(report, HTML),
                           predictions=_imported(predictions, Dataset), tracking_uri=tracking_uri,
                           mlflow_run_id=mlflow_run_id, kfp_run_id="kfp-ops").output

    model, run_id = trained
    t = alone(model=model.uri, results=benchmarked["results"].uri, report=benchmarked["report"].uri,
              predictions=benchmarked["predictions"].uri, config_json=env["config"],
              tracking_uri=env["tracking_uri"], mlflow_run_id=run_id)
    reg = json.loads(t.output)
    assert reg["model_name"] == "mouse-action-mvd" and reg["model_version"] == "1"
    assert reg["artifacts"]["report"] == benchmarked["report"].path
    assert "frame_macro_f1" in reg["metrics"]


def test_plan_and_score_shard_ops(trained, tmp_path):
    """plan-score and score-shard run alone; gather-score takes the shards' collected outputs, which only a
    ParallelFor gives: it runs through kfp.local in test_score.py's ``mar score`` test."""
    from pipeline.demo import render_video
    from pipeline.ops import plan_score_op, score_shard_op

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(2):
        render_video(videos / f"s{i}.mp4", num_frames=40, size=(64, 48), fps=15, seed=i)
    model = trained[0].path
    plan = plan_score_op(videos=str(videos), model=model, metadata="", shards=2, tracking_uri="")
    shards = plan.outputs["Output"]
    assert len(shards) == 2 and all(s["model"] == model for s in shards)
    assert json.loads(Path(plan.outputs["plan"].path).read_text())["shards"] == [
        {k: v for k, v in s.items() if k != "model"} for s in shards]
    for s in shards:
        scored = score_shard_op(shard=s, cache="", tracking_uri="").outputs["scored"]
        assert scored.metadata == {"videos": 1, "failures": 0}
        (video,) = s["videos"]
        assert (Path(scored.path) / f"{video['output']}.bouts.csv").is_file()
