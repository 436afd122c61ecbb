"""``mar models list|promote`` and ``mar runs compare`` on a real sqlite MLflow store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fake_teamfiles import FakeTeamFiles

from components.integrations import tracking
from components.register import run_register
from mvd.config import build_config
from pipeline.cli import main

NAME = "mouse-action-mvd"
LABELS = ["idle", "Self-Grooming", "Head/Body TWITCH"]
# version: (frame_macro_f1, data_version, learning rate param)
VERSIONS = {"1": (0.50, "data-a", 0.001), "2": (0.70, "data-b", 0.002)}


def _tiny_model_dirs(root: Path, cfg, data_versions: list[str]) -> list[Path]:
    """One saved tiny model, copied once per data version (the card's data_version differs)."""
    from mvd.model import create_model
    from mvd.train import model_card
    from mvd.weights import save_model

    model = create_model("vit_tiny", num_classes=len(LABELS), num_frames=2, img_size=16)
    first = save_model(model, root / "model0", model_card(cfg, LABELS, data_versions[0]))
    out = []
    for i, dv in enumerate(data_versions):
        d = root / f"model{i + 1}"
        shutil.copytree(first, d)
        card = json.loads((d / "model_card.json").read_text())
        (d / "model_card.json").write_text(json.dumps({**card, "data_version": dv}))
        out.append(d)
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory, monkeypatch_module):
    """Two versions registered by run_register: it makes 1 champion, then moves champion to the better 2."""
    for k in ("MAR_MIRROR_URI", "SERVER_ADDRESS", "API_TOKEN", "TEAM_ID", "MLFLOW_TRACKING_URI"):
        monkeypatch_module.delenv(k, raising=False)
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    cfg = build_config("cpu", None, {"model.arch": "vit_tiny", "model.num_frames": 2, "model.input_size": 16})
    runs, regs = {}, {}
    dirs = _tiny_model_dirs(root, cfg, [dv for _, dv, _ in VERSIONS.values()])
    (root / "report.html").write_text("<html>benchmark</html>")
    with FakeTeamFiles() as fake:
        for model_dir, (version, (f1, _, lr)) in zip(dirs, VERSIONS.items()):
            run_id = tracking.start_run(uri, "exp", f"run-{version}", {"train.lr": lr, "model.arch": "vit_tiny"},
                                        artifact_root=str(root / "mlartifacts"))
            tracking.log_metrics(tracking.client(uri), run_id, {"frame_macro_f1": f1, "best_epoch": 3.0})
            if version == "2":  # the last one is mirrored: a local prefix and Team Files
                monkeypatch_module.setenv("MAR_MIRROR_URI", str(root / "mirror"))
                monkeypatch_module.setenv("SERVER_ADDRESS", fake.address)
                monkeypatch_module.setenv("API_TOKEN", "test-token")
                monkeypatch_module.setenv("TEAM_ID", "8")
                monkeypatch_module.setenv("SUPERVISELY_PUBLIC_API_RETRY_SLEEP_SEC", "0")
            regs[version] = run_register(model_dir, {"summary": {"frame_macro_f1": f1}}, cfg, tracking_uri=uri,
                                         mlflow_run_id=run_id, report=root / "report.html")
            assert regs[version]["model_version"] == version
            runs[version] = run_id
    for k in ("MAR_MIRROR_URI", "SERVER_ADDRESS", "API_TOKEN", "TEAM_ID"):
        monkeypatch_module.delenv(k)
    return root, uri, runs, regs, fake.uploads


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture
def db(store, tmp_path):
    """A private copy of the store so each test starts from the same registry state."""
    root, _, runs, _, _ = store
    shutil.copyfile(root / "mlflow.db", tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}", runs


def _mar(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _champion(uri: str) -> str:
    return str(tracking.client(uri).get_model_version_by_alias(NAME, "champion").version)


def test_register_mirrors_only_when_configured(store):
    root, uri, runs, regs, uploads = store
    assert regs["1"]["mirrored"] == {"s3": None, "team_files": None}
    mirrored = regs["2"]["mirrored"]
    prefix = f"{root / 'mirror'}/models/{NAME}/2"
    names = {"model.safetensors", "model_card.json", "config.json", "report.html"}
    assert sorted(mirrored["s3"]) == sorted(f"{prefix}/{n}" for n in names)
    assert (Path(prefix) / "report.html").read_text() == "<html>benchmark</html>"
    assert json.loads((Path(prefix) / "config.json").read_text())["model"]["arch"] == "vit_tiny"
    team_dir = f"/experiments/local_{NAME}/run-2_MVD/"
    expected = {team_dir + n for n in ("checkpoints/model.safetensors", "model_meta.json", "config.json",
                                       "report.html")}
    assert set(mirrored["team_files"]) == expected == {u["path"] for u in uploads}
    assert all(u["team"] == 8 for u in uploads)
    tags = tracking.client(uri).get_model_version(NAME, "2").tags
    assert tags["mirror.s3"] == prefix + "/" and tags["mirror.team_files"] == team_dir
    assert "mirror.s3" not in tracking.client(uri).get_model_version(NAME, "1").tags


def test_list_shows_versions_aliases_metric(db, capsys):
    uri, runs = db
    code, out, err = _mar(capsys, "models", "list", "--tracking-uri", uri)
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()[3:]}
    assert set(rows) == {"1", "2"}
    assert "candidate,champion" in rows["2"] and "champion" not in rows["1"]
    assert "0.7000" in rows["2"] and "data-b" in rows["2"] and "0.5000" in rows["1"] and "data-a" in rows["1"]
    assert runs["1"] in rows["1"] and runs["2"] in rows["2"]
    code, out, _ = _mar(capsys, "models", "list", "--tracking-uri", uri, "--json")
    data = json.loads(out)
    assert [(r["version"], r["aliases"], r["value"]) for r in data] == [
        ("1", [], 0.5), ("2", ["candidate", "champion"], 0.7)]


def test_list_uses_workdir_store_by_default(db, capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, out, err = _mar(capsys, "models", "list", "--workdir", str(tmp_path))
    assert code == 0, err
    assert str(tmp_path / "mlflow.db") in out
    monkeypatch.setenv("MLFLOW_TRACKING_URI", db[0])
    code, out, err = _mar(capsys, "models", "list", "--workdir", str(tmp_path / "elsewhere"))
    assert code == 0 and db[0] in out


def test_promote_refuses_worse_version_then_force(db, capsys):
    uri, _ = db
    code, out, _ = _mar(capsys, "models", "promote", "1", "--tracking-uri", uri)
    assert code == 1
    assert "not promoted" in out and "0.5000 does not beat champion 0.7000" in out and "--force" in out
    assert _champion(uri) == "2"
    code, out, _ = _mar(capsys, "models", "promote", "1", "--tracking-uri", uri, "--force")
    assert code == 0 and "promoted" in out and "forced" in out and "was version 2" in out
    assert _champion(uri) == "1"
    tags = tracking.client(uri).get_model_version(NAME, "1").tags
    assert tags["promotion"] == "champion"
    assert tags["promotion_reason"].startswith("forced: frame_macro_f1: 0.5000 does not beat")


def test_promote_better_version_and_margin(db, capsys):
    uri, _ = db
    tracking.client(uri).set_registered_model_alias(NAME, "champion", "1")
    code, out, _ = _mar(capsys, "models", "promote", "2", "--tracking-uri", uri, "--margin", "0.3")
    assert code == 1 and "margin 0.3" in out and _champion(uri) == "1"
    code, out, _ = _mar(capsys, "models", "promote", "2", "--tracking-uri", uri, "--margin", "0.1")
    assert code == 0 and "0.7000 beats champion 0.5000" in out and _champion(uri) == "2"
    code, out, _ = _mar(capsys, "models", "promote", "2", "--tracking-uri", uri)
    assert code == 0 and "already the champion" in out


@pytest.mark.parametrize("argv, needle", [
    (["models", "promote", "9"], "has no version '9'; versions: ['1', '2']"),
    (["models", "list", "--name", "other-model"], "no registered model named 'other-model'"),
    (["models", "promote", "1", "--name", "other-model"], "mouse-action-mvd"),
    (["runs", "compare", "0123456789abcdef0123456789abcdef"], "no MLflow run with id '0123456789abcdef"),
])
def test_unknown_things_exit_2(db, capsys, argv, needle):
    code, out, err = _mar(capsys, *argv, "--tracking-uri", db[0])
    assert code == 2 and needle in err and "Traceback" not in err


def test_missing_store_exit_2(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, _, err = _mar(capsys, "models", "list", "--workdir", str(tmp_path / "empty"))
    assert code == 2 and "no MLflow store at" in err and not (tmp_path / "empty" / "mlflow.db").exists()


def test_runs_compare(db, capsys):
    uri, runs = db
    code, out, err = _mar(capsys, "runs", "compare", runs["1"], runs["2"], "--tracking-uri", uri)
    assert code == 0, err
    params, metrics = out.split("metrics (latest value):")
    assert "train.lr" in params and "0.001" in params and "0.002" in params
    assert "model.arch" not in params and "1 identical" in params
    f1 = next(line for line in metrics.splitlines() if line.startswith("frame_macro_f1"))
    assert f1.split()[1:] == ["0.5000", "0.7000"]
    assert "best_epoch" in metrics and "Compare" in out and "run-1" in out and "run-2" in out
    code, out, _ = _mar(capsys, "runs", "compare", runs["2"], runs["1"], "--tracking-uri", uri, "--json")
    data = json.loads(out)
    assert data["params"] == {"train.lr": ["0.002", "0.001"]}
    assert data["metrics"]["frame_macro_f1"] == [0.7, 0.5]
