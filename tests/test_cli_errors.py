"""User errors: one paragraph on stderr, exit code 2, no traceback."""

from pipeline.cli import main


def _run(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def test_missing_source(capsys, tmp_path):
    code, err = _run(capsys, ["run", "--source", str(tmp_path / "nope"), "--profile", "cpu", "--workdir", str(tmp_path / "w")])
    assert code == 2 and "does not exist" in err and "Traceback" not in err and "Supervisely" in err


def test_not_a_project(capsys, tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "something.txt").write_text("x")
    code, err = _run(capsys, ["run", "--source", str(tmp_path / "p"), "--profile", "cpu", "--workdir", str(tmp_path / "w")])
    assert code == 2 and "meta.json" in err and "Traceback" not in err


def test_project_without_action_tags(capsys, tmp_path):
    import supervisely as sly

    from pipeline.demo import render_video

    root = tmp_path / "proj"
    project = sly.VideoProject(str(root), sly.OpenMode.CREATE)
    meta = sly.ProjectMeta(tag_metas=[sly.TagMeta("Self-Grooming", sly.TagValueType.NONE)])
    project.set_meta(meta)
    ds = project.create_dataset("ds")
    truth = render_video(tmp_path / "v.mp4", num_frames=20, size=(64, 48))
    ann = sly.VideoAnnotation(img_size=(48, 64), frames_count=truth.num_frames)
    ds.add_item_file("v.mp4", str(tmp_path / "v.mp4"), ann=ann)
    code, err = _run(capsys, ["run", "--source", str(root), "--profile", "cpu", "--workdir", str(tmp_path / "w")])
    assert code == 2 and "none has an action tag" in err and "Traceback" not in err
    assert not (tmp_path / "w").exists()


def test_unknown_set_key_lists_valid_keys(capsys, tmp_path):
    code, err = _run(capsys, ["run", "--source", str(tmp_path), "--profile", "cpu", "--set", "train.epohcs=3"])
    assert code == 2 and "unknown config key 'train.epohcs'" in err and "train.epochs" in err and "model.arch" in err


def test_config_command_prints_resolved_yaml(capsys):
    assert main(["config", "--profile", "cpu", "--set", "train.epochs=7"]) == 0
    out = capsys.readouterr().out
    assert "epochs: 7" in out and "arch: vit_tiny" in out


def test_boxes_command_writes_csv_and_sheet_and_names_bad_videos(capsys, tmp_path):
    from pipeline.demo import render_video

    render_video(tmp_path / "m.mp4", num_frames=30, size=(96, 72))
    (tmp_path / "bad.mp4").write_bytes(b"")
    code = main(["boxes", str(tmp_path / "m.mp4"), str(tmp_path / "bad.mp4"), "--out", str(tmp_path / "out")])
    out = capsys.readouterr()
    assert code == 0
    assert "m.mp4: 30 frames" in out.out and "bad.mp4" in out.err
    assert (tmp_path / "out" / "m.boxes.csv").is_file() and (tmp_path / "out" / "m.boxes.png").is_file()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_paragraph(err: str) -> bool:
    """No traceback, and the error is one line (MLflow may print its own warnings before it)."""
    return "Traceback" not in err and len([ln for ln in err.splitlines() if ": error: " in ln]) == 1


def test_unreachable_tracking_server_is_named_before_anything_starts(capsys, tmp_path, monkeypatch):
    from pipeline.demo import write_demo_project

    project = write_demo_project(tmp_path / "p", n_videos=2, seed=1, duration_s=(6, 6), sizes=[(96, 72)], workers=1)
    uri = f"http://127.0.0.1:{_free_port()}"
    code, err = _run(capsys, ["run", "--source", str(project.root), "--profile", "cpu", "--workdir",
                              str(tmp_path / "w"), "--tracking-uri", uri])
    assert code == 2 and uri in err and "did not answer" in err and _one_paragraph(err), err
    assert not (tmp_path / "w").exists()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for argv in (["models", "list"], ["runs", "compare", "abc"],
                 ["predict", "--model", "models:/m@champion", str(tmp_path), "--out", str(tmp_path / "o")]):
        code, err = _run(capsys, argv)
        assert code == 2 and uri in err and _one_paragraph(err), (argv, err)


def test_credentials_in_the_uri_are_refused(capsys):
    code, err = _run(capsys, ["models", "list", "--tracking-uri", "http://alice:s3cret@127.0.0.1:9/"])
    assert code == 2 and "MLFLOW_TRACKING_PASSWORD" in err and "s3cret" not in err and _one_paragraph(err), err


def test_refused_credentials_and_refused_artifact_store(capsys, monkeypatch):
    """A fake server: 401 to the experiment search unless the right basic-auth header comes, 500 to the
    artifact listing (its S3 store refuses)."""
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from components.integrations import tracking

    good = "Basic " + base64.b64encode(b"lab:right-password").decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.headers.get("Authorization") != good:
                code, body = 401, b"unauthorized"
            elif "mlflow-artifacts" in self.path:
                code, body = 500, b'{"error_code": "INTERNAL_ERROR", "message": "NoSuchBucket"}'
            else:
                code, body = 200, b'{"experiments": []}'
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "lab")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-password")
        code, err = _run(capsys, ["models", "list", "--tracking-uri", uri])
        assert code == 2 and uri in err and "refused the credentials" in err and _one_paragraph(err), err
        assert "wrong-password" not in err
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
        code, err = _run(capsys, ["models", "list", "--tracking-uri", uri])
        assert code == 2 and "none were set" in err, err
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "lab")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "right-password")
        tracking.check_server(uri, artifacts=False)
        try:
            tracking.check_server(uri)
        except tracking.TrackingServerError as e:
            assert uri in str(e) and "artifact store" in str(e) and "--artifacts-destination" in str(e)
        else:
            raise AssertionError("a refusing artifact store was not reported")
    finally:
        srv.shutdown()
