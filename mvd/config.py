"""Run configuration: model, data, train, benchmark and register sections as dataclasses.

A config is built from a profile (``gpu`` = the reference app's defaults with ViT-S 16×224,
``cpu`` = a tiny ViT that trains on two cores), then a YAML file, then ``key=value``
overrides with dotted keys (``train.epochs=5``). Every value is type-checked; an unknown key
is an error that lists the valid ones.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_LABELS = ["idle", "Self-Grooming", "Head/Body TWITCH"]
OBJECTIVES = ("events", "counts")  # what calibration maximises per class (BenchmarkConfig.objective)
CROP_MODES = ("union", "track")  # data.crop_mode: one crop per clip (the reference), or one per frame following the animal
STITCH_SIGMA_RANGE = (0.05, 10.0)  # benchmark.stitch_sigma: 0 (windows weigh alike) or within this, × the window's span


def valid_stitch_sigma(sigma: object) -> bool:
    """Whether ``sigma`` is a usable ``stitch_sigma``: a number, 0 or within :data:`STITCH_SIGMA_RANGE`."""
    lo, hi = STITCH_SIGMA_RANGE
    return isinstance(sigma, (int, float)) and not isinstance(sigma, bool) and (sigma == 0 or lo <= sigma <= hi)


TTA_VIEWS = (1, 2, 4, 8)  # test-time views of a square crop: identity, + horizontal flip, + vertical, + transposed


class ConfigError(ValueError):
    """Invalid configuration; the message names the key and what is accepted."""


@dataclass
class ModelConfig:
    arch: str = "vit_small"
    num_frames: int = 16
    sampling_rate: int = 2
    input_size: int = 224
    patch_size: int = 16  # spatial side of a token, pixels (official checkpoints: 16)
    tubelet_size: int = 2  # frames per token, = the dense head's time resolution (official checkpoints: 2)
    drop_path: float = 0.1
    subtract_temporal_mean: bool = False  # feed each frame minus the clip's mean frame (motion only)
    normalize_contrast: bool = False  # divide each clip by its own standard deviation (faint and contrasty scenes alike)
    dense_head: bool = True  # also classify every temporal token: per-frame labels, not window-wide ones
    target_fps: float = 0.0  # the model's frame rate: every video is resampled to it; 0 = the lowest rate among the training videos
    pretrained: str = ""  # path/URI of an official .pth or one of our model directories


@dataclass
class DataConfig:
    labels: list[str] = field(default_factory=lambda: list(DEFAULT_LABELS))
    # tag name prefix (case-insensitive) -> class; empty = the class names themselves
    tag_map: dict[str, str] = field(default_factory=dict)
    unknown_tags: str = "warn"  # warn | error
    test_ratio: float = 0.2
    val_ratio: float = 0.2  # of the training videos, held out whole for validation and calibration
    split_seed: int = 0
    detector: str = "background"
    box_class: str = "mouse"
    pad_train: float = 0.10
    pad_infer: float = 0.05
    crop_mode: str = "union"  # union: one crop per clip (the boxes' union); track: per frame, following the animal (mvd.crop)
    min_clip_s: float = 1.0
    max_clip_s: float = 5.0
    idle_min_s: float = 3.0
    idle_max_s: float = 5.0
    idle_ratio: float = 1.0  # idle frames per video ≈ idle_ratio × mean positive frames per video
    cache: str = ""  # directory or s3:// prefix; empty = no cache
    crop_workers: int = 0  # bbox-crop processes (videos side by side); 0 = one per usable core, at most 8


@dataclass
class TrainConfig:
    epochs: int = 40
    save_ckpt_freq: int = 5
    val_ratio: float = 0.1
    lr: float = 6e-4  # base lr, scaled by effective batch / 256
    min_lr: float = 1e-6
    batch_size: int = 8
    accum_steps: int = 1
    warmup_epochs: float = 2.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.001
    layer_decay: float = 0.75
    clip_grad: float = 0.0  # 0 = off
    label_smoothing: float = 0.1
    dense_loss_weight: float = 1.0  # weight of the per-frame (dense head) loss beside the clip loss
    model_ema: bool = False  # validate and save an exponential moving average of the weights
    model_ema_decay: float = 0.9999  # its decay per update (warmed up from 0 over the first updates)
    mixup: float = 0.8
    cutmix: float = 1.0
    mixup_prob: float = 0.05
    reprob: float = 0.05
    rand_augment: str = "rand-m7-n4-mstd0.5-inc1"  # empty = off
    rrc_scale: list[float] = field(default_factory=lambda: [0.7, 1.0])
    flip: bool = True
    color_jitter: float = 0.0  # brightness/contrast/saturation ± this, one draw per clip
    invert_prob: float = 0.0  # probability of inverting a clip's colours (dark ↔ light animals)
    low_res_prob: float = 0.0  # probability of shrinking a clip and enlarging it back (a smaller or coarser animal)
    low_res_scale: float = 0.5  # the smallest side it is shrunk to, × the input size
    balanced_sampling: bool = False
    samples_per_epoch: int = 0  # 0 = one pass over the training clips
    amp: bool = True
    num_workers: int = 2
    seed: int = 0
    resume: str = ""


@dataclass
class BenchmarkConfig:
    """The inference contract written into the model card, and how the benchmark scores it.

    Per-class post-processing (``thresholds``, ``smooth_s``, ``min_duration_s``,
    ``merge_gap_s``, ``peak_thresholds``; class name -> value, durations in seconds) is fitted on the validation
    videos when ``calibrate`` is on; a value given here is pinned instead of fitted. ``objective``
    says per class what the fit maximises.
    """

    stride: int = 0  # 0 = half the window span
    batch_size: int = 16
    # each window's softmax averaged over this many of the square's symmetries (1 = off, 2, 4 or 8;
    # mvd.transforms.square_views): the orientations train.flip teaches the model, at that many times the model's cost
    tta_views: int = 1
    # a frame's probabilities weigh each covering window by a Gaussian of the frame's distance from the
    # window's centre, sigma this fraction of the window's span (0 = every window alike): a window's
    # output is surest where the frame has context on both sides (mvd.infer.window_weights)
    stitch_sigma: float = 0.125
    calibrate: bool = True  # fit the post-processing rules on the validation videos after training
    thresholds: dict[str, float] = field(default_factory=dict)
    smooth_s: dict[str, float] = field(default_factory=dict)
    min_duration_s: dict[str, float] = field(default_factory=dict)
    merge_gap_s: dict[str, float] = field(default_factory=dict)
    peak_thresholds: dict[str, float] = field(default_factory=dict)
    # class -> what calibration maximises: "events" (default: the mean of the hit-rule F1 and the
    # IoU ≥ 0.5 F1, counts and timing) or "counts" (the hit-rule F1 alone: the count is the readout)
    objective: dict[str, str] = field(default_factory=dict)
    hit_tolerance_s: float = 0.5
    iou_thresholds: list[float] = field(default_factory=lambda: [0.3, 0.5, 0.7])


@dataclass
class RegisterConfig:
    model_name: str = "mouse-action-mvd"
    primary_metric: str = "frame_macro_f1"
    promote_margin: float = 0.0


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def flat(self) -> dict[str, Any]:
        """``{"train.epochs": 40, ...}`` for logging as parameters."""
        return {k: v for k, v in _flatten(self.to_dict())}


PROFILES: dict[str, dict[str, Any]] = {
    "gpu": {},
    "cpu": {
        "model.arch": "vit_tiny",
        "model.num_frames": 8,
        "model.sampling_rate": 1,
        "model.input_size": 32,
        "model.drop_path": 0.0,
        "model.subtract_temporal_mean": True,
        "model.normalize_contrast": True,  # faint and contrasty scenes alike (README)
        "data.crop_mode": "track",  # a walking animal stays put in the crop, so its twitches are not drowned (README)
        "data.idle_ratio": 3.0,  # every idle stretch the videos have: the walking and head turns twitches are told from
        "train.epochs": 30,
        "train.samples_per_epoch": 3000,
        "train.batch_size": 16,
        "train.lr": 0.008,  # × 16/256 = 5e-4 (1e-3 trained less steadily: README, the cpu profile)
        "train.warmup_epochs": 1.0,
        "train.layer_decay": 1.0,
        "train.weight_decay": 0.05,
        "train.save_ckpt_freq": 10,
        "train.model_ema": True,  # a few thousand noisy small-batch updates: their average is steadier
        "train.model_ema_decay": 0.998,  # about the last 500 updates (3 epochs)
        "train.rand_augment": "",
        "train.rrc_scale": [1.0, 1.0],
        "train.flip": True,
        "train.color_jitter": 0.4,  # brightness and contrast: other lighting, fainter motion (README)
        "train.reprob": 0.0,
        "train.mixup_prob": 0.0,
        "train.label_smoothing": 0.0,
        "train.amp": False,
        "train.balanced_sampling": True,
        "train.num_workers": 0,
        "benchmark.batch_size": 64,
        "benchmark.stride": 1,  # every frame starts a window: short twitches are seen whole
        "benchmark.tta_views": 4,  # identity, flips and half turn: as good as all 8 on the validation videos, at half the cost
    },
}


def _flatten(d: dict[str, Any], prefix: str = ""):
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key.count(".") == 0:
            yield from _flatten(v, key + ".")
        else:
            yield key, v


def valid_keys() -> list[str]:
    return sorted(Config().flat().keys())


def _coerce(key: str, value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"config key {key!r} expects true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"config key {key!r} expects an integer, got {value!r}")
        try:
            f = float(value)
        except ValueError as e:
            raise ConfigError(f"config key {key!r} expects an integer, got {value!r}") from e
        if f != int(f):
            raise ConfigError(f"config key {key!r} expects an integer, got {value!r}")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"config key {key!r} expects a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"config key {key!r} expects a number, got {value!r}") from e
    if tp is str:
        if value is None:
            return ""
        if isinstance(value, (dict, list)):
            raise ConfigError(f"config key {key!r} expects a string, got {value!r}")
        return str(value)
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} expects a list, got {value!r}")
        return [_coerce(key, v, item) for v in value]
    if origin is dict:
        _, vt = typing.get_args(tp)
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip() else {}
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} expects a mapping, got {value!r}")
        return {str(k): _coerce(f"{key}.{k}", v, vt) for k, v in value.items()}
    raise ConfigError(f"config key {key!r} has unsupported type {tp}")


def _section_types(section_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(section_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(section_cls)}


def set_value(cfg: Config, key: str, value: Any) -> None:
    """Set ``section.name`` on ``cfg`` with type checking; raises ConfigError for unknown keys."""
    parts = key.strip().split(".", 1)
    sections = {f.name: f for f in dataclasses.fields(Config)}
    if len(parts) != 2 or parts[0] not in sections:
        raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(valid_keys())}")
    section = getattr(cfg, parts[0])
    types_ = _section_types(type(section))
    name = parts[1]
    if name not in types_:
        # a dotted key into a dict-valued field, e.g. benchmark.thresholds.Self-Grooming=0.6
        head, _, sub = name.partition(".")
        if sub and head in types_ and typing.get_origin(types_[head]) is dict:
            _, vt = typing.get_args(types_[head])
            getattr(section, head)[sub] = _coerce(key, value, vt)
            return
        raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(valid_keys())}")
    if isinstance(value, str) and types_[name] not in (str,):
        value = yaml.safe_load(value) if value.strip() else value
    setattr(section, name, _coerce(key, value, types_[name]))


def parse_overrides(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}; valid keys: {', '.join(valid_keys())}")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out


def apply_mapping(cfg: Config, mapping: dict[str, Any], source: str = "config") -> None:
    for key, value in mapping.items():
        if isinstance(value, dict) and "." not in key and key in {f.name for f in dataclasses.fields(Config)}:
            for sub, v in value.items():
                set_value(cfg, f"{key}.{sub}", v)
        else:
            set_value(cfg, key, value)


def build_config(
    profile: str = "gpu", config_file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> Config:
    """Profile defaults, then the YAML file, then overrides; validated."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    cfg = Config()
    apply_mapping(cfg, PROFILES[profile])
    if config_file:
        p = Path(config_file)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p} is not valid YAML: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p} must hold a mapping of sections (model, data, train, ...)")
        apply_mapping(cfg, data)
    apply_mapping(cfg, overrides or {})
    validate(cfg)
    return cfg


def config_from_dict(d: dict[str, Any]) -> Config:
    cfg = Config()
    apply_mapping(cfg, d)
    validate(cfg)
    return cfg


def config_from_json(s: str) -> Config:
    return config_from_dict(json.loads(s))


def validate(cfg: Config) -> None:
    m, d, t, b = cfg.model, cfg.data, cfg.train, cfg.benchmark
    checks = [
        (m.tubelet_size >= 1, "model.tubelet_size must be ≥ 1"),
        (m.patch_size >= 1, "model.patch_size must be ≥ 1"),
        (m.num_frames >= 2 and m.num_frames % max(1, m.tubelet_size) == 0,
         f"model.num_frames ({m.num_frames}) must be ≥ 2 and a multiple of model.tubelet_size ({m.tubelet_size})"),
        (m.sampling_rate >= 1, "model.sampling_rate must be ≥ 1"),
        (m.input_size >= m.patch_size and m.input_size % max(1, m.patch_size) == 0,
         f"model.input_size ({m.input_size}) must be a multiple of model.patch_size ({m.patch_size})"),
        (0 <= m.drop_path < 1, "model.drop_path must be in [0, 1)"),
        (m.target_fps >= 0, "model.target_fps must be ≥ 0 (0 = the lowest frame rate among the training videos)"),
        (len(d.labels) >= 2, "data.labels needs at least two classes (idle first)"),
        (len(set(x.lower() for x in d.labels)) == len(d.labels), "data.labels has duplicates"),
        (d.unknown_tags in ("warn", "error"), "data.unknown_tags must be 'warn' or 'error'"),
        (0 < d.test_ratio < 1, "data.test_ratio must be in (0, 1)"),
        (0 <= d.val_ratio < 1, "data.val_ratio must be in [0, 1)"),
        (d.crop_workers >= 0, "data.crop_workers must be ≥ 0 (0 = one per usable core)"),
        (0 <= d.pad_train < 1 and 0 <= d.pad_infer < 1, "data.pad_train/pad_infer must be in [0, 1)"),
        (d.crop_mode in CROP_MODES, f"data.crop_mode must be one of {CROP_MODES}, got {d.crop_mode!r}"),
        (0 < d.min_clip_s <= d.max_clip_s, "need 0 < data.min_clip_s ≤ data.max_clip_s"),
        (0 < d.idle_min_s <= d.idle_max_s, "need 0 < data.idle_min_s ≤ data.idle_max_s"),
        (t.epochs >= 1, "train.epochs must be ≥ 1"),
        (0 <= t.model_ema_decay < 1, "train.model_ema_decay must be in [0, 1)"),
        (t.save_ckpt_freq >= 1, "train.save_ckpt_freq must be ≥ 1"),
        (0 <= t.val_ratio < 1, "train.val_ratio must be in [0, 1)"),
        (t.lr > 0 and t.min_lr >= 0, "train.lr must be > 0 and train.min_lr ≥ 0"),
        (t.batch_size >= 1 and t.accum_steps >= 1, "train.batch_size and train.accum_steps must be ≥ 1"),
        (len(t.betas) == 2 and all(0 <= x < 1 for x in t.betas), "train.betas must be two numbers in [0, 1)"),
        (0 < t.layer_decay <= 1, "train.layer_decay must be in (0, 1]"),
        (len(t.rrc_scale) == 2 and 0 < t.rrc_scale[0] <= t.rrc_scale[1] <= 1, "train.rrc_scale must be [lo, hi] in (0, 1]"),
        (0 <= t.mixup_prob <= 1 and 0 <= t.reprob <= 1, "train.mixup_prob/reprob must be in [0, 1]"),
        (0 <= t.label_smoothing < 1, "train.label_smoothing must be in [0, 1)"),
        (t.dense_loss_weight >= 0, "train.dense_loss_weight must be ≥ 0"),
        (0 <= t.color_jitter < 1 and 0 <= t.invert_prob <= 1, "train.color_jitter must be in [0, 1), train.invert_prob in [0, 1]"),
        (0 <= t.low_res_prob <= 1 and 0 < t.low_res_scale <= 1, "train.low_res_prob must be in [0, 1], train.low_res_scale in (0, 1]"),
        (b.stride >= 0 and b.batch_size >= 1, "benchmark.stride must be ≥ 0 and benchmark.batch_size ≥ 1"),
        (b.tta_views in TTA_VIEWS, f"benchmark.tta_views must be one of {TTA_VIEWS} (1 = no test-time views)"),
        (b.tta_views == 1 or t.flip, f"benchmark.tta_views={b.tta_views} averages flipped views, but train.flip is off, "
                                     "so the model never learnt them: set benchmark.tta_views=1 or train.flip=true"),
        (valid_stitch_sigma(b.stitch_sigma),
         "benchmark.stitch_sigma must be 0 (windows weigh alike) or in [0.05, 10] (× the window's span)"),
        (b.hit_tolerance_s >= 0, "benchmark.hit_tolerance_s must be ≥ 0 (seconds)"),
        (all(0 < x <= 1 for x in b.iou_thresholds), "benchmark.iou_thresholds must be numbers in (0, 1]"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)
    if t.rand_augment:
        from .randaugment import parse_rand_augment

        try:
            parse_rand_augment(t.rand_augment)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    from .detect import available_detectors
    from .metrics import summary_keys
    from .variants import VARIANTS

    if m.arch not in VARIANTS:
        raise ConfigError(f"model.arch={m.arch!r} is not an architecture; choose one of {sorted(VARIANTS)}")
    if d.detector not in available_detectors():
        raise ConfigError(f"data.detector={d.detector!r} is not a detector; choose one of {available_detectors()}")
    keys = {k for k in summary_keys(d.labels, b.iou_thresholds)
            if not k.startswith(("count_true/", "count_pred/", "count_bias/"))}  # figures, not scores
    if cfg.register.primary_metric not in keys:
        raise ConfigError(f"register.primary_metric={cfg.register.primary_metric!r} is not a benchmark metric, so "
                          f"promotion could never happen; choose one of {sorted(keys)}")
    for what in (*PINNED_RULES.values(), "objective"):
        mapping = getattr(b, what)
        for name, value in mapping.items():
            if name not in d.labels[1:]:
                raise ConfigError(f"benchmark.{what} names class {name!r}, which is not an action class of "
                                  f"data.labels {d.labels}")
            if what == "objective":
                if value not in OBJECTIVES:
                    raise ConfigError(f"benchmark.objective.{name}={value!r}: choose one of {OBJECTIVES}")
                continue
            is_threshold = what in ("thresholds", "peak_thresholds")
            ok = 0 <= value <= 1 if is_threshold else value >= 0
            if not ok:
                raise ConfigError(f"benchmark.{what}.{name}={value}: "
                                  + ("a threshold must be in [0, 1]" if is_threshold else "seconds must be ≥ 0"))
    if d.tag_map:
        for prefix, cls in d.tag_map.items():
            if cls not in d.labels:
                raise ConfigError(f"data.tag_map maps {prefix!r} to {cls!r}, which is not in data.labels {d.labels}")


PINNED_RULES = {"threshold": "thresholds", "smooth_s": "smooth_s", "min_duration_s": "min_duration_s",
                "merge_gap_s": "merge_gap_s", "peak_threshold": "peak_thresholds"}  # post-processing rule key -> benchmark config field


def pinned_rules(cfg: Config) -> dict[str, dict[str, float]]:
    """Post-processing values fixed by configuration: class -> {rule key: value}."""
    out: dict[str, dict[str, float]] = {}
    for key, what in PINNED_RULES.items():
        for name, value in getattr(cfg.benchmark, what).items():
            out.setdefault(name, {})[key] = float(value)
    return out


def window_span(cfg: Config) -> int:
    """Frames covered by one model window: num_frames × sampling_rate."""
    return cfg.model.num_frames * cfg.model.sampling_rate

