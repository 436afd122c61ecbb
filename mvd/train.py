"""Fine-tuning loop: explicit, resumable, one file.

AdamW with layer-wise lr decay (timm param groups), cosine schedule with warm-up per update
(timm scheduler), mixup/cutmix with soft-target loss or label-smoothed cross entropy, plus,
with a dense head, a per-time-step cross entropy against the classes of each window's sampled
frames (:mod:`mvd.dense`), gradient accumulation and clipping, bf16 autocast on CUDA,
with ``train.model_ema`` an exponential moving average of the weights (timm's ``ModelEmaV3``,
with decay warm-up) that is validated and saved in place of the raw weights,
validation every epoch; the best epoch by validation macro-F1 of the head inference uses
(per time step with a dense head, per clip otherwise; action classes) and the last epoch are
saved as safetensors with a model card. Checkpoints every ``save_ckpt_freq`` epochs hold model, optimizer,
scheduler, scaler, epoch, step, best metric, config and every RNG state, so a resumed run
continues exactly. Multi-GPU runs use DDP when started with ``torchrun``.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3
from torch.utils.data import DataLoader, WeightedRandomSampler
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from .card import spec_from_config
from .config import Config
from .dataset import ClipDataset, balanced_weights, stratified_split
from .dense import step_targets
from .metrics import frame_metrics
from .model import create_model
from .shards import ShardReader
from .transforms import MEAN, STD, ClipAugment
from .weights import load_pretrained, save_model

logger = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    best_dir: Path
    last_dir: Path
    best_metric: float
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)


# ----------------------------------------------------------------------------- RNG state


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- pieces


def build_model(cfg: Config, num_classes: int) -> nn.Module:
    m = cfg.model
    model = create_model(
        m.arch, num_classes=num_classes, num_frames=m.num_frames, img_size=m.input_size, drop_path_rate=m.drop_path,
        subtract_temporal_mean=m.subtract_temporal_mean, normalize_contrast=m.normalize_contrast,
        dense_head=m.dense_head, patch_size=m.patch_size, tubelet_size=m.tubelet_size,
    )
    if m.pretrained:
        info = load_pretrained(model, m.pretrained)
        logger.info("initialised from %s: %s", m.pretrained, info)
    return model


def build_optimizer(model: nn.Module, cfg: Config, world_size: int = 1) -> torch.optim.Optimizer:
    t = cfg.train
    eff_batch = t.batch_size * t.accum_steps * world_size
    lr = t.lr * eff_batch / 256
    return create_optimizer_v2(
        model,
        opt="adamw",
        lr=lr,
        weight_decay=t.weight_decay,
        layer_decay=t.layer_decay if t.layer_decay < 1.0 else None,
        betas=tuple(t.betas),
    )


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Config, updates_per_epoch: int) -> CosineLRScheduler:
    t = cfg.train
    total = max(1, t.epochs * updates_per_epoch)
    warmup = int(round(t.warmup_epochs * updates_per_epoch))
    return CosineLRScheduler(
        optimizer, t_initial=total, lr_min=t.min_lr, warmup_t=warmup, warmup_lr_init=t.min_lr, t_in_epochs=False
    )


def model_card(cfg: Config, labels: list[str], data_version: str, extra: dict[str, Any] | None = None,
               target_fps: float | None = None) -> dict[str, Any]:
    """The model card of a model trained with ``cfg``; ``target_fps`` is the frame rate the
    training windows were cut at (``model.target_fps`` when not given)."""
    m = cfg.model
    fps = float(m.target_fps if target_fps is None else target_fps)
    return {
        "arch": m.arch,
        "num_classes": len(labels),
        "labels": list(labels),
        "input": {
            "num_frames": m.num_frames,
            "sampling_rate": m.sampling_rate,
            "img_size": m.input_size,
            "tubelet_size": m.tubelet_size,
            "mean": list(MEAN),
            "std": list(STD),
            "crop_pad": cfg.data.pad_infer,
            "target_fps": fps,
        },
        "model_kwargs": {"drop_path_rate": m.drop_path, "subtract_temporal_mean": m.subtract_temporal_mean,
                         "normalize_contrast": m.normalize_contrast, "dense_head": m.dense_head,
                         "patch_size": m.patch_size},
        "inference": spec_from_config(cfg, list(labels), fps).to_dict(),
        "train_config": cfg.to_dict(),
        "data_version": data_version,
        **(extra or {}),
    }


@torch.no_grad()
def validate(model: nn.Module, loader: DataLoader, labels: list[str], device: torch.device, amp: bool,
             transform: ClipAugment) -> dict[str, float]:
    """Loss, accuracy and macro-F1 over ``loader``'s uint8 clips, ``transform`` applied on ``device``."""
    model.eval()
    dense = getattr(_unwrap(model), "has_dense_head", False)
    y_true, y_pred, f_true, f_pred, loss_sum, n = [], [], [], [], 0.0, 0
    for x, y, fy in loader:
        x, y = transform(x.to(device, non_blocking=True)), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits, steps = model(x, dense=True) if dense else (model(x), None)
        loss_sum += float(nn.functional.cross_entropy(logits.float(), y, reduction="sum"))
        n += len(y)
        y_true.append(y.cpu().numpy())
        y_pred.append(logits.argmax(1).cpu().numpy())
        if steps is not None:  # each time step's class against the majority of its frames
            tgt = step_targets(fy.to(device), len(labels), _unwrap(model).tubelet_size).argmax(-1)
            f_true.append(tgt.flatten().cpu().numpy())
            f_pred.append(steps.argmax(-1).flatten().cpu().numpy())
    if n == 0:
        return {}
    yt, yp = np.concatenate(y_true), np.concatenate(y_pred)
    out = {"val_loss": loss_sum / n, "val_acc": float((yt == yp).mean()),
           "val_macro_f1": float(frame_metrics([yt], [yp], labels)["macro"]["f1"] or 0.0)}
    if f_true:
        fm = frame_metrics([np.concatenate(f_true)], [np.concatenate(f_pred)], labels)
        out["val_step_macro_f1"] = float(fm["macro"]["f1"] or 0.0)
    return out


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, **state: Any) -> Path:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_training_state(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"resume checkpoint {p} does not exist")
    return torch.load(p, map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------- loop


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _smoothed_one_hot(y: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    off = smoothing / num_classes
    return torch.full((len(y), num_classes), off, device=y.device).scatter_(1, y[:, None], 1.0 - smoothing + off)


def _soft_ce(logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Cross entropy of (…, C) logits against (…, C) soft targets, label-smoothed, mean over positions."""
    c = logits.shape[-1]
    target = target * (1.0 - smoothing) + smoothing / c
    return -(target * torch.log_softmax(logits, dim=-1)).sum(-1).mean()


def train(
    cfg: Config,
    shards_dir: str | Path,
    out_dir: str | Path,
    *,
    labels: list[str],
    data_version: str = "",
    callback: EpochCallback | None = None,
    device: str | torch.device | None = None,
) -> TrainResult:
    """Fine-tune on the clips in ``shards_dir``; writes ``best/``, ``last/`` and ``checkpoints/`` under ``out_dir``."""
    t = cfg.train
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank, world = 0, 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if device is None:
        device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(device)
    amp = bool(t.amp and device.type == "cuda")
    is_main = rank == 0

    seed_everything(t.seed + rank)
    reader = ShardReader(shards_dir)
    all_labels = [c["label"] for c in reader.clips]
    if len(all_labels) == 0:
        raise ValueError(f"no training clips in {shards_dir}")
    splits = [c.get("split", "train") for c in reader.clips]
    if "val" in splits:  # clips of whole validation videos held out at ingest
        tr_pos = [i for i, s in enumerate(splits) if s != "val"]
        va_pos = [i for i, s in enumerate(splits) if s == "val"]
        all_labels = [all_labels[i] for i in tr_pos]
        if not tr_pos:
            raise ValueError(f"every clip in {shards_dir} belongs to a validation video; lower data.val_ratio")
    else:  # no validation video: hold out whole clips of the training videos
        groups = [c.get("clip", i) for i, c in enumerate(reader.clips)]
        tr_pos, va_pos = stratified_split(all_labels, t.val_ratio, t.seed, groups)
    m = cfg.model
    train_ds, val_ds = ClipDataset(reader, tr_pos), ClipDataset(reader, va_pos)
    # clips travel to the device as uint8; conversion and augmentation run there, batch-wise
    train_tf = ClipAugment(m.input_size, True, rrc_scale=tuple(t.rrc_scale), flip=t.flip, rand_augment=t.rand_augment,
                           reprob=t.reprob, color_jitter=t.color_jitter, invert_prob=t.invert_prob,
                           low_res_prob=t.low_res_prob, low_res_scale=t.low_res_scale)
    val_tf = ClipAugment(m.input_size, False)
    present = sorted(set(all_labels))
    logger.info("clips: %d train, %d val; classes present %s", len(train_ds), len(val_ds), [labels[i] for i in present])

    n_samples = t.samples_per_epoch or len(train_ds)
    sampler_gen = torch.Generator().manual_seed(t.seed)
    if distributed:
        sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True, seed=t.seed, drop_last=True)
    elif t.balanced_sampling:
        sampler = WeightedRandomSampler(balanced_weights(train_ds.labels), n_samples, replacement=True, generator=sampler_gen)
    else:
        sampler = torch.utils.data.RandomSampler(train_ds, num_samples=n_samples if t.samples_per_epoch else None,
                                                 replacement=bool(t.samples_per_epoch), generator=sampler_gen)
    mixup_on = t.mixup_prob > 0 and (t.mixup > 0 or t.cutmix > 0)
    batch = t.batch_size
    pin = device.type == "cuda"
    train_loader = train_ds.loader(batch, sampler=sampler, num_workers=t.num_workers, drop_last=len(train_ds) >= batch,
                                   pin_memory=pin, persistent_workers=t.num_workers > 0)
    val_loader = val_ds.loader(batch, shuffle=False, num_workers=t.num_workers, pin_memory=pin)
    updates_per_epoch = max(1, math.ceil(len(train_loader) / t.accum_steps))

    model = build_model(cfg, len(labels)).to(device)
    if distributed:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = build_optimizer(_unwrap(model), cfg, world)
    scheduler = build_scheduler(optimizer, cfg, updates_per_epoch)
    mixup = Mixup(mixup_alpha=t.mixup, cutmix_alpha=t.cutmix, prob=t.mixup_prob, label_smoothing=t.label_smoothing,
                  num_classes=len(labels)) if mixup_on else None
    criterion = SoftTargetCrossEntropy() if mixup else nn.CrossEntropyLoss(label_smoothing=t.label_smoothing)
    ema = ModelEmaV3(_unwrap(model), decay=t.model_ema_decay, use_warmup=True) if t.model_ema else None

    start_epoch, step, best, best_epoch, history = 0, 0, -1.0, -1, []
    if t.resume:
        ck = load_training_state(t.resume)
        _unwrap(model).load_state_dict(ck["model"])
        if ema is not None:
            if "model_ema" not in ck:
                raise ValueError(f"{t.resume} was saved without train.model_ema; resume it with train.model_ema=false")
            ema.module.load_state_dict(ck["model_ema"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        start_epoch, step = ck["epoch"] + 1, ck["step"]
        best, best_epoch, history = ck["best_metric"], ck["best_epoch"], ck["history"]
        sampler_gen.set_state(ck["sampler_rng"])
        set_rng_state(ck["rng"])
        logger.info("resumed from %s at epoch %d (step %d)", t.resume, start_epoch, step)

    dense = _unwrap(model).has_dense_head and t.dense_loss_weight > 0
    card = model_card(cfg, labels, data_version, target_fps=float(reader.index.get("target_fps", cfg.model.target_fps)))
    checkpoints: list[Path] = []
    for epoch in range(start_epoch, t.epochs):
        if distributed:
            sampler.set_epoch(epoch)
        model.train()
        t0, seen, loss_sum = time.perf_counter(), 0, 0.0
        optimizer.zero_grad(set_to_none=True)
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{t.epochs}", disable=not is_main, leave=False)
        for i, (x, y, fy) in enumerate(bar):
            x, y = train_tf(x.to(device, non_blocking=True)), y.to(device, non_blocking=True)
            target, mixed = y, False
            if mixup is not None and len(x) % 2 == 0:
                b, c, tt, h, w = x.shape
                x2, target = mixup(x.reshape(b, c * tt, h, w), y)
                x = x2.reshape(b, c, tt, h, w)
                mixed = not torch.allclose(target, _smoothed_one_hot(y, len(labels), t.label_smoothing))
            elif mixup is not None:
                target = nn.functional.one_hot(y, len(labels)).float()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits, steps = model(x, dense=True) if dense else (model(x), None)
            loss = criterion(logits.float(), target)
            if steps is not None and not mixed:  # per-frame targets; a mixed batch has none
                st = step_targets(fy.to(device, non_blocking=True), len(labels), _unwrap(model).tubelet_size)
                loss = loss + t.dense_loss_weight * _soft_ce(steps.float(), st, t.label_smoothing)
            elif steps is not None:  # keeps the dense head in the graph (DDP expects every parameter used)
                loss = loss + 0.0 * steps.float().sum()
            loss = loss / t.accum_steps
            loss.backward()
            if (i + 1) % t.accum_steps == 0 or i + 1 == len(train_loader):
                if t.clip_grad > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), t.clip_grad)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                scheduler.step_update(step)
                if ema is not None:
                    ema.update(_unwrap(model), step)
            seen += len(x)
            loss_sum += float(loss.detach()) * t.accum_steps * len(x)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
        elapsed = time.perf_counter() - t0
        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(seen, 1),
            "lr": float(optimizer.param_groups[0]["lr"]),
            "clips_per_s": seen * world / max(elapsed, 1e-9),
        }
        judged = ema.module if ema is not None else _unwrap(model)  # the weights that are validated and saved
        row.update(validate(judged, val_loader, labels, device, amp, val_tf) if len(val_ds) else {})
        # the best epoch by the head inference uses: per-time-step macro-F1 with a dense head
        metric = row.get("val_step_macro_f1", row.get("val_macro_f1", -row["train_loss"]))
        history.append(row)
        if is_main:
            logger.info("epoch %d: %s", epoch + 1, {k: round(v, 4) for k, v in row.items()})
            if metric > best:
                best, best_epoch = metric, epoch + 1
                save_model(judged, out / "best", {**card, "epoch": epoch + 1, "val_macro_f1": row.get("val_macro_f1")})
            if (epoch + 1) % t.save_ckpt_freq == 0 or epoch + 1 == t.epochs:
                checkpoints.append(save_checkpoint(
                    ckpt_dir / f"checkpoint-epoch{epoch + 1:04d}.pt",
                    model=_unwrap(model).state_dict(), optimizer=optimizer.state_dict(),
                    **({"model_ema": ema.module.state_dict()} if ema is not None else {}),
                    scheduler=scheduler.state_dict(), epoch=epoch, step=step, best_metric=best,
                    best_epoch=best_epoch, history=history, config=cfg.to_dict(), rng=rng_state(),
                    sampler_rng=sampler_gen.get_state(), labels=list(labels),
                ))
            if callback is not None:
                callback(epoch + 1, row)
    if is_main:
        save_model(ema.module if ema is not None else _unwrap(model), out / "last", {**card, "epoch": t.epochs})
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return TrainResult(out / "best", out / "last", best, best_epoch, history, checkpoints)
