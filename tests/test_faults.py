"""Faults found by trying the tool with broken inputs, killed runs, full disks and runs at the same
moment; each test reproduces one, then holds the fix: runs that fail or are killed, the promotion
gate, concurrent first runs, a full disk, errors a person can act on, videos of the same name,
damaged videos, and what was left out."""

import csv
import errno
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from components.integrations import tracking
from mvd.config import DEFAULT_LABELS, build_config, parse_overrides
from mvd.manifest import read_manifest, safe_name
from pipeline.cli import main

NAME = "mouse-action-mvd"
LABELS = list(DEFAULT_LABELS)


@pytest.fixture(autouse=True)
def _no_mirror(monkeypatch):
    for k in ("MAR_MIRROR_URI", "SERVER_ADDRESS", "API_TOKEN", "TEAM_ID", "MLFLOW_TRACKING_URI", "MAR_PIPELINE_ROOT",
              "MAR_DRIVER_PID", "MAR_ERROR_DIR"):
        monkeypatch.delenv(k, raising=False)


def _mar(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _tiny_cfg(extra: dict | None = None):
    return build_config("cpu", None, {"model.arch": "vit_tiny", "model.num_frames": 2, "model.input_size": 16,
                                      **(extra or {})})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from mvd.train import build_model, model_card
    from mvd.weights import save_model

    root = tmp_path_factory.mktemp("model")
    return save_model(build_model(_tiny_cfg(), len(LABELS)), root / "model", model_card(_tiny_cfg(), LABELS, "data-a"))


def _register(uri: str, model_dir: Path, summary: dict, cfg=None, run_name: str = "run") -> dict:
    from components.register import run_register

    run_id = tracking.start_run(uri, "exp", run_name, {}, artifact_root=str(Path(uri[len("sqlite:///"):]).parent
                                                                             / "mlartifacts"))
    tracking.log_metrics(tracking.client(uri), run_id, summary)
    return run_register(model_dir, {"summary": summary}, cfg or _tiny_cfg(), tracking_uri=uri, mlflow_run_id=run_id)


def _uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _champion(uri: str) -> str:
    return str(tracking.client(uri).get_model_version_by_alias(NAME, "champion").version)


# ----------------------------------------------------------------------------- 1. runs stuck RUNNING


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Tiny clip shards (24 windows of 4 frames 32×32) as the bbox-crop stage writes them."""
    from mvd.shards import ShardWriter

    crops = tmp_path_factory.mktemp("crops")
    rng = np.random.default_rng(0)
    w = ShardWriter(crops / "clips", 32)
    for i in range(24):
        label = i % 3
        frames = rng.integers(0, 40, (4, 32, 32, 3), dtype=np.uint8)
        for t in range(4):
            frames[t, 10:18, 4 + t * 3 * label:12 + t * 3 * label] = 230
        w.add(frames, label=label, clip=f"c{i}", video=f"v{i % 4}")
    w.close({"labels": LABELS, "data_version": "dv-test"})
    return crops


def _train_cfg(epochs: int = 4):
    return build_config("cpu", overrides=parse_overrides([
        "model.num_frames=4", "model.input_size=32", f"train.epochs={epochs}", "train.batch_size=4",
        "train.save_ckpt_freq=1", "train.samples_per_epoch=8", "train.val_ratio=0.25", "train.num_workers=0"]))


def _run_train(shards, root: Path, kfp_run: str, uri: str, cfg=None):
    from components.train import run_train

    task = root / kfp_run / "train-op"
    return run_train(shards, cfg or _train_cfg(), task / "model", task / "checkpoints", tracking_uri=uri,
                     experiment="exp", run_name=kfp_run)


class Killed(BaseException):
    """Stands for the process being killed in the middle of an epoch."""


def test_failing_train_stage_marks_run_failed(shards, tmp_path, monkeypatch):
    import components.train as train_mod

    uri = _uri(tmp_path)

    def boom(*a, **k):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(train_mod, "train", boom)
    with pytest.raises(RuntimeError, match="out of memory"):
        _run_train(shards, tmp_path / "kfp", "r1", uri)
    runs = tracking.client(uri).search_runs([tracking.client(uri).get_experiment_by_name("exp").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_later_run_marks_orphaned_runs_killed(shards, tmp_path, monkeypatch):
    """A run whose recorded process is gone, and one with no such record idle for longer than the
    configured age, are KILLED by the next run; a live one is left RUNNING."""
    uri = _uri(tmp_path)
    c = tracking.client(uri)
    exp = tracking.ensure_experiment(c, "exp")
    host = socket.gethostname()
    dead = c.create_run(exp, run_name="dead", tags={"mar.host": host, "mar.pids": f"{_dead_pid()}:0"}).info.run_id
    old = c.create_run(exp, run_name="old", start_time=int((time.time() - 10 * 3600) * 1000)).info.run_id
    live = c.create_run(exp, run_name="live", tags={"mar.host": host, "mar.pids": f"{os.getpid()}:"}).info.run_id
    monkeypatch.setenv("MAR_ORPHAN_AFTER_HOURS", "6")
    s = _run_train(shards, tmp_path / "kfp", "r2", uri, _train_cfg(epochs=1))
    status = {r: c.get_run(r).info.status for r in (dead, old, live, s["mlflow_run_id"])}
    assert status == {dead: "KILLED", old: "KILLED", live: "RUNNING", s["mlflow_run_id"]: "RUNNING"}
    assert "process" in c.get_run(dead).data.tags["mar.end_reason"]


def test_rerun_resumes_training_of_killed_run(shards, tmp_path, monkeypatch):
    import components.integrations.tracking as tr

    uri = _uri(tmp_path)
    root = tmp_path / "kfp"
    monkeypatch.setenv("MAR_PIPELINE_ROOT", str(root))
    real_call = tr.EpochLogger.__call__

    def killed_after_two(self, epoch, row):
        real_call(self, epoch, row)
        if epoch == 2:
            raise Killed

    monkeypatch.setattr(tr.EpochLogger, "__call__", killed_after_two)
    with pytest.raises(Killed):
        _run_train(shards, root, "run-a", uri)
    monkeypatch.setattr(tr.EpochLogger, "__call__", real_call)
    # another configuration never resumes from it
    other = _run_train(shards, root, "run-b", uri, _train_cfg(epochs=1))
    c = tracking.client(uri)
    assert "resumed_from" not in c.get_run(other["mlflow_run_id"]).data.tags
    s = _run_train(shards, root, "run-c", uri)
    tags = c.get_run(s["mlflow_run_id"]).data.tags
    assert tags["resumed_from"] == str(root / "run-a" / "train-op" / "checkpoints" / "checkpoints"
                                       / "checkpoint-epoch0002.pt")
    assert [int(h["epoch"]) for h in s["history"]] == [1, 2, 3, 4]
    # the curves of the earlier epochs are on the new run too
    assert [m.step for m in c.get_metric_history(s["mlflow_run_id"], "train_loss")] == [1, 2, 3, 4]
    assert (root / "run-c" / "train-op" / "model" / "model.safetensors").is_file()
    # that training is finished now: the next run starts afresh
    s = _run_train(shards, root, "run-d", uri)
    assert "resumed_from" not in c.get_run(s["mlflow_run_id"]).data.tags


def test_pipeline_failure_names_root_cause_and_marks_run_failed(tmp_path, monkeypatch, capfd):
    """A real kfp.local task fails: the final message gives the task's own error, not "see the log
    above"; the MLflow run of that pipeline run is FAILED; no colour codes when not on a terminal."""
    from kfp import dsl

    import pipeline.dag as dag
    from pipeline.local import PipelineFailed, run_local

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def failing_op(config_json: str, tracking_uri: str, experiment: str, run_name: str) -> str:
        import errno

        from components.integrations import tracking
        from components.common import setup

        setup(config_json)
        tracking.start_run(tracking_uri, experiment, run_name, {})
        raise OSError(errno.ENOSPC, "No space left on device", "/data/work/kfp/model.safetensors")

    @dsl.pipeline(name="failing")
    def failing_pipeline(source: str, config_json: str, tracking_uri: str, experiment: str, run_name: str,
                         artifact_root: str, force: bool) -> str:
        return failing_op(config_json=config_json, tracking_uri=tracking_uri, experiment=experiment,
                          run_name=run_name).output

    monkeypatch.setattr(dag, "mar_pipeline", failing_pipeline)
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    work = tmp_path / "work"
    with pytest.raises(PipelineFailed) as e:
        run_local("unused", _tiny_cfg(), work, run_id="run-x", experiment="exp")
    msg = str(e.value)
    assert "No space left on device" in msg and "/data/work/kfp/model.safetensors" in msg and "failing-op" in msg
    assert "printed above" not in msg and "\x1b[" not in msg
    out = capfd.readouterr()
    assert "\x1b[" not in out.out + out.err
    c = tracking.client(f"sqlite:///{work / 'mlflow.db'}")
    runs = c.search_runs([c.get_experiment_by_name("exp").experiment_id])
    assert [(r.info.run_name, r.info.status) for r in runs] == [("run-x", "FAILED")]


# ----------------------------------------------------------------------------- 2. promotion gate


def test_equal_score_rerun_is_not_promoted(model_dir, tmp_path):
    uri = _uri(tmp_path)  # 0.7123454 was stored as the 6-digit tag 0.712345, below the score itself
    first = _register(uri, model_dir, {"frame_macro_f1": 0.7123454})
    assert first["promoted"]
    again = _register(uri, model_dir, {"frame_macro_f1": 0.7123454})
    assert not again["promoted"], again["reason"]
    assert _champion(uri) == "1"
    tags = tracking.client(uri).get_model_version(NAME, "2").tags
    assert float(tags["metric.frame_macro_f1"]) == 0.7123454


def test_candidate_missing_a_class_is_not_promoted(model_dir, tmp_path):
    uri = _uri(tmp_path)
    twitch = {"frame_macro_f1": 0.60, "frame_f1/Self-Grooming": 0.70, "frame_f1/Head-Body_TWITCH": 0.50,
              "event_hit_f1/Head-Body_TWITCH": 0.55}
    assert _register(uri, model_dir, twitch)["promoted"]
    no_twitch = {"frame_macro_f1": 0.90, "frame_f1/Self-Grooming": 0.90}
    r = _register(uri, model_dir, no_twitch)
    assert not r["promoted"] and "Head-Body_TWITCH" in r["reason"]
    assert _champion(uri) == "1"
    tags = tracking.client(uri).get_model_version(NAME, "2").tags
    assert tags["promotion"] == "candidate" and "Head-Body_TWITCH" in tags["promotion_reason"]


def test_lower_is_better_primary_metric(model_dir, tmp_path, capsys):
    from components.integrations.registry import lower_is_better

    assert lower_is_better("count_mae/Self-Grooming") and lower_is_better("count_total_error/Head-Body_TWITCH")
    assert lower_is_better("val_loss") and not lower_is_better("frame_macro_f1")
    assert not lower_is_better("event_hit_f1/Head-Body_TWITCH")
    uri = _uri(tmp_path)
    key = "count_mae/Self-Grooming"
    cfg = _tiny_cfg({"register.primary_metric": key, "register.promote_margin": 0.1})
    assert _register(uri, model_dir, {key: 2.0}, cfg)["promoted"]
    r = _register(uri, model_dir, {key: 1.5}, cfg)  # fewer count errors: better
    assert r["promoted"] and "lower" in r["reason"], r["reason"]
    r = _register(uri, model_dir, {key: 1.45}, cfg)  # better, but not by the margin
    assert not r["promoted"] and "margin 0.1" in r["reason"]
    r = _register(uri, model_dir, {key: 4.0}, cfg)  # worse
    assert not r["promoted"]
    assert _champion(uri) == "2"
    code, out, _ = _mar(capsys, "models", "promote", "4", "--tracking-uri", uri, "--metric", key)
    assert code == 1 and "not promoted" in out
    code, out, _ = _mar(capsys, "models", "promote", "1", "--tracking-uri", uri, "--metric", key, "--margin", "0")
    assert code == 1 and _champion(uri) == "2"


def test_concurrent_registers_promote_exactly_one(model_dir, tmp_path, monkeypatch):
    """Two runs with equal scores finishing together: both read the champion before either moves
    it. One wins; the other, compared with the winner, is recorded as not promoted."""
    from mlflow.tracking import MlflowClient

    uri = _uri(tmp_path)
    assert _register(uri, model_dir, {"frame_macro_f1": 0.5})["promoted"]
    barrier = threading.Barrier(2)
    real = MlflowClient.get_model_version_by_alias

    def read_then_wait(self, name, alias):
        mv = real(self, name, alias)
        if alias == "champion" and threading.current_thread().name.startswith("reg-"):
            try:
                barrier.wait(timeout=3)
            except threading.BrokenBarrierError:
                pass
        return mv

    monkeypatch.setattr(MlflowClient, "get_model_version_by_alias", read_then_wait)
    results, errors = {}, []

    def reg(run):
        try:
            results[run] = _register(uri, model_dir, {"frame_macro_f1": 0.8}, run_name=run)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=reg, args=(r,), name=f"reg-{r}") for r in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    c = tracking.client(uri)
    tagged = [str(mv.version) for mv in c.search_model_versions(f"name='{NAME}'")
              if mv.tags.get("promotion") == "champion" and str(mv.version) != "1"]
    promoted = [run for run, r in results.items() if r["promoted"]]
    assert len(tagged) == 1 and len(promoted) == 1, (tagged, results)
    assert _champion(uri) == tagged[0]
    assert results[promoted[0]]["model_version"] == tagged[0]
    loser = next(r for r in results.values() if not r["promoted"])
    assert "does not beat champion 0.8000" in loser["reason"]


# ----------------------------------------------------------------------------- 3. concurrent first runs


def _create_store(uri, barrier, q):
    try:
        barrier.wait(timeout=30)
        c = tracking.client(uri)
        tracking.ensure_experiment(c, "exp")
        c.search_registered_models()
        q.put("ok")
    except Exception as e:  # noqa: BLE001 - sent to the parent
        q.put(f"{type(e).__name__}: {e}")


@pytest.mark.parametrize("attempt", range(2))
def test_two_processes_create_the_same_fresh_store(tmp_path, attempt):
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    uri = _uri(tmp_path)
    barrier, q = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_create_store, args=(uri, barrier, q)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    got = [q.get(timeout=5) for _ in procs]
    assert got == ["ok", "ok"], got


# ----------------------------------------------------------------------------- 4. full disk


def _enospc(path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def test_save_model_on_full_disk_leaves_nothing_and_says_so(tmp_path, monkeypatch):
    import mvd.weights as weights
    from mvd.model import create_model
    from mvd.train import model_card

    def half_then_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 1000)
        raise _enospc(filename)

    monkeypatch.setattr(weights, "save_file", half_then_full)
    model = create_model("vit_tiny", num_classes=3, num_frames=2, img_size=16)
    out = tmp_path / "model"
    with pytest.raises(OSError) as e:
        weights.save_model(model, out, model_card(_tiny_cfg(), LABELS, "dv"))
    msg = str(e.value)
    assert e.value.errno == errno.ENOSPC
    assert "disk is full" in msg and str(out) in msg and "free" in msg
    assert not out.exists() or list(out.iterdir()) == []


def test_write_json_on_full_disk(tmp_path, monkeypatch):
    from mvd.manifest import write_json

    real = Path.write_text

    def full(self, *a, **k):
        real(self, "{\"partial")
        raise _enospc(self)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError, match="disk is full"):
        write_json(tmp_path / "out" / "results.json", {"a": 1})
    monkeypatch.setattr(Path, "write_text", real)
    assert list((tmp_path / "out").iterdir()) == []


def test_copy_tree_on_full_disk_leaves_no_partial_model(tmp_path, monkeypatch):
    from components.train import _copy_tree

    src = tmp_path / "best"
    src.mkdir()
    (src / "model_card.json").write_text("{}")
    (src / "model.safetensors").write_bytes(b"x" * 5000)
    real = shutil.copyfile

    def full(s, d, *a, **k):
        if Path(s).name == "model.safetensors":
            Path(d).write_bytes(b"x" * 100)
            raise _enospc(d)
        return real(s, d, *a, **k)

    monkeypatch.setattr(shutil, "copyfile", full)
    with pytest.raises(OSError, match="disk is full"):
        _copy_tree(src, tmp_path / "kfp" / "model")
    assert not (tmp_path / "kfp" / "model").exists()
    assert list((tmp_path / "kfp").iterdir()) == []


def test_register_on_full_disk_cleans_up_and_fails_the_run(model_dir, tmp_path, monkeypatch):
    """The disk fills while MLflow copies the weights: no half-written model.safetensors beside
    a complete card and MLmodel, no PENDING logged model, the run FAILED, and a message that says
    the disk is full."""
    import mlflow

    uri = _uri(tmp_path)
    arts = tmp_path / "mlartifacts"
    real = shutil.copyfile

    def full(s, d, *a, **k):
        if Path(s).name == "model.safetensors" and str(arts) in str(d):
            Path(d).write_bytes(Path(s).read_bytes()[:1000])
            raise _enospc(d)
        return real(s, d, *a, **k)

    monkeypatch.setattr(shutil, "copyfile", full)
    with pytest.raises(OSError) as e:
        _register(uri, model_dir, {"frame_macro_f1": 0.5})
    msg = str(e.value)
    assert "disk is full" in msg and "free" in msg and str(arts) in msg
    assert [p for p in arts.rglob("model.safetensors")] == []
    c = tracking.client(uri)
    exp = c.get_experiment_by_name("exp").experiment_id
    assert [r.info.status for r in c.search_runs([exp])] == ["FAILED"]
    assert [m.status.to_proto() for m in mlflow.search_logged_models(experiment_ids=[exp], output_format="list")
            if str(m.status) == "PENDING"] == []


# ----------------------------------------------------------------------------- 5. errors a person can act on


def _pretrained_state(path: Path, head: bool) -> Path:
    import torch

    from mvd.model import create_model

    m = create_model("vit_tiny", num_classes=3, num_frames=2, img_size=16)
    state = {k: v for k, v in m.state_dict().items() if head or not k.startswith("head.")}
    torch.save({"model": state}, path)
    return path


def test_import_headless_checkpoint_defaults_to_standard_labels(tmp_path, capsys):
    ck = _pretrained_state(tmp_path / "pretrained.pth", head=False)
    code, out, err = _mar(capsys, "import-checkpoint", ck, "--arch", "vit_tiny", "--out", tmp_path / "w",
                          "--num-frames", 2, "--input-size", 16)
    assert code == 0, err
    card = json.loads((tmp_path / "w" / "model_card.json").read_text())
    assert card["labels"] == LABELS
    assert "no classification head" in out + err and "Self-Grooming" in out + err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  labels: [idle, Rearing]\n")
    code, out, err = _mar(capsys, "import-checkpoint", ck, "--arch", "vit_tiny", "--out", tmp_path / "w2",
                          "--num-frames", 2, "--input-size", 16, "--config", cfg)
    assert code == 0, err
    assert json.loads((tmp_path / "w2" / "model_card.json").read_text())["labels"] == ["idle", "Rearing"]


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_import_unsafe_and_garbage_checkpoints_are_one_paragraph(tmp_path, capsys):
    import torch

    torch.save({"model": _Evil()}, tmp_path / "evil.pth")
    code, _, err = _mar(capsys, "import-checkpoint", tmp_path / "evil.pth", "--arch", "vit_tiny", "--out",
                        tmp_path / "o")
    assert code == 2 and "arbitrary unpickling" in err and "Traceback" not in err
    (tmp_path / "noise.pth").write_bytes(np.random.default_rng(0).bytes(4096))
    code, _, err = _mar(capsys, "import-checkpoint", tmp_path / "noise.pth", "--arch", "vit_tiny", "--out",
                        tmp_path / "o")
    assert code == 2 and "not a PyTorch checkpoint" in err and "Traceback" not in err
    assert "weights_only=False" not in err and "Python objects" not in err


def _tagged_project(tmp_path: Path, undeclared: str = "") -> Path:
    """Two videos with a Self-Grooming range (and a tag meta.json does not declare, if given)."""
    import supervisely as sly

    from pipeline.demo import render_video

    root = tmp_path / "proj"
    project = sly.VideoProject(str(root), sly.OpenMode.CREATE)
    names = ["Self-Grooming"] + ([undeclared] if undeclared else [])
    metas = {n: sly.TagMeta(n, sly.TagValueType.NONE) for n in names}
    project.set_meta(sly.ProjectMeta(tag_metas=list(metas.values())))
    ds = project.create_dataset("ds")
    tags = [sly.VideoTag(metas["Self-Grooming"], frame_range=(5, 20))]
    if undeclared:
        tags.append(sly.VideoTag(metas[undeclared], frame_range=(1, 3)))
    ann = sly.VideoAnnotation(img_size=(48, 64), frames_count=40, tags=sly.VideoTagCollection(tags))
    for seed, name in enumerate(("v.mp4", "w.mp4")):
        render_video(tmp_path / f"src_{name}", num_frames=40, size=(64, 48), seed=seed)
        ds.add_item_file(name, str(tmp_path / f"src_{name}"), ann=ann, _validate_item=False)
    if undeclared:
        meta = json.loads((root / "meta.json").read_text())
        meta["tags"] = [t for t in meta["tags"] if t["name"] != undeclared]
        (root / "meta.json").write_text(json.dumps(meta))
    return root


def test_bad_pretrained_fails_before_ingest(tmp_path, capsys, monkeypatch):
    import pipeline.local as local

    def started(*a, **k):
        raise AssertionError("the pipeline started")

    monkeypatch.setattr(local, "run_local", started)
    root = _tagged_project(tmp_path)
    bad = tmp_path / "MVD.pth"
    bad.write_bytes(b"\x89PNG not a checkpoint")
    for value, needle in ((bad, "not a PyTorch checkpoint"), (tmp_path / "missing.pth", "does not exist")):
        code, _, err = _mar(capsys, "run", "--source", root, "--profile", "cpu", "--workdir", tmp_path / "w",
                            "--set", f"model.pretrained={value}")
        assert code == 2 and needle in err and "model.pretrained" in err and "Traceback" not in err, err


@pytest.mark.parametrize("uri", ["sqlite://{tmp}/mlflow.db", "sqlite:{tmp}/mlflow.db", "sqlite:///{tmp}/mlfow.db"])
def test_typo_in_sqlite_uri_creates_no_store(tmp_path, capsys, monkeypatch, uri):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").mkdir()
    uri = uri.format(tmp=tmp_path / "work")
    before = set(tmp_path.rglob("*"))
    code, _, err = _mar(capsys, "models", "list", "--tracking-uri", uri)
    assert code == 2 and "Traceback" not in err and "sqlite:///" in err
    code, _, err = _mar(capsys, "predict", "--model", f"models:/{NAME}@champion", "--tracking-uri", uri,
                        tmp_path / "v.mp4", "--out", tmp_path / "pred")
    assert code == 2 and "Traceback" not in err, err
    assert set(tmp_path.rglob("*")) == before


def test_undeclared_tag_keeps_the_video(tmp_path, caplog):
    from components.ingest import IngestError, run_ingest
    from components.integrations.supervisely_project import read_project

    root = _tagged_project(tmp_path, undeclared="rearing")
    items, declared = read_project(root)
    assert [it.error for it in items] == ["", ""]
    assert sorted(t for t, _, _ in items[0].tags) == ["Self-Grooming", "rearing"]
    assert "rearing" in caplog.text and "meta.json" in caplog.text
    m = run_ingest(str(root), build_config("cpu"), tmp_path / "out")
    assert sorted(v.name for v in m.videos) == ["v.mp4", "w.mp4"]
    cfg = build_config("cpu")
    cfg.data.unknown_tags = "error"
    with pytest.raises(IngestError, match="rearing"):
        run_ingest(str(root), cfg, tmp_path / "out2")


# ----------------------------------------------------------------------------- the whole DAG, killed and run again


@pytest.mark.slow
def test_killed_mar_run_is_marked_killed_and_resumed(tmp_path):
    """`mar run` killed (SIGKILL to it and its task processes) after the first checkpoint: the
    next `mar run` with the same workdir and source marks the orphaned MLflow run KILLED and
    resumes training from that checkpoint."""
    import signal

    from mlflow.tracking import MlflowClient

    from pipeline.demo import write_demo_project

    project = write_demo_project(tmp_path / "project", n_videos=5, seed=3, duration_s=(10, 12),
                                 sizes=[(160, 120), (192, 144)])
    work = tmp_path / "work"
    cmd = [sys.executable, "-m", "pipeline.cli", "run", "--source", str(project.root), "--profile", "cpu",
           "--set", "train.epochs=8", "--set", "train.save_ckpt_freq=1", "--set", "train.samples_per_epoch=32",
           "--set", "benchmark.stride=4", "--workdir", str(work), "--json"]
    cwd = Path(__file__).resolve().parents[1]
    first = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.time() + 600
    pattern = "*/train-op/checkpoints/checkpoints/checkpoint-epoch*.pt"
    while not list((work / "kfp").glob(pattern)):
        assert first.poll() is None and time.time() < deadline, "the first run ended before its first checkpoint"
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    # an epoch of 32 clips is short: more than one checkpoint may have been written before the kill landed
    newest = max(p.name for p in (work / "kfp").glob(pattern))
    assert newest < "checkpoint-epoch0008.pt", "training finished before the kill; nothing left to resume"
    uri = f"sqlite:///{work / 'mlflow.db'}"
    c = MlflowClient(tracking_uri=uri)
    exp = c.get_experiment_by_name("mouse-action-recognition").experiment_id
    (killed,) = c.search_runs([exp])
    assert killed.info.status == "RUNNING"
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert c.get_run(killed.info.run_id).info.status == "KILLED"
    run = c.get_run(summary["mlflow_run_id"])
    assert run.data.tags["resumed_from"].endswith(newest)
    assert run.info.status == "FINISHED"
    assert [m.step for m in c.get_metric_history(run.info.run_id, "train_loss")] == list(range(1, 9))


# ----------------------------------------------------------------------------- inputs


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- same file name twice


def test_same_video_name_in_datasets_that_clean_alike_keeps_both(tmp_path, make_project):
    """`cohort A/a.mp4` and `cohort_A/a.mp4` used to clean to one file: the second video's record then
    pointed at the first one's bytes (a silent leak with wrong labels)."""
    from components.ingest import run_ingest

    root = make_project(tmp_path / "proj", [
        ("cohort A", "a.mp4", [("Self-Grooming", 3, 12)], 30, 1),
        ("cohort_A", "a.mp4", [("Head-Body_TWITCH", 5, 7)], 30, 2),
        ("cohort_B", "a.mp4", [("Self-Grooming", 10, 20)], 30, 3),
    ], tmp_path)
    m = run_ingest(str(root), build_config("cpu"), tmp_path / "out")
    back = read_manifest(tmp_path / "out")
    assert len(back.videos) == 3 and len({v.file for v in back.videos}) == 3
    for rec in back.videos:  # every record's file holds that record's own video
        assert _sha(tmp_path / "out" / rec.file) == rec.sha256
    assert len({v.sha256 for v in m.videos}) == 3


def test_safe_names_are_unique():
    taken: set[str] = set()
    names = [safe_name(v, taken) for v in ("cohort A/a.mp4", "cohort_A/a.mp4", "cohort A/a.mp4", "x/b")]
    assert len(set(names)) == 4 and names[0] == "cohort_A__a.mp4" and names[1].endswith(".mp4")


def _tiny_model(tmp_path: Path) -> Path:
    from mvd.train import build_model, model_card
    from mvd.weights import save_model

    cfg = build_config("cpu", overrides={"model.num_frames": 4, "benchmark.stride": 4})
    return save_model(build_model(cfg, 3), tmp_path / "model", model_card(cfg, LABELS, "dv"))


def test_predict_on_two_folders_with_the_same_file_names(tmp_path):
    """`mar predict A/ B/` with A/a.mp4 and B/a.mp4 reported both but wrote one set of CSVs."""
    from components.predict import output_stems, run_predict
    from pipeline.demo import render_video

    for d, seed in (("A", 1), ("B", 2)):
        render_video(tmp_path / d / "a.mp4", num_frames=24, size=(64, 48), seed=seed)
    s = run_predict(str(_tiny_model(tmp_path)), [str(tmp_path / "A"), str(tmp_path / "B")], tmp_path / "out")
    assert len(s["videos"]) == 2
    outputs = sorted(v["output"] for v in s["videos"].values())
    assert outputs == ["A__a.mp4", "B__a.mp4"]
    for o in outputs:
        rows = list(csv.DictReader(open(tmp_path / "out" / f"{o}.frames.csv")))
        assert len(rows) == 24
    # the same file given twice (folder and file) is labelled once
    assert len(output_stems([tmp_path / "A" / "a.mp4"])) == 1
    s2 = run_predict(str(tmp_path / "model"), [str(tmp_path / "A"), str(tmp_path / "A" / "a.mp4")], tmp_path / "o2")
    assert len(s2["videos"]) == 1


# ----------------------------------------------------------------------------- truncated video


def _truncated(tmp_path: Path, cut: int = 200) -> Path:
    """An mp4 whose index (moov first) lists every frame but whose last bytes are gone: the
    container claims more frames than decode."""
    import av

    from pipeline.demo import render_video

    src = tmp_path / "full.mp4"
    render_video(src, num_frames=120, size=(160, 120), fps=30, seed=1,
                 behaviours=[("Self-Grooming", 20, 60), ("Head/Body TWITCH", 90, 93)])
    fs = tmp_path / "faststart.mp4"
    with av.open(str(src)) as inp, av.open(str(fs), "w", options={"movflags": "faststart"}) as out:
        s = out.add_stream_from_template(inp.streams.video[0])
        for pkt in inp.demux(inp.streams.video[0]):
            if pkt.dts is None:
                continue
            pkt.stream = s
            out.mux(pkt)
    dst = tmp_path / "truncated.mp4"
    dst.write_bytes(fs.read_bytes()[:-cut])
    return dst


def test_truncated_video_is_scored_over_the_frames_that_decode(tmp_path):
    """A test video whose container counts 117 packets but decodes 114 frames failed the whole run
    after training ("114 boxes for 117 frames")."""
    from mvd.card import spec_from_config
    from mvd.detect import make_detector
    from mvd.infer import label_video
    from mvd.train import build_model
    from mvd.video import count_decodable, probe

    video = _truncated(tmp_path)
    claimed, decodable = probe(video).num_frames, count_decodable(video)
    assert decodable < claimed  # the fault's precondition
    assert probe(video, decode=True).num_frames == decodable
    boxes = make_detector("background").detect_video(video)
    assert len(boxes) == decodable
    cfg = build_config("cpu", overrides={"model.num_frames": 4, "benchmark.stride": 2})
    lab = label_video(build_model(cfg, 3), spec_from_config(cfg, LABELS), video, boxes)
    assert lab.probs.shape == (decodable, 3) and len(lab.result.labels) == decodable
    assert lab.info.num_frames == decodable


def test_ingest_counts_the_frames_that_decode(tmp_path, make_project):
    import shutil

    from components.ingest import run_ingest

    video = _truncated(tmp_path)
    root = make_project(tmp_path / "proj", [("ds", "ok.mp4", [("Self-Grooming", 3, 12)], 30, 1)], tmp_path)
    shutil.copyfile(video, root / "ds" / "video" / "ok.mp4")  # the annotation says 30 frames; the file is damaged
    m = run_ingest(str(root), build_config("cpu"), tmp_path / "out", tmp_path / "report.json")
    from mvd.video import count_decodable

    assert m.videos[0].num_frames == count_decodable(video)
    notes = [d["reason"] for d in json.loads((tmp_path / "report.json").read_text())["decisions"]]
    assert any("decodes" in n for n in notes)


# ----------------------------------------------------------------------------- what was left out


def test_left_out_videos_name_stage_and_reason(tmp_path):
    from components.benchmark import left_out_videos
    from components.report.page import _left_out_section

    rep = tmp_path / "ingest.json"
    rep.write_text(json.dumps({"decisions": [
        {"video": "ds/e.mp4", "decision": "excluded", "reason": "unreadable video: cannot open"},
        {"video": "ds/b.mp4", "decision": "tag_clipped", "reason": "clipped"},
        {"video": None, "decision": "tags_ignored", "reason": "rearing"}]}))
    out = left_out_videos(rep, [{"video": "ds/c.mp4", "reason": "no frame decodes"}],
                          [{"video": "ds/d.mp4", "reason": "ended early"}])
    assert [(d["video"], d["stage"]) for d in out] == [("ds/e.mp4", "ingest"), ("ds/c.mp4", "bbox-crop"),
                                                      ("ds/d.mp4", "benchmark")]
    html = _left_out_section(out)
    assert "Videos left out" in html and "ds/e.mp4" in html and "unreadable video" in html
    assert _left_out_section([]) == ""


def test_headline_puts_precision_beside_recall():
    """A model labelling every frame a twitch showed 'twitch event recall 1.000' and nothing else."""
    from components.benchmark import headline
    from mvd.metrics import evaluate

    y = np.zeros(100, dtype=int)
    y[[10, 40, 70]] = 2
    p = np.tile([0.9, 0.05, 0.05], (100, 1))
    p[np.arange(100) % 5 < 2] = [0.05, 0.05, 0.9]  # a twitch fired every half second: 20 bouts
    r = evaluate([y], [p], LABELS, 10.0, ["v"])
    r["overlap_recall"] = {"Self-Grooming": None, "Head/Body TWITCH": 1.0}
    h = headline(r, LABELS)
    assert h["twitch_event_recall"] == 1.0 and h["twitch_event_precision"] == pytest.approx(3 / 20)
    assert h["counts"]["Head/Body TWITCH"]["pred_count"] == 20 and h["counts"]["Head/Body TWITCH"]["true_count"] == 3

    import contextlib
    import io

    from pipeline.cli import _print_summary

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        _print_summary({"run_id": "r", "wall_s": 1, "metrics": h, "model_name": "m", "model_version": "1",
                        "promoted": False, "promotion_reason": "x", "mlflow_tracking_uri": "sqlite:///x",
                        "artifacts": {"report": "r.html", "predictions": "p"}}, as_json=False)
    text = buf.getvalue()
    line = next(ln for ln in text.splitlines() if "Head/Body TWITCH: events" in ln)
    assert "precision" in line and "recall" in line
    assert "20 bouts predicted / 3 true" in text
