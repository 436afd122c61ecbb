"""GPU check on one H100/H200: training throughput and MFU, and the sliding-window benchmark of a
full-length video against decoding alone. Prints one JSON line; `make gpu-check` runs it.

  train   ViT-S (MVD fine-tune architecture), 16 frames × 224², bf16 autocast, AdamW, batch --batch:
          clips/s of whole training steps (forward, backward, optimizer step), median of --runs runs
  mfu     model FLOPs per clip × clips/s ÷ the GPU's dense bf16 peak. Model FLOPs come from the
          architecture (below), counted as 3 × forward (forward + backward); the peak is looked up
          by device name in PEAK_BF16 (NVIDIA data sheets, dense, no sparsity) or given with
          --peak-tflops; for a GPU not in the table MFU is null
  video   a generated 10-minute 640×480 30 fps H.264 video (18,000 frames): wall time of
          mvd.infer.predict_video with ViT-S (16 × 224², sampling 2, stride 16, batch 16, bf16;
          goal ≤ 10 s) next to decoding alone (PyAV with the same threading as mvd.video) and
          decoding plus RGB conversion (mvd.video.iter_frames)
  dense   the same video through the dense (per-frame) head: wall time and dense_vs_clip = clip-head
          time ÷ dense-head time (goal ≥ 0.9, a throughput drop of at most 10%)

Forward FLOPs of one clip (multiply-add = 2 FLOPs), N tokens = (T / 2) × (S / 16)², width D, depth L:
  patch embedding 2·N·(3·2·16·16)·D; per block: qkv 6·N·D², attention 4·N²·D, projection 2·N·D²,
  MLP 16·N·D²; head 2·D·C. Norms, softmax and GELU are left out (well under 1%).

Without a CUDA device it exits with code 2 and says so. Weights are random: speed does not
depend on them.

    python benchmarks/gpu_check.py [--batch 32] [--runs 3] [--peak-tflops 989] [--keep-video PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

# dense bf16 tensor-core peaks (FLOP/s, NVIDIA data sheets, without sparsity) by device-name
# substring, most specific first: "NVIDIA H100 80GB HBM3" is the SXM part
PEAK_BF16: list[tuple[str, float]] = [
    ("H200 NVL", 835e12),
    ("H200", 989.4e12),
    ("H100 NVL", 835e12),
    ("H100 PCIe", 756e12),
    ("H100", 989.4e12),
]

ARCH = {"embed_dim": 384, "depth": 12, "num_heads": 6, "patch": 16, "tubelet": 2, "mlp_ratio": 4}
VIDEO = {"seconds": 600, "fps": 30, "width": 640, "height": 480}
GOAL_VIDEO_S = 10.0


def peak_bf16(name: str) -> tuple[float | None, str]:
    """The dense bf16 peak for a device name and where it came from."""
    for key, peak in PEAK_BF16:
        if key in name:
            return peak, f"table: {key}"
    return None, "unknown device: pass --peak-tflops"


def forward_flops_per_clip(num_frames: int = 16, img_size: int = 224, num_classes: int = 3,
                           embed_dim: int = ARCH["embed_dim"], depth: int = ARCH["depth"]) -> float:
    d = embed_dim
    n = (num_frames // ARCH["tubelet"]) * (img_size // ARCH["patch"]) ** 2
    patch = 2 * n * (3 * ARCH["tubelet"] * ARCH["patch"] ** 2) * d
    block = 6 * n * d * d + 4 * n * n * d + 2 * n * d * d + 4 * ARCH["mlp_ratio"] * n * d * d
    return float(patch + depth * block + 2 * d * num_classes)


def train_clips_per_s(batch: int, runs: int, steps: int = 20) -> float:
    from mvd.model import create_model

    dev = torch.device("cuda")
    model = create_model("vit_small", num_classes=3, num_frames=16, img_size=224).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.001)
    x = torch.randn(batch, 3, 16, 224, 224, device=dev)
    y = torch.randint(0, 3, (batch,), device=dev)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        rates.append(steps * batch / (time.perf_counter() - t0))
    del model, opt, x, y
    torch.cuda.empty_cache()
    return statistics.median(rates)


def write_video(path: Path) -> int:
    """A 640×480 30 fps H.264 video: a textured floor and a moving, bobbing blob (yuv420p written
    directly, so making it costs little more than encoding)."""
    import av

    w, h, fps = VIDEO["width"], VIDEO["height"], VIDEO["fps"]
    n = VIDEO["seconds"] * fps
    rng = np.random.default_rng(0)
    floor = (96 + 24 * rng.standard_normal((h, w))).clip(0, 255).astype(np.uint8)
    chroma = np.full((h // 2, w), 128, np.uint8)  # U and V planes stacked: (h/4 + h/4) rows of w
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=Fraction(fps))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "g": "250", "crf": "23"}
        for i in range(n):
            y = floor.copy()
            cx = int(w / 2 + 200 * np.sin(i / 90))
            cy = int(h / 2 + 150 * np.cos(i / 70))
            r = 30 + int(6 * np.sin(i / 5))
            y[max(0, cy - r):cy + r, max(0, cx - r):cx + r] = 230
            frame = av.VideoFrame.from_ndarray(np.concatenate([y, chroma]), format="yuv420p")
            for pkt in s.encode(frame):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    return n


def decode_s(path: Path) -> tuple[float, int]:
    """Pure decoding with PyAV, threaded as mvd.video decodes."""
    import av

    t0 = time.perf_counter()
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        st.thread_type = "AUTO"
        n = sum(1 for _ in c.decode(st))
    return time.perf_counter() - t0, n


def decode_rgb_s(path: Path) -> float:
    from mvd.video import iter_frames

    t0 = time.perf_counter()
    for _ in iter_frames(path):
        pass
    return time.perf_counter() - t0


def video_benchmark_s(path: Path, frames: int, head: str = "clip") -> float:
    from mvd.infer import predict_video
    from mvd.model import create_model

    dev = torch.device("cuda")
    model = create_model("vit_small", num_classes=3, num_frames=16, img_size=224,
                         dense_head=head == "dense").to(dev).eval()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):  # kernels chosen before timing
        model(torch.randn(16, 3, 16, 224, 224, device=dev))
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    probs = predict_video(model, path, None, frames=frames, num_frames=16, sampling_rate=2, input_size=224,
                          num_classes=3, stride=16, batch_size=16, device=dev, amp=True, head=head)
    torch.cuda.synchronize()
    took = time.perf_counter() - t0
    assert probs.shape == (frames, 3), probs.shape
    return took


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=32, help="training clips per step (default 32)")
    ap.add_argument("--runs", type=int, default=3, help="timed training runs of 20 steps; the median counts")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="dense bf16 peak of this GPU, overriding the table")
    ap.add_argument("--keep-video", default="", help="write the generated video here (default: a temp dir)")
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print(f"gpu_check: needs a CUDA GPU (one H100 or H200) and torch {torch.__version__} "
              f"(CUDA build {torch.version.cuda or 'none'}) finds none here: nothing was measured. "
              "Run `make gpu-check` on a GPU machine.", file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    name = torch.cuda.get_device_name(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    if a.peak_tflops:
        peak, source = a.peak_tflops * 1e12, "--peak-tflops"
    else:
        peak, source = peak_bf16(name)
    fwd = forward_flops_per_clip()
    cps = train_clips_per_s(a.batch, a.runs)
    mfu = cps * 3 * fwd / peak if peak else None

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(a.keep_video) if a.keep_video else Path(tmp) / "ten_minutes_640x480_30fps.mp4"
        t0 = time.perf_counter()
        frames = write_video(path)
        make_s = time.perf_counter() - t0
        dec_s, decoded = decode_s(path)
        rgb_s = decode_rgb_s(path)
        bench_s = video_benchmark_s(path, decoded)
        dense_s = video_benchmark_s(path, decoded, head="dense")
    out = {
        "gpu": name,
        "train_vit_small_16x224_bf16_clips_per_s": round(cps, 1),
        "train_batch": a.batch,
        "model_gflops_per_clip_train": round(3 * fwd / 1e9, 1),
        "peak_bf16_tflops": round(peak / 1e12, 1) if peak else None,
        "peak_source": source,
        "mfu": round(mfu, 3) if mfu is not None else None,
        "video": f"{VIDEO['seconds'] // 60} min {VIDEO['width']}x{VIDEO['height']} {VIDEO['fps']} fps, {decoded} frames",
        "video_benchmark_s": round(bench_s, 2),
        "video_goal_s": GOAL_VIDEO_S,
        "video_goal_met": bench_s <= GOAL_VIDEO_S,
        "video_benchmark_dense_s": round(dense_s, 2),
        "dense_vs_clip": round(bench_s / dense_s, 3),
        "decode_only_s": round(dec_s, 2),
        "decode_rgb_s": round(rgb_s, 2),
        "video_make_s": round(make_s, 1),
        "frames_written": frames,
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
