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
