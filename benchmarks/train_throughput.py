"""Training throughput of the MVD ViT: clips/s of full training steps (forward, backward,
AdamW step) on synthetic clips, and on a GPU the bf16 model-FLOPs utilisation.

  cpu profile   vit_tiny, 8 × 32² (what `make demo` trains without CUDA), fp32
  gpu           vit_small, 16 × 224², bf16 autocast, batch --gpu-batch (only where CUDA exists)

MFU = achieved model FLOP/s ÷ the GPU's bf16 dense peak (H100 SXM 989 TFLOP/s, H200 989, A100
312; override with --peak-tflops). Model FLOPs per clip = 3 × forward FLOPs (forward + backward),
forward FLOPs counted with torch.utils.flop_counter. Medians of --runs timed runs after warm-up.
Last line: one JSON object.

    python benchmarks/train_throughput.py [--runs 3] [--gpu-batch 32]
"""

import argparse
import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from mvd.model import create_model

PEAKS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    return float(fc.get_total_flops())


def clips_per_s(model, x, y, steps: int, amp: bool) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    dev = x.device

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return steps * len(x) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cpu-batch", type=int, default=16)
    ap.add_argument("--gpu-batch", type=int, default=32)
    ap.add_argument("--peak-tflops", type=float, default=0.0)
    a = ap.parse_args()
    res: dict = {}
    m = create_model("vit_tiny", num_classes=3, num_frames=8, img_size=32).train()
    x = torch.randn(a.cpu_batch, 3, 8, 32, 32)
    y = torch.randint(0, 3, (a.cpu_batch,))
    cpu = [clips_per_s(m, x, y, 10, False) for _ in range(a.runs)]
    res["cpu_tiny_8x32_clips_per_s"] = round(statistics.median(cpu), 1)
    print(f"cpu vit_tiny 8×32²: {res['cpu_tiny_8x32_clips_per_s']} clips/s (median of {a.runs})")
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        name = torch.cuda.get_device_name(0)
        peak = a.peak_tflops * 1e12 or next((v for k, v in PEAKS.items() if k in name), 0.0)
        torch.backends.cuda.matmul.allow_tf32 = True
        m = create_model("vit_small", num_classes=3, num_frames=16, img_size=224).to(dev).train()
        x = torch.randn(a.gpu_batch, 3, 16, 224, 224, device=dev)
        y = torch.randint(0, 3, (a.gpu_batch,), device=dev)
        flops_clip = 3 * forward_flops(m, x[:1])
        gpu = [clips_per_s(m, x, y, 20, True) for _ in range(a.runs)]
        cps = statistics.median(gpu)
        res.update({"gpu": name, "gpu_vit_small_16x224_bf16_clips_per_s": round(cps, 1),
                    "model_tflops_per_clip": round(flops_clip / 1e12, 4),
                    "mfu": round(cps * flops_clip / peak, 3) if peak else None})
        print(f"{name} vit_small 16×224² bf16 batch {a.gpu_batch}: {cps:.1f} clips/s, MFU {res['mfu']}")
    else:
        res["gpu"] = None
        print("no CUDA device: GPU clips/s and MFU not measured")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
