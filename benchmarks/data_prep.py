"""Data-preparation throughput, measured side by side in one run (medians of ``--runs`` runs).

  decode        sequential decode of the whole video to RGB (mvd.video.iter_frames)
  prep          what bbox-crop does per video: decode → background detector → decode again,
                crop every 16-frame window (16 consecutive frames, tiling the video) with the
                union of its boxes (square, pad 10 %, clip) → resize to 224
  loader        the training loader: ClipDataset over clip shards through a DataLoader, handing
                over uint8 batches (the trainer converts and augments them on its device)
  mp4           the seed's way for the same clips: each clip stored as its own H.264 mp4 (the
                cropped frames of its span, as a clip-per-file preprocessing writes them),
                decoded with PyAV in ``__getitem__`` and subsampled to the window's frames,
                through a DataLoader with the same batch size and workers

Printed: detect_vs_decode = prep frames/s ÷ decode frames/s; loader_vs_mp4 = loader clips/s ÷
mp4 clips/s, both loaders delivering the same uint8 clip batches (collation and batching
included); read_vs_mp4 = the same clips read one by one without a DataLoader.

The training augmentation of the default config (RandAugment, random-resized crop, flips,
normalisation, erasing: mvd.transforms.ClipAugment) is measured too, on ``--device``:
augment_clips_per_s on the loader's batches, and with_augment_vs_mp4 = (loader → device →
augment, batch-wise) clips/s ÷ (mp4 decode + the same augmentation per clip inside
``__getitem__``, on the CPU, as the seed's loader does it) clips/s. On a CPU-only machine both
sides spend most of their time in the same augmentation arithmetic, so that ratio is far lower
there than with a GPU doing the augmentation. The last line is one JSON object.

    python benchmarks/data_prep.py [--video PATH] [--runs 3] [--clips 64] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mvd.clips import sliding_windows
from mvd.config import Config
from mvd.dataset import ClipDataset
from mvd.detect import make_detector
from mvd.extract import stream_windows
from mvd.shards import ShardReader, ShardWriter
from mvd.transforms import ClipAugment
from mvd.video import frame_to_rgb, iter_frames, probe

DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "openfield_dlc_m3v1.mp4"


def decode_only(video: Path) -> int:
    n = 0
    for _ in iter_frames(video):
        n += 1
    return n


def prep(video: Path, window: int, size: int, pad: float) -> tuple[int, np.ndarray]:
    """The bbox-crop path over the whole video; returns (frames, boxes)."""
    info = probe(video)
    boxes = make_detector("background").detect_video(video)
    wins = [w.indices for w in sliding_windows(len(boxes), window, 1, window)]
    for _ in stream_windows(str(video), wins, boxes, width=info.width, height=info.height, size=size, pad=pad):
        pass
    return len(boxes), boxes


def _write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
    stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    stream.options = {"crf": "18", "preset": "veryfast"}
    for t, f in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(cv2.cvtColor(f, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
        vf.pts = t
        container.mux(stream.encode(vf))
    container.mux(stream.encode(None))
    container.close()


class Mp4ClipDataset(Dataset):
    """Each clip decoded from its own mp4 in ``__getitem__`` (the naive way); ``transform``
    (uint8 ``(T, H, W, 3)`` → anything) runs there too when given."""

    def __init__(self, files: list[Path], offsets: list[np.ndarray], labels: list[int], transform=None):
        self.files, self.offsets, self.labels, self.transform = files, offsets, labels, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int]:
        want = self.offsets[k]
        frames = {}
        with av.open(str(self.files[k])) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i in want:
                    frames[i] = frame_to_rgb(f)
                if i >= want[-1]:
                    break
        clip = torch.from_numpy(np.stack([frames[int(i)] for i in want]))
        return (clip if self.transform is None else self.transform(clip)), self.labels[k]


def build_clips(video: Path, boxes: np.ndarray, work: Path, n_clips: int,
                cfg: Config) -> tuple[ShardReader, list[Path], list[np.ndarray]]:
    """The same windows as a shard directory and as one mp4 per clip (shard clip i = mp4 i)."""
    m = cfg.model
    info = probe(video)
    span = m.num_frames * m.sampling_rate
    starts = np.unique(np.linspace(0, len(boxes) - span, n_clips).round().astype(int))
    spans = [np.arange(s, s + span) for s in starts]  # every frame of the span goes into the clip's mp4
    (work / "mp4").mkdir(parents=True)
    files = [work / "mp4" / f"clip_{k:04d}.mp4" for k in range(len(starts))]
    writer = ShardWriter(work / "shards", m.input_size)
    crops: dict[int, np.ndarray] = {}
    for k, frames, _ in stream_windows(str(video), spans, boxes, width=info.width, height=info.height,
                                       size=m.input_size, pad=cfg.data.pad_train):
        _write_mp4(files[k], frames, info.fps)
        crops[k] = np.ascontiguousarray(frames[::m.sampling_rate])
    for k in range(len(starts)):
        writer.add(crops.pop(k), label=k % 3, start=int(starts[k]))
    writer.close()
    offsets = [np.arange(0, span, m.sampling_rate)] * len(starts)
    return ShardReader(work / "shards"), files, offsets


def time_reads(ds: Dataset) -> float:
    """Clips per second reading every clip as a uint8 array (no transform, no DataLoader)."""
    t0 = time.perf_counter()
    for k in range(len(ds)):
        ds[k]
    return len(ds) / (time.perf_counter() - t0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_loader(loader: DataLoader, device: torch.device | None = None, augment=None) -> float:
    """Clips per second for one pass over ``loader``; batches moved to ``device`` and augmented there when given."""
    n = 0
    t0 = time.perf_counter()
    for x, *_ in loader:
        if device is not None:
            x = x.to(device, non_blocking=True)
        if augment is not None:
            x = augment(x)
        n += x.shape[0]
    if device is not None:
        _sync(device)
    return n / (time.perf_counter() - t0)


def time_augment(batches: list[torch.Tensor], augment: ClipAugment, device: torch.device) -> float:
    """Clips per second of ``augment`` alone on batches already on ``device``."""
    _sync(device)
    t0 = time.perf_counter()
    for x in batches:
        augment(x)
    _sync(device)
    return sum(len(x) for x in batches) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clips", type=int, default=64, help="clips for the loader comparison")
    ap.add_argument("--window", type=int, default=16, help="frames per crop window in the prep measurement")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (same for both loaders)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="where the trainer's augmentation runs (default: cuda when present)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg = Config()  # the reference defaults: 16 frames × sampling 2, 224 px, training augmentation
    m, t = cfg.model, cfg.train
    device = torch.device(args.device)

    augment = ClipAugment(m.input_size, True, rrc_scale=tuple(t.rrc_scale), flip=t.flip, rand_augment=t.rand_augment,
                          reprob=t.reprob, color_jitter=t.color_jitter, invert_prob=t.invert_prob)

    def seed_transform(clip: torch.Tensor) -> torch.Tensor:  # the seed augments each clip in __getitem__, on the CPU
        return augment(clip[None])[0]

    info = probe(args.video)
    print(f"video {args.video.name}: {info.width}x{info.height} {info.pix_fmt}, {info.num_frames} frames")

    dec, pre = [], []
    boxes = None
    for r in range(args.runs):
        t0 = time.perf_counter()
        n = decode_only(args.video)
        dec.append(n / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        n2, boxes = prep(args.video, args.window, m.input_size, cfg.data.pad_train)
        pre.append(n2 / (time.perf_counter() - t0))
        print(f"run {r + 1}: decode {dec[-1]:.0f} frames/s, decode+detect+crop {pre[-1]:.0f} frames/s")

    with tempfile.TemporaryDirectory(prefix="data_prep_bench_") as tmp:
        reader, mp4, offsets = build_clips(args.video, boxes, Path(tmp), args.clips, cfg)
        ids = list(range(len(reader)))
        labels = [int(reader.clips[i]["label"]) for i in ids]
        shard_ds = ClipDataset(reader, ids)
        mp4_ds = Mp4ClipDataset(mp4, offsets, labels)
        a, b = shard_ds[0][0], mp4_ds[0][0]
        assert a.shape == b.shape == (m.num_frames, m.input_size, m.input_size, 3), (a.shape, b.shape)
        assert a.dtype == b.dtype == torch.uint8
        shard_bytes = sum(p.stat().st_size for p in (Path(tmp) / "shards").glob("*.u8"))
        mp4_bytes = sum(p.stat().st_size for p in mp4)
        mp4_aug_ds = Mp4ClipDataset(mp4, offsets, labels, seed_transform)
        out = augment(a[None].to(device))
        assert out.shape == (1, 3, m.num_frames, m.input_size, m.input_size) and out.dtype == torch.float32
        same = {"num_workers": args.workers, "pin_memory": device.type == "cuda"}  # the same for every loader
        shard_loader = shard_ds.loader(t.batch_size, **same)
        mp4_loader = DataLoader(mp4_ds, batch_size=t.batch_size, **same)
        mp4_aug_loader = DataLoader(mp4_aug_ds, batch_size=t.batch_size, **same)
        batches = [x.to(device) for x, _ in shard_loader]
        lo, mp, rs, rm, au, la, ma = [], [], [], [], [], [], []
        for r in range(args.runs):
            lo.append(time_loader(shard_loader))
            mp.append(time_loader(mp4_loader))
            rs.append(time_reads(shard_ds))
            rm.append(time_reads(mp4_ds))
            au.append(time_augment(batches, augment, device))
            la.append(time_loader(shard_loader, device, augment))
            ma.append(time_loader(mp4_aug_loader, device))
            print(f"run {r + 1}: uint8 batches: loader {lo[-1]:.0f} clips/s, mp4 per clip {mp[-1]:.1f} clips/s; "
                  f"reads only: shards {rs[-1]:.0f}, mp4 {rm[-1]:.1f} clips/s; augmentation on {device}: "
                  f"{au[-1]:.1f} clips/s; with it: loader {la[-1]:.1f}, mp4 + per-clip augmentation {ma[-1]:.1f} clips/s")

    decode_fps, prep_fps = statistics.median(dec), statistics.median(pre)
    loader_cps, mp4_cps = statistics.median(lo), statistics.median(mp)
    result = {
        "detect_vs_decode": round(prep_fps / decode_fps, 3),
        "loader_vs_mp4": round(loader_cps / mp4_cps, 3),
        "decode_fps": round(decode_fps, 1), "prep_fps": round(prep_fps, 1),
        "loader_clips_per_s": round(loader_cps, 2), "mp4_clips_per_s": round(mp4_cps, 2),
        "read_vs_mp4": round(statistics.median(rs) / statistics.median(rm), 1),
        "read_shard_clips_per_s": round(statistics.median(rs), 1),
        "read_mp4_clips_per_s": round(statistics.median(rm), 1),
        "clips": len(ids), "clip_frames": m.num_frames, "sampling_rate": m.sampling_rate, "size": m.input_size,
        "augment_clips_per_s": round(statistics.median(au), 1),
        "with_augment_vs_mp4": round(statistics.median(la) / statistics.median(ma), 3),
        "loader_augment_clips_per_s": round(statistics.median(la), 1),
        "mp4_augment_clips_per_s": round(statistics.median(ma), 1),
        "device": str(device), "rand_augment": t.rand_augment, "workers": args.workers, "batch": t.batch_size,
        "shard_mb": round(shard_bytes / 2**20, 1), "mp4_mb": round(mp4_bytes / 2**20, 1),
        "video": args.video.name, "frames": info.num_frames, "runs": args.runs, "window": args.window,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
