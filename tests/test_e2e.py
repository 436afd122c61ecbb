"""The whole DAG through kfp.local on a tiny synthetic Supervisely project."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory):
    from pipeline.demo import write_demo_project

    root = tmp_path_factory.mktemp("e2e") / "project"
    return write_demo_project(root, n_videos=5, seed=3, duration_s=(10, 12), sizes=[(160, 120), (192, 144)])


def test_mar_run_json_summary(tiny_project, tmp_path):
    work = tmp_path / "work"
    cmd = [sys.executable, "-m", "pipeline.cli", "run", "--source", str(tiny_project.root), "--profile", "cpu",
           "--set", "train.epochs=6", "--set", "train.samples_per_epoch=256", "--set", "benchmark.stride=4",
           "--set", "train.lr=0.016",  # 1e-3 for these 96 updates; the profile's 5e-4 is for its thousands
           "--set", "benchmark.objective.Head/Body TWITCH=counts",
           # one view: 96 updates do not yet make the model alike in every orientation (4 views: grooming F1 0.54)
           "--set", "benchmark.tta_views=1",
           # the quality floors below hold for this seed with the reference crop and no colour jitter; 96
           # updates on 3 videos are a matter of the draw with either rule (seed 1 learns no grooming with
           # either), and the profile's jitter slows them (grooming frame F1 under 0.6 with it)
           "--set", "data.crop_mode=union", "--set", "train.color_jitter=0", "--workdir", str(work), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("run_id", "workdir", "mlflow_tracking_uri", "mlflow_run_id", "model_name", "model_version", "metrics"):
        assert key in summary, key
    m = summary["metrics"]
    assert isinstance(m["frame_macro_f1"], float) and 0 <= m["frame_macro_f1"] <= 1
    assert set(m["per_class"]) == {"idle", "Self-Grooming", "Head/Body TWITCH"}
    # a quality floor for this fixed-seed run (measured: grooming frame F1 0.93, idle 0.73): a model that
    # did not learn, or a pipeline that mislabels frames, falls well below it
    assert m["per_class"]["Self-Grooming"]["f1"] >= 0.6 and m["per_class"]["idle"]["f1"] >= 0.5, m["per_class"]
    for pc in m["per_class"].values():
        assert set(pc) >= {"precision", "recall", "f1", "support"}
    assert isinstance(m["twitch_event_recall"], float)
    run_dir = work / "runs" / summary["run_id"]
    assert json.loads((run_dir / "summary.json").read_text()) == summary

    # predictions: one row per frame of every test video, label names from the label map
    manifest_files = list((work / "kfp").rglob("manifest.json"))
    assert len(manifest_files) == 1
    manifest = json.loads(manifest_files[0].read_text())
    tests = [v for v in manifest["videos"] if v["split"] == "test"]
    assert tests and {v["split"] for v in manifest["videos"]} == {"train", "val", "test"}
    for v in tests:
        rows = list(csv.DictReader(open(Path(summary["artifacts"]["predictions"]) / f"{Path(v['file']).name}.frames.csv")))
        assert len(rows) == v["num_frames"]
        assert {r["label"] for r in rows} <= set(manifest["labels"])
    assert Path(summary["artifacts"]["report"]).read_text().startswith("<!DOCTYPE html>")

    # the MLflow registry holds the version with its aliases and metric tags
    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=summary["mlflow_tracking_uri"], registry_uri=summary["mlflow_tracking_uri"])
    mv = c.get_model_version_by_alias(summary["model_name"], "candidate")
    assert str(mv.version) == summary["model_version"]
    assert float(mv.tags["metric.frame_macro_f1"]) == pytest.approx(m["frame_macro_f1"], rel=1e-4)
    run = c.get_run(summary["mlflow_run_id"])
    assert "train_loss" in run.data.metrics and "frame_macro_f1" in run.data.metrics
    assert run.data.params["model.arch"] == "vit_tiny"

    # counts are headline figures, per class and per video
    twitch = m["counts"]["Head/Body TWITCH"]
    assert {"true_count", "pred_count", "count_total_error", "count_mae", "icc"} <= set(twitch)
    assert len(m["counts_per_video"]) == len(tests)
    assert "count_total_error/Head-Body_TWITCH" in run.data.metrics

    # the model card carries the inference contract, its post-processing fitted (or kept, with the reason)
    # on the validation video; the figures reached MLflow
    from components.predict import resolve_model

    uri = f"models:/{summary['model_name']}@candidate"
    card = json.loads((resolve_model(uri, summary["mlflow_tracking_uri"]) / "model_card.json").read_text())
    calib = card["inference"]["calibration"]
    assert calib["videos"] == [v["id"] for v in manifest["videos"] if v["split"] == "val"]
    assert calib["status"] == "fitted" or calib["reason"]
    assert set(card["inference"]["postprocess"]["classes"]) == {"Self-Grooming", "Head/Body TWITCH"}
    # the objective set on the command line reached the configuration the model was made with (this tiny
    # project's one validation video holds too few events to fit a rule: the fit itself is tested in
    # tests/test_postprocess.py)
    assert card["train_config"]["benchmark"]["objective"] == {"Head/Body TWITCH": "counts"}

    # the registered model labels the test videos exactly as the benchmark did: same frames and bouts CSVs
    _predict_matches_benchmark(summary, work, tmp_path / "pred")


def _predict_matches_benchmark(summary: dict, work: Path, out_dir: Path) -> None:
    """`mar predict` with the registered candidate writes the benchmark's frames and bouts CSVs, byte for byte."""
    from components.predict import run_predict

    manifest_file = next((work / "kfp").rglob("manifest.json"))
    tests = [v for v in json.loads(manifest_file.read_text())["videos"] if v["split"] == "test"]
    videos = [str(manifest_file.parent / v["file"]) for v in tests]
    uri = f"models:/{summary['model_name']}@candidate"
    out = run_predict(uri, videos, out_dir, tracking_uri=summary["mlflow_tracking_uri"])
    assert [v["frames"] for v in out["videos"].values()] == [v["num_frames"] for v in tests]
    bench = Path(summary["artifacts"]["predictions"])
    for v in tests:
        for kind in ("frames", "bouts"):
            name = f"{Path(v['file']).name}.{kind}.csv"
            assert (out_dir / name).read_bytes() == (bench / name).read_bytes(), name


def test_the_profiles_tracked_crop_predicts_as_benchmarked(tiny_project, tmp_path):
    """The cpu profile's own crop rule (track, a crop per frame) through the whole DAG, then `mar predict`."""
    work = tmp_path / "work"
    cmd = [sys.executable, "-m", "pipeline.cli", "run", "--source", str(tiny_project.root), "--profile", "cpu",
           "--set", "train.epochs=1", "--set", "train.samples_per_epoch=32", "--set", "benchmark.stride=4",
           "--workdir", str(work), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    from components.predict import resolve_model

    card = json.loads((resolve_model(f"models:/{summary['model_name']}@candidate", summary["mlflow_tracking_uri"])
                       / "model_card.json").read_text())
    assert card["inference"]["crop_mode"] == "track"
    _predict_matches_benchmark(summary, work, tmp_path / "pred")


@pytest.mark.s3
def test_dag_with_project_models_and_mirror_on_s3(tiny_project, tmp_path, s3_server):
    """Source project, MLflow artifacts and the mirror all on a real S3 server on 127.0.0.1."""
    import os

    from components.integrations import storage

    bucket = s3_server.bucket()
    env = {**os.environ, **s3_server.env(), "MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint_url,
           "MAR_MIRROR_URI": f"s3://{bucket}/mirror"}
    saved = {k: os.environ.get(k) for k in s3_server.env()}
    os.environ.update(s3_server.env())
    try:
        storage.upload_dir(tiny_project.root, f"s3://{bucket}/project")
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    work = tmp_path / "work"
    cmd = [sys.executable, "-m", "pipeline.cli", "run", "--source", f"s3://{bucket}/project", "--profile", "cpu",
           "--set", "train.epochs=1", "--set", "train.samples_per_epoch=32", "--set", "benchmark.stride=4",
           "--workdir", str(work),
           "--artifact-root", f"s3://{bucket}/mlflow", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    keys = [k for _, k in ((None, o["Key"]) for o in s3_server.client().list_objects_v2(
        Bucket=bucket, MaxKeys=1000).get("Contents", []))]
    version = summary["model_version"]
    mirrored = [k for k in keys if k.startswith(f"mirror/models/{summary['model_name']}/{version}/")]
    assert any(k.endswith("model.safetensors") for k in mirrored), mirrored
    assert any(k.endswith("model_card.json") for k in mirrored), mirrored
    mlflow_keys = [k for k in keys if k.startswith("mlflow/")]
    assert any(k.endswith("MLmodel") for k in mlflow_keys), mlflow_keys[:20]
    assert any(k.endswith("model.safetensors") for k in mlflow_keys), mlflow_keys[:20]
