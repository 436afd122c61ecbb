"""Sliding-window benchmark speed, measured side by side on one video in one run.

  ours      mvd.infer.predict_video: one sequential decode, windows cropped as they complete,
            batched through the model
  naive     per window: seek to the window, decode its frames, crop, run the model alone
            (what a per-window ``__getitem__`` over the video does)
  decode    sequential decode only

  dense     ours with the dense (per-frame) head: the same windows, per-time-step output
            stitched to frames
  inline    ours with the windows converted and cropped in the decoding thread (crop_workers=0)
            instead of one thread per usable core
  views     dense with each window's softmax averaged over ``--views`` flips of its crop
            (tta_views; the cpu profile's benchmark.tta_views is 4)
  contrast  dense with each clip divided by its own standard deviation (model.normalize_contrast, on
            in the cpu profile)
  weighted  dense with each window weighed by a Gaussian of a frame's distance from its centre
            (benchmark.stitch_sigma 0.125, the default) instead of alike
  track     ours with a crop per frame that follows the animal (crop_mode=track, the cpu profile's
            rule) instead of one crop per window

Printed: p1_vs_naive = ours windows/s ÷ naive windows/s, p2_vs_decode = ours frames/s ÷
decode frames/s (goal ≥ 5 and ≥ 0.5 with the tiny CPU model), dense_vs_clip = dense windows/s ÷
ours (clip head) windows/s (goal ≥ 0.9), threads_vs_inline = ours windows/s ÷ inline windows/s,
views_vs_1 = views windows/s ÷ dense windows/s (what the test-time views cost), contrast_vs_dense =
contrast windows/s ÷ dense windows/s (goal ≥ 0.9), weighted_vs_dense = weighted windows/s ÷ dense
windows/s (goal ≥ 0.9), track_vs_union =
track windows/s ÷ ours windows/s (what following the animal costs). Medians of ``--runs`` runs.
The naive method is timed on the first ``--naive-windows`` windows (it is slow).
Last line: one JSON object.

    python benchmarks/sliding_window.py [--video PATH] [--runs 3] [--arch vit_tiny] [--views 4]
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import av
import numpy as np
import torch

from mvd.clips import sliding_windows
from mvd.crop import crop_for_frames, crop_resize
from mvd.detect import make_detector
from mvd.infer import predict_video
from mvd.model import create_model
from mvd.transforms import to_model_input
from mvd.video import frame_to_rgb, iter_frames, probe

DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "openfield_dlc_m3v1.mp4"


def naive_windows(video: str, windows, boxes, model, size: int, pad: float) -> float:
    """Seconds for the given windows, each decoded separately after a seek."""
    info = probe(video)
    t0 = time.perf_counter()
    with av.open(video) as c:
        s = c.streams.video[0]
        tb, fps = float(s.time_base), float(s.average_rate)
        start_pts = s.start_time or 0
        for w in windows:
            # seek to the keyframe at or before the window's first frame, then decode forward
            c.seek(start_pts + int(int(w.indices[0]) / fps / tb), stream=s, backward=True)
            want, got = set(int(i) for i in w.indices), {}
            for frame in c.decode(s):
                idx = int(round((frame.pts - start_pts) * tb * fps))
                if idx in want:
                    got[idx] = frame_to_rgb(frame)
                if idx >= max(want):
                    break
            frames = np.stack([got[int(i)] for i in w.indices])
            crop = crop_for_frames(boxes, w.indices, info.width, info.height, pad)
            x = to_model_input(torch.from_numpy(crop_resize(frames, crop, size))[None])
            with torch.no_grad():
                model(x)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", default=str(DEFAULT_VIDEO))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--arch", default="vit_tiny")
    ap.add_argument("--num-frames", type=int, default=8)
    ap.add_argument("--sampling-rate", type=int, default=1)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--naive-windows", type=int, default=40)
    ap.add_argument("--views", type=int, default=4, choices=[2, 4, 8])
    a = ap.parse_args()
    torch.set_num_threads(2)
    info = probe(a.video)
    model = create_model(a.arch, num_classes=3, num_frames=a.num_frames, img_size=a.size).eval()
    dense_model = create_model(a.arch, num_classes=3, num_frames=a.num_frames, img_size=a.size, dense_head=True).eval()
    contrast_model = create_model(a.arch, num_classes=3, num_frames=a.num_frames, img_size=a.size, dense_head=True,
                                  normalize_contrast=True).eval()
    contrast_model.load_state_dict(dense_model.state_dict())
    boxes = make_detector("background").detect_video(a.video)
    span = a.num_frames * a.sampling_rate
    windows = sliding_windows(info.num_frames, a.num_frames, a.sampling_rate, max(1, span // 2))
    step = max(1, len(windows) // a.naive_windows)
    sample = windows[::step][: a.naive_windows]
    ours, naive, decode, dense, inline, views, track, contrast, weighted = [], [], [], [], [], [], [], [], []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        n = sum(1 for _ in iter_frames(a.video))
        decode.append(n / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        predict_video(model, a.video, boxes, num_frames=a.num_frames, sampling_rate=a.sampling_rate,
                      input_size=a.size, num_classes=3, batch_size=64)
        dt = time.perf_counter() - t0
        ours.append((len(windows) / dt, info.num_frames / dt))
        t0 = time.perf_counter()
        predict_video(dense_model, a.video, boxes, num_frames=a.num_frames, sampling_rate=a.sampling_rate,
                      input_size=a.size, num_classes=3, batch_size=64, head="dense")
        dense.append(len(windows) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        predict_video(contrast_model, a.video, boxes, num_frames=a.num_frames, sampling_rate=a.sampling_rate,
                      input_size=a.size, num_classes=3, batch_size=64, head="dense")
        contrast.append(len(windows) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        predict_video(dense_model, a.video, boxes, num_frames=a.num_frames, sampling_rate=a.sampling_rate,
                      input_size=a.size, num_classes=3, batch_size=64, head="dense", stitch_sigma=0.125)
        weighted.append(len(windows) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        predict_video(dense_model, a.video, boxes, num_frames=a.num_frames, sampling_rate=a.sampling_rate,
                      input_size=a.size, num_classes=3, batch_size=64, head="dense", tta_views=a.views)
        views.append(len(windows) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        predict_video(model, a.video, boxes, num_frames=a.num_frames, sampling_rate=a.sampling_rate,
                      input_size=a.size, num_classes=3, batch_size=64, crop_workers=0)
        inline.append(len(windows) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        predict_video(model, a.video, boxes, num_frames=a.num_frames, sampling_rate=a.sampling_rate,
                      input_size=a.size, num_classes=3, batch_size=64, crop_mode="track")
        track.append(len(windows) / (time.perf_counter() - t0))
        naive.append(len(sample) / naive_windows(a.video, sample, boxes, model, a.size, 0.05))
    ours_wps = statistics.median(o[0] for o in ours)
    ours_fps = statistics.median(o[1] for o in ours)
    res = {
        "video": Path(a.video).name, "frames": info.num_frames, "windows": len(windows), "arch": a.arch,
        "input": [a.num_frames, a.sampling_rate, a.size],
        "ours_windows_per_s": round(ours_wps, 1), "naive_windows_per_s": round(statistics.median(naive), 1),
        "ours_frames_per_s": round(ours_fps, 1), "decode_frames_per_s": round(statistics.median(decode), 1),
        "p1_vs_naive": round(ours_wps / statistics.median(naive), 2),
        "p2_vs_decode": round(ours_fps / statistics.median(decode), 2),
        "dense_windows_per_s": round(statistics.median(dense), 1),
        "dense_vs_clip": round(statistics.median(d / o[0] for d, o in zip(dense, ours)), 3),
        "inline_windows_per_s": round(statistics.median(inline), 1),
        "threads_vs_inline": round(statistics.median(o[0] / i for i, o in zip(inline, ours)), 2),
        "views": a.views, "views_windows_per_s": round(statistics.median(views), 1),
        "views_vs_1": round(statistics.median(v / d for v, d in zip(views, dense)), 3),
        "contrast_windows_per_s": round(statistics.median(contrast), 1),
        "contrast_vs_dense": round(statistics.median(c / d for c, d in zip(contrast, dense)), 3),
        "weighted_windows_per_s": round(statistics.median(weighted), 1),
        "weighted_vs_dense": round(statistics.median(w / d for w, d in zip(weighted, dense)), 3),
        "track_windows_per_s": round(statistics.median(track), 1),
        "track_vs_union": round(statistics.median(t / o[0] for t, o in zip(track, ours)), 3),
    }
    print(f"ours {res['ours_windows_per_s']} windows/s ({res['ours_frames_per_s']} frames/s); naive "
          f"{res['naive_windows_per_s']} windows/s; decode {res['decode_frames_per_s']} frames/s")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
