"""Background-model mouse detector, detector registry, boxes CSV and contact sheets.

Every test video is drawn here: an ellipse "mouse" on a flat floor, with pixel noise and a
global brightness flicker, encoded with libx264 so compression artefacts are part of it.
"""

from __future__ import annotations

import math
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from mvd import detect
from mvd.contact_sheet import boxes_for_videos, contact_sheet, read_boxes_csv, write_boxes_csv
from mvd.detect import BackgroundDetector, available_detectors, detect_video, make_detector, register_detector

W, H, N = 160, 120, 80
AX, AY = 14, 8  # ellipse semi-axes (px)


def _ellipse_bbox(cx: float, cy: float, angle_deg: float) -> tuple[float, float, float, float]:
    t = math.radians(angle_deg)
    hx = math.sqrt((AX * math.cos(t)) ** 2 + (AY * math.sin(t)) ** 2)
    hy = math.sqrt((AX * math.sin(t)) ** 2 + (AY * math.cos(t)) ** 2)
    return cx - hx, cy - hy, cx + hx, cy + hy


def _path(kind: str) -> list[tuple[float, float, float]]:
    """(cx, cy, angle) per frame."""
    out = []
    for i in range(N):
        if kind == "moving":
            s = i / (N - 1)
            out.append((30 + 100 * s, 60 + 30 * math.sin(2 * math.pi * s), 40 * math.sin(3 * math.pi * s)))
        elif kind == "resting":  # still for frames 0..59 (75 %), then walks away
            s = max(0, i - 59) / 20
            out.append((40 + 80 * s, 40 + 40 * s, 10.0))
        else:
            raise ValueError(kind)
    return out


def _render(floor_rgb, mouse_rgb, kind: str | None, *, seed: int = 0, noise: float = 6.0, flicker: float = 0.08):
    """Frames (N, H, W, 3) uint8 and truth boxes (N, 4) (NaN when there is no mouse)."""
    rng = np.random.default_rng(seed)
    frames = np.empty((N, H, W, 3), np.uint8)
    truth = np.full((N, 4), np.nan)
    path = _path(kind) if kind else None
    for i in range(N):
        img = np.empty((H, W, 3), np.float32)
        img[:] = floor_rgb
        if path:
            cx, cy, ang = path[i]
            layer = np.zeros((H, W), np.uint8)
            cv2.ellipse(layer, (round(cx * 16), round(cy * 16)), (AX * 16, AY * 16), ang, 0, 360, 255, -1,
                        cv2.LINE_AA, shift=4)
            a = (layer.astype(np.float32) / 255.0)[..., None]
            img = img * (1 - a) + np.asarray(mouse_rgb, np.float32) * a
            truth[i] = _ellipse_bbox(cx, cy, ang)
        img *= 1.0 + flicker * math.sin(i * 0.9)
        img += rng.normal(0, noise, size=img.shape).astype(np.float32)
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    return frames, truth


def _write_h264(path: Path, frames: np.ndarray, fps: int = 15) -> Path:
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        st.options = {"crf": "18", "preset": "ultrafast"}
        for f in frames:
            for pkt in st.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    return path


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


SCENES = {
    "dark-on-light": ((200, 200, 200), (40, 40, 45), "moving"),
    "light-on-dark": ((50, 50, 55), (215, 215, 210), "moving"),
    # brown with about the floor's luminance: only the colour channel can see it
    "agouti-on-grey": ((137, 137, 137), (170, 130, 90), "moving"),
    "rests-then-moves": ((190, 190, 190), (35, 35, 35), "resting"),
}


@pytest.mark.parametrize("scene", list(SCENES))
def test_boxes_match_truth(tmp_path, scene):
    floor, mouse, kind = SCENES[scene]
    frames, truth = _render(floor, mouse, kind, seed=list(SCENES).index(scene))
    video = _write_h264(tmp_path / f"{scene}.mp4", frames)
    boxes = detect_video(video)
    assert boxes.shape == (N, 5) and boxes.dtype == np.float32
    ious = np.array([_iou(b, t) if np.isfinite(b[:4]).all() else 0.0 for b, t in zip(boxes, truth)])
    good = (ious >= 0.6).mean()
    assert good >= 0.9, f"{scene}: IoU >= 0.6 on only {good:.0%} of frames (worst {np.sort(ious)[:5]})"
    s = boxes[np.isfinite(boxes[:, 4]), 4]
    assert ((s > 0) & (s <= 1)).all()


def test_arena_that_fills_half_the_frame_does_not_throw_the_lighting_correction(tmp_path):
    """A dark round floor covering just over half of a lighter frame: the frame's median grey
    sits between the two, so the animal covering a little floor moves it far. The lighting
    correction must follow the arena's brightness, not that median."""
    yy, xx = np.mgrid[:H, :W]
    frac = {r: float(((xx - W / 2) ** 2 + (yy - H / 2) ** 2 <= r * r).mean()) for r in np.arange(50, 70, 0.05)}
    r = min((r for r, f in frac.items() if f >= 0.505), key=lambda r: frac[r])  # just over half the frame
    floor = np.where((((xx - W / 2) ** 2 + (yy - H / 2) ** 2) <= r * r)[..., None], 35.0, 85.0) * np.ones(3)
    frames, truth = _render(floor, (215, 215, 210), "moving", seed=5, noise=3.0, flicker=0.03)
    boxes = detect_video(_write_h264(tmp_path / "half.mp4", frames))
    ious = np.array([_iou(b, t) if np.isfinite(b[:4]).all() else 0.0 for b, t in zip(boxes, truth)])
    assert (ious >= 0.6).mean() >= 0.9, f"IoU >= 0.6 on only {(ious >= 0.6).mean():.0%} of frames"


def _render_in_place(moving_head: bool, seed: int = 11):
    """A body that never leaves its spot; with ``moving_head`` its angle and a head circle move."""
    rng = np.random.default_rng(seed)
    frames = np.empty((N, H, W, 3), np.uint8)
    truth = np.zeros((N, 4))
    for i in range(N):
        layer = np.zeros((H, W), np.uint8)
        ang = 5 * math.sin(i * 0.7) if moving_head else 0.0
        cv2.ellipse(layer, (80, 60), (AX, AY), ang, 0, 360, 255, -1, cv2.LINE_AA)
        x1, y1, x2, y2 = _ellipse_bbox(80, 60, ang)
        if moving_head:
            hx, hy = 96 + 3 * math.cos(i * 1.3), 60 + 4 * math.sin(i * 1.1)
            cv2.circle(layer, (round(hx), round(hy)), 5, 255, -1, cv2.LINE_AA)
            x1, y1, x2, y2 = min(x1, hx - 5), min(y1, hy - 5), max(x2, hx + 5), max(y2, hy + 5)
        truth[i] = (x1, y1, x2, y2)
        a = (layer.astype(np.float32) / 255.0)[..., None]
        img = 190.0 * (1 - a) + 35.0 * a
        img = img * (1 + 0.08 * math.sin(i * 0.9)) + rng.normal(0, 6, size=(H, W, 3))
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    return frames, truth


def test_animal_that_never_leaves_its_spot_is_found_by_its_movement():
    frames, truth = _render_in_place(moving_head=True)
    boxes = BackgroundDetector().detect(frames)
    ious = np.array([_iou(b, t) if np.isfinite(b[0]) else 0.0 for b, t in zip(boxes, truth)])
    assert (ious >= 0.6).mean() >= 0.9, f"median IoU {np.median(ious):.2f}"


def test_inert_object_is_not_an_animal():
    frames, _ = _render_in_place(moving_head=False)
    assert np.isnan(BackgroundDetector().detect(frames)).all()


def test_consumes_any_iterable_of_frames():
    frames, truth = _render((200, 200, 200), (40, 40, 45), "moving", seed=3)
    det = BackgroundDetector()
    from_gen = det.detect((f for f in frames), num_frames=10)  # a wrong hint is only a hint
    from_list = det.detect(list(frames), num_frames=N)
    np.testing.assert_array_equal(from_gen, from_list)
    assert det.detect([]).shape == (0, 5)


def test_downscaled_working_copy_maps_back_to_original_pixels():
    frames, truth = _render((200, 200, 200), (40, 40, 45), "moving", seed=4)
    big = np.stack([cv2.resize(f, (W * 4, H * 4), interpolation=cv2.INTER_LINEAR) for f in frames])
    boxes = BackgroundDetector(max_side=160).detect(big)
    ious = [_iou(b, t * 4) for b, t in zip(boxes, truth) if np.isfinite(b[0])]
    assert len(ious) >= 0.9 * N and np.median(ious) >= 0.7


@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
def test_no_animal_gives_nan_rows(tmp_path, noise):
    if noise == "gaussian":
        frames, _ = _render((150, 150, 150), None, None, seed=5, noise=8.0, flicker=0.1)
    else:
        frames = np.random.default_rng(6).integers(0, 256, size=(N, H, W, 3), dtype=np.uint8)
    boxes = BackgroundDetector().detect(frames)
    assert boxes.shape == (N, 5)
    assert np.isnan(boxes).all(), f"invented boxes in {np.isfinite(boxes[:, 0]).sum()} frames of pure {noise} noise"


def test_short_gap_carries_previous_box_with_lower_score():
    frames, truth = _render((200, 200, 200), (40, 40, 45), "moving", seed=7)
    blank, _ = _render((200, 200, 200), None, None, seed=8)
    frames[40:43] = blank[40:43]  # the mouse vanishes for 3 frames
    frames[60:70] = blank[60:70]  # ... and for 10 frames
    boxes = BackgroundDetector(carry_frames=5, carry_decay=0.5).detect(frames)
    assert np.isfinite(boxes[40:43, 0]).all()
    np.testing.assert_array_equal(boxes[40, :4], boxes[39, :4])
    assert boxes[41, 4] < boxes[40, 4] < boxes[39, 4]
    assert np.isfinite(boxes[60:65, 0]).all() and np.isnan(boxes[65:70]).all()


def test_bad_frames_are_rejected():
    det = BackgroundDetector()
    with pytest.raises(ValueError, match="frame 0"):
        det.detect([np.zeros((H, W), np.uint8)])
    with pytest.raises(ValueError, match="frame 1: size"):
        det.detect([np.zeros((H, W, 3), np.uint8), np.zeros((H + 2, W, 3), np.uint8)])
    with pytest.raises(ValueError, match="uint8"):
        det.detect([np.zeros((H, W, 3), np.float32)])


# --- registry -------------------------------------------------------------------------


def test_registry(monkeypatch, tmp_path):
    monkeypatch.setattr(detect, "_REGISTRY", dict(detect._REGISTRY))
    assert "background" in available_detectors()
    with pytest.raises(ValueError, match="unknown detector 'nope'.*background"):
        make_detector("nope")
    with pytest.raises(ValueError, match="bad options for detector 'background'"):
        make_detector("background", no_such_option=1)
    assert isinstance(make_detector("background", max_side=128), BackgroundDetector)

    @register_detector("fixed-box")
    class FixedBox(detect.DetectorBase):
        def __init__(self, box: tuple[float, float, float, float] = (1, 2, 3, 4)) -> None:
            self.box = box

        def detect(self, frames, *, num_frames=None):
            n = sum(1 for _ in frames)
            return np.tile(np.array([*self.box, 1.0], np.float32), (n, 1))

    assert available_detectors() == sorted(["background", "fixed-box"])
    video = _write_h264(tmp_path / "v.mp4", _render((200, 200, 200), None, None)[0][:10])
    out = detect_video(video, "fixed-box", box=(5, 6, 7, 8))
    assert out.shape == (10, 5) and (out[:, :4] == (5, 6, 7, 8)).all()
    assert isinstance(make_detector("fixed-box"), detect.Detector)
    with pytest.raises(ValueError, match="already registered"):
        register_detector("fixed-box")(lambda: None)


# --- CSV, contact sheet, batch ----------------------------------------------------------


def test_boxes_csv_round_trip(tmp_path):
    boxes = np.array([[1.5, 2.25, 30.0, 40.75, 0.9], [np.nan] * 5, [0, 0, 160, 120, 0.01], [np.nan] * 5],
                     np.float32)
    path = write_boxes_csv(boxes, tmp_path / "b.boxes.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "frame,x1,y1,x2,y2,score"
    assert lines[2] == "1,,,,," and lines[4] == "3,,,,,"
    back = read_boxes_csv(path)
    np.testing.assert_allclose(back, boxes, atol=1e-4, equal_nan=True)
    assert not list(tmp_path.glob("*.tmp"))
    (tmp_path / "bad.csv").write_text("frame,x1,y1,x2,y2,score\n0,1,2,,4,0.5\n")
    with pytest.raises(ValueError, match="bad.csv line 2"):
        read_boxes_csv(tmp_path / "bad.csv")
    (tmp_path / "gap.csv").write_text("frame,x1,y1,x2,y2,score\n0,,,,,\n2,,,,,\n")
    with pytest.raises(ValueError, match="expected 1"):
        read_boxes_csv(tmp_path / "gap.csv")


def test_contact_sheet_png(tmp_path):
    frames, truth = _render((200, 200, 200), (40, 40, 45), "moving", seed=9)
    boxes = np.concatenate([truth, np.ones((N, 1))], axis=1).astype(np.float32)
    boxes[5] = np.nan
    out = contact_sheet(frames, boxes, tmp_path / "sheet.png", n=6, cols=3, thumb_w=100)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imread(str(out))
    assert img is not None and img.shape[1] == 3 * 100 + 4 * 4 and img.shape[0] == 2 * 75 + 3 * 4
    video = _write_h264(tmp_path / "v.mp4", frames)
    out2 = contact_sheet(video, boxes, tmp_path / "from_video.png")
    assert cv2.imread(str(out2)) is not None


def test_boxes_for_videos_reports_bad_video_and_processes_the_rest(tmp_path):
    good = _write_h264(tmp_path / "good.mp4", _render((200, 200, 200), (40, 40, 45), "moving", seed=10)[0])
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    missing = tmp_path / "missing.mp4"
    out_dir = tmp_path / "out"
    res = boxes_for_videos([bad, good, missing], out_dir)
    assert [r["video"] for r in res] == [str(bad), str(good), str(missing)]
    assert res[0]["error"] and "broken.mp4" in res[0]["error"]
    assert res[2]["error"] and "missing.mp4" in res[2]["error"]
    ok = res[1]
    assert ok["error"] is None and ok["frames"] == N and ok["detected_fraction"] >= 0.9
    assert Path(ok["boxes_csv"]) == out_dir / "good.boxes.csv" and read_boxes_csv(ok["boxes_csv"]).shape == (N, 5)
    assert Path(ok["contact_sheet"]) == out_dir / "good.boxes.png"
    assert cv2.imread(ok["contact_sheet"]) is not None
    assert not (out_dir / "broken.boxes.csv").exists()
    with pytest.raises(ValueError, match="unknown detector"):
        boxes_for_videos([good], out_dir, detector="nope")
