import pytest

from mvd.config import ConfigError, build_config, config_from_json, parse_overrides, valid_keys


def test_profiles_and_overrides(tmp_path):
    gpu = build_config("gpu")
    assert (gpu.model.arch, gpu.model.num_frames, gpu.model.input_size, gpu.model.sampling_rate) == ("vit_small", 16, 224, 2)
    assert (gpu.train.epochs, gpu.train.batch_size, gpu.train.lr, gpu.train.layer_decay) == (40, 8, 6e-4, 0.75)
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  epochs: 3\nmodel:\n  arch: vit_base\n")
    cfg = build_config("cpu", f, parse_overrides(["train.epochs=5", "train.betas=[0.9, 0.95]",
                                                  "benchmark.thresholds.Self-Grooming=0.6", "train.flip=false",
                                                  "benchmark.tta_views=1"]))
    assert cfg.model.arch == "vit_base" and cfg.train.epochs == 5 and cfg.train.betas == [0.9, 0.95]
    assert cfg.benchmark.thresholds == {"Self-Grooming": 0.6} and cfg.train.flip is False
    assert config_from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("item,needle", [
    ("train.epoch=3", "valid keys"), ("nosection=1", "valid keys"), ("train.epochs=abc", "integer"),
    ("train.epochs=2.5", "integer"), ("model.input_size=100", "multiple of model.patch_size"),
    ("model.tubelet_size=3", "multiple of model.tubelet_size"), ("model.patch_size=0", "patch_size"), ("benchmark.thresholds.foo=0.5", "foo"),
    ("train.flip=maybe", "true/false"), ("epochs", "key=value"),
    ("train.rand_augment=autoaug", "rand-m7-n4"), ("train.rand_augment=rand-m7-x3", "'x3' is not understood"),
    ("train.rand_augment=rand-m12-n2", "0–10"), ("train.low_res_scale=0", "low_res_scale in"),
    ("train.low_res_prob=1.5", "low_res_prob must be in"),
])
def test_bad_overrides_are_named(item, needle):
    with pytest.raises(ConfigError, match=needle):
        build_config("cpu", overrides=parse_overrides([item]))


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as e:
        build_config("cpu", overrides={"train.epoch": 1})
    assert all(k in str(e.value) for k in valid_keys())


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_config("cpu", tmp_path / "nope.yaml")


@pytest.mark.parametrize("key, value, match", [
    ("model.arch", "vit_huge", "model.arch"),
    ("data.detector", "yolo", "data.detector"),
    ("register.primary_metric", "frame_macro_F1", "promotion could never happen"),
    ("register.primary_metric", "count_pred/Head-Body_TWITCH", "register.primary_metric"),
    ("benchmark.iou_thresholds", "[0.5, 1.5]", "iou_thresholds"),
    ("benchmark.hit_tolerance_s", "-1", "hit_tolerance_s"),
    ("benchmark.objective.Head/Body TWITCH", "count", "choose one of"),
    ("benchmark.objective.idle", "counts", "not an action class"),
    ("train.rand_augment", "rand-x3", "rand_augment"),
    ("train.model_ema_decay", "1.0", "train.model_ema_decay"),
    ("benchmark.peak_thresholds.Head/Body TWITCH", "1.5", "a threshold must be in"),
    ("benchmark.tta_views", "3", "benchmark.tta_views must be one of"),
    ("benchmark.stitch_sigma", "0.01", "benchmark.stitch_sigma must be 0"),
    ("data.crop_mode", "follow", "data.crop_mode must be one of"),
])
def test_typos_fail_when_the_config_is_loaded(key, value, match):
    with pytest.raises(ConfigError, match=match):
        build_config("cpu", overrides={key: value})


def test_test_time_views_need_a_model_trained_on_flips():
    assert build_config("cpu").benchmark.tta_views == 4 and build_config("gpu").benchmark.tta_views == 1
    with pytest.raises(ConfigError, match="train.flip is off"):
        build_config("cpu", overrides={"train.flip": "false"})
    assert build_config("cpu", overrides={"train.flip": "false", "benchmark.tta_views": 1}).benchmark.tta_views == 1


def test_count_metrics_can_be_the_primary_metric():
    from components.integrations.registry import lower_is_better

    cfg = build_config("cpu", overrides={"register.primary_metric": "count_total_error/Head-Body_TWITCH"})
    assert lower_is_better(cfg.register.primary_metric)
    assert not lower_is_better("count_icc/Head-Body_TWITCH") and not lower_is_better("frame_macro_f1")
