"""Throughput of the background detector against decoding.

Measures, each as the median of ``--runs`` runs over the whole video:
  decode             sequential decode to RGB (mvd.video.iter_frames)
  decode+detect      the same decode streamed into BackgroundDetector.detect
  decode+detect+crop the above, then per 16-frame window: union box -> square/pad crop ->
                     resize to 224 (decoded frames are kept for the crop)
  detect             the detector alone on frames decoded beforehand

The goal is decode+detect >= 0.5 x decode. The last printed line is one JSON object.

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


def _median_fps(fn, runs: int) -> tuple[float, list[float]]:
    fps = []
    for _ in range(runs):
        t0 = time.perf_counter()
        n = fn()
        fps.append(n / (time.perf_counter() - t0))
    return statistics.median(fps), fps


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
    dec, dec_all = _median_fps(lambda: _decode(args.video), args.runs)
    print(f"decode              {dec:7.1f} fps  {[round(x, 1) for x in dec_all]}")
    dd, dd_all = _median_fps(lambda: _decode_detect(args.video, info.num_frames), args.runs)
    print(f"decode+detect       {dd:7.1f} fps  {[round(x, 1) for x in dd_all]}")
    ddc, ddc_all = _median_fps(
        lambda: _decode_detect_crop(args.video, info.num_frames, args.window, args.size, args.pad), args.runs)
    print(f"decode+detect+crop  {ddc:7.1f} fps  {[round(x, 1) for x in ddc_all]}")
    frames = [f for _, f in iter_frames(args.video)]
    det, det_all = _median_fps(lambda: len(BackgroundDetector().detect(frames)), args.runs)
    del frames
    print(f"detect only         {det:7.1f} fps  {[round(x, 1) for x in det_all]}")
    ratio = dd / dec
    print(f"ratio (decode+detect) / decode = {ratio:.3f}  (goal >= 0.5)")
    print(json.dumps({
        "video": args.video.name, "frames": info.num_frames, "runs": args.runs,
        "decode_fps": round(dec, 1), "decode_detect_fps": round(dd, 1),
        "decode_detect_crop_fps": round(ddc, 1), "detect_only_fps": round(det, 1),
        "ratio": round(ratio, 3), "ratio_with_crop": round(ddc / dec, 3), "goal_met": ratio >= 0.5,
    }))


if __name__ == "__main__":
    main()
