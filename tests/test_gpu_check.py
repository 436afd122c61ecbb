"""benchmarks/gpu_check.py: imports, counts ViT-S FLOPs from the architecture, knows its GPU peaks,
and without CUDA stops with a clear message and a non-zero exit code (the measurement itself needs
an H100/H200: `make gpu-check`)."""

import os
import subprocess
import sys

import pytest
from benchscripts import BENCHMARKS, load

SCRIPT = BENCHMARKS / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    return load("gpu_check")


def test_flops_and_peaks(gpu_check):
    from torch.utils.flop_counter import FlopCounterMode

    import torch
    from mvd.model import create_model

    # the analytic count agrees with torch's counter on a small clip (norms/softmax/GELU left out)
    model = create_model("vit_small", num_classes=3, num_frames=4, img_size=64).eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(torch.randn(1, 3, 4, 64, 64))
    assert gpu_check.forward_flops_per_clip(num_frames=4, img_size=64) == pytest.approx(fc.get_total_flops(), rel=0.02)
    # ViT-S 16×224²: about 114 GFLOPs forward (the 57 "GFLOPs" papers quote count multiply-adds)
    assert 105e9 < gpu_check.forward_flops_per_clip() < 120e9
    assert gpu_check.peak_bf16("NVIDIA H100 80GB HBM3") == (989.4e12, "table: H100")
    assert gpu_check.peak_bf16("NVIDIA H100 PCIe")[0] == 756e12
    assert gpu_check.peak_bf16("NVIDIA H200")[0] == 989.4e12
    assert gpu_check.peak_bf16("NVIDIA H200 NVL")[0] == 835e12
    assert gpu_check.peak_bf16("Tesla T4")[0] is None


def test_without_cuda_exits_nonzero_with_a_clear_message():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    assert "needs a CUDA GPU" in proc.stderr and "make gpu-check" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
