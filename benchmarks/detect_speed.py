"""Throughput of the background detector against decoding.

Measures, each as the median of ``--runs`` interleaved runs over the whole video:
  decode             sequential decode to RGB (mvd.video.iter_frames)
  decode+detect      the same decode streamed into BackgroundDetector.detect
  decode+detect+crop the above, then per 16-frame window: union box -> square/pad crop ->
                     resize to 224 (decoded frames are kept for the crop)
  detect             the detector alone on frames decoded beforehand

The goal is decode+detect >= 0.5 x decode (median of per-run ratios; also given in CPU time
of this process, which other load on the machine does not change). The last printed line is
one JSON object.

    python benchmarks/detect_speed.py [--video PATH] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from mvd.crop import crop_for_frames, crop_resize
from mvd.detect import BackgroundDetector
from mvd.video import iter_frames, probe

DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared/data/real/openfield_dlc_m3v1.mp4"


def _decode(path: Path) -> int:
    n = 0
    for _ in iter_frames(path):
        n += 1
    return n


def _decode_detect(path: Path, num_frames: int) -> int:
    boxes = BackgroundDetector().detect((f for _, f in iter_frames(path)), num_frames=num_frames)
    return len(boxes)


def _decode_detect_crop(path: Path, num_frames: int, window: int, size: int, pad: float) -> int:
    frames: list[np.ndarray] = []

    def tee():
        for _, f in iter_frames(path):
            frames.append(f)
            yield f

    boxes = BackgroundDetector().detect(tee(), num_frames=num_frames)
    h, w = frames[0].shape[:2]
    for start in range(0, len(frames) - window + 1, window):
        idx = range(start, start + window)
        crop = crop_for_frames(boxes, idx, w, h, pad)
        crop_resize(np.stack(frames[start:start + window]), crop, size)
    return len(boxes)


def _fps(fn) -> tuple[float, float]:
    """(frames per wall second, frames per CPU second of this process, all threads)."""
    t0, c0 = time.perf_counter(), time.process_time()
    n = fn()
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--pad", type=float, default=0.05)
    args = ap.parse_args()

    info = probe(args.video)
    print(f"{args.video.name}: {info.width}x{info.height} {info.pix_fmt}, {info.num_frames} frames")
    modes = {
        "decode": lambda: _decode(args.video),
        "decode+detect": lambda: _decode_detect(args.video, info.num_frames),
        "decode+detect+crop": lambda: _decode_detect_crop(args.video, info.num_frames, args.window, args.size,
                                                          args.pad),
    }
    wall: dict[str, list[float]] = {k: [] for k in modes}
    cpu: dict[str, list[float]] = {k: [] for k in modes}
    for r in range(args.runs):  # interleaved, so a change in machine load hits every mode alike
        for name, fn in modes.items():
            w, c = _fps(fn)
            wall[name].append(w)
            cpu[name].append(c)
        print(f"run {r + 1} fps (wall/cpu): " + ", ".join(f"{k} {wall[k][-1]:.0f}/{cpu[k][-1]:.0f}" for k in modes))
    dec, dd, ddc = (statistics.median(wall[k]) for k in modes)
    # per-run ratios cancel load changes between runs; CPU-time ratios also cancel other processes
    ratio = statistics.median(b / a for a, b in zip(wall["decode"], wall["decode+detect"]))
    ratio_crop = statistics.median(b / a for a, b in zip(wall["decode"], wall["decode+detect+crop"]))
    ratio_cpu = statistics.median(b / a for a, b in zip(cpu["decode"], cpu["decode+detect"]))
    frames = [f for _, f in iter_frames(args.video)]
    det = statistics.median(_fps(lambda: len(BackgroundDetector().detect(frames)))[0] for _ in range(args.runs))
    del frames
    print(f"decode              {dec:7.1f} fps")
    print(f"decode+detect       {dd:7.1f} fps")
    print(f"decode+detect+crop  {ddc:7.1f} fps")
    print(f"detect only         {det:7.1f} fps (frames decoded beforehand)")
    print(f"ratio (decode+detect) / decode = {ratio:.3f} wall, {ratio_cpu:.3f} cpu  (goal >= 0.5); "
          f"with crop {ratio_crop:.3f}")
    print(json.dumps({
        "video": args.video.name, "frames": info.num_frames, "runs": args.runs,
        "decode_fps": round(dec, 1), "decode_detect_fps": round(dd, 1),
        "decode_detect_crop_fps": round(ddc, 1), "detect_only_fps": round(det, 1),
        "ratio": round(ratio, 3), "ratio_cpu": round(ratio_cpu, 3), "ratio_with_crop": round(ratio_crop, 3),
        "goal_met": ratio >= 0.5,
    }))


if __name__ == "__main__":
    main()
