"""Drawing the animal on the scene and encoding one video (``render_video``)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from .motion import _Pose, _simulate
from .scene import _Look, _make_look, _make_scene, _Scene
from .schedule import _check_behaviours, _plan_activity, _sample_behaviours
from .truth import VideoTruth

_PRESET, _CRF = "veryfast", 21  # x264 speed preset and quality of the demo videos

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- drawing

_T = np.linspace(0, 2 * math.pi, 28, endpoint=False)
_COS, _SIN = np.cos(_T), np.sin(_T)
_SHIFT = 4
_ONE = 1 << _SHIFT


def _place(cx: float, cy: float, ang: float, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    c, s = math.cos(ang), math.sin(ang)
    return np.stack([cx + c * u - s * v, cy + s * u + c * v], axis=-1)


def _fx(pts: np.ndarray, ox: int, oy: int) -> np.ndarray:
    return np.round((pts - (ox, oy)) * _ONE).astype(np.int32)


def _animal_parts(look: _Look, pose: _Pose, t: int) -> dict[str, np.ndarray]:
    L = look.body_len
    x, y, th = float(pose.x[t]), float(pose.y[t]), float(pose.body_angle[t])
    a = 0.5 * L * float(pose.len_scale[t])
    b = 0.5 * look.body_width * float(pose.width_scale[t]) / math.sqrt(float(pose.len_scale[t]))
    body = _place(x, y, th, a * _COS, b * _SIN * (1 - 0.12 * _COS))
    hth = th + float(pose.head_angle[t])
    nx, ny = x + 0.80 * a * math.cos(th), y + 0.80 * a * math.sin(th)
    ah, bh = 0.26 * L * float(pose.head_scale[t]), 0.19 * L
    d = 0.75 * ah + float(pose.head_bob[t])
    hx, hy = nx + d * math.cos(hth), ny + d * math.sin(hth)
    head = _place(hx, hy, hth, ah * _COS, bh * _SIN * (1 - 0.45 * (1 + _COS) / 2))
    re = 0.085 * L
    ears = _place(hx, hy, hth, np.array([-0.45 * ah, -0.45 * ah]), np.array([-0.95 * bh, 0.95 * bh]))
    eyes = _place(hx, hy, hth, np.array([0.2 * ah, 0.2 * ah]), np.array([-0.5 * bh, 0.5 * bh]))
    parts = {"body": body, "head": head, "ears": ears, "eyes": eyes, "ear_r": np.array([re]),
             "head_c": np.array([hx, hy])}
    if not np.isnan(pose.paws[t, 0]):
        parts["paws"] = _place(hx, hy, hth, pose.paws[t].astype(np.float64), np.array([-0.42 * bh, 0.42 * bh]))
    # Tail: a swaying curve from the rump.
    tail_len = 0.95 * L
    tx, ty = x - a * math.cos(th), y - a * math.sin(th)
    pts = [(tx, ty)]
    ang = th + math.pi
    ph = float(pose.tail_phase[t])
    for k in range(8):
        ang += 0.12 * math.sin(ph + 0.7 * k) + 0.05
        tx += tail_len / 8 * math.cos(ang)
        ty += tail_len / 8 * math.sin(ang)
        pts.append((tx, ty))
    parts["tail"] = np.array(pts)
    return parts


def _box(parts: dict[str, np.ndarray], width: int, height: int) -> np.ndarray:
    re = float(parts["ear_r"][0])
    pts = [parts["body"], parts["head"], parts["ears"] - re, parts["ears"] + re]
    if "paws" in parts:
        pts += [parts["paws"] - 2, parts["paws"] + 2]
    allp = np.concatenate(pts)
    x1, y1 = np.floor(allp.min(0))
    x2, y2 = np.ceil(allp.max(0))
    return np.array([max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2)], np.float32)


def _draw(frame: np.ndarray, scene: _Scene, look: _Look, parts: dict[str, np.ndarray],
          pose: _Pose, t: int) -> None:
    """Composite the animal into ``frame`` (the lit background) in place."""
    H, W = frame.shape[:2]
    L = look.body_len
    allp = np.concatenate([parts["body"], parts["head"], parts["tail"], parts["ears"]])
    pad = int(math.ceil(0.2 * L)) + 4
    x0 = max(0, int(allp[:, 0].min()) - pad)
    y0 = max(0, int(allp[:, 1].min()) - pad)
    x1 = min(W, int(allp[:, 0].max()) + pad + 1)
    y1 = min(H, int(allp[:, 1].max()) + pad + 1)
    if x1 <= x0 or y1 <= y0:
        return
    h, w = y1 - y0, x1 - x0
    col = np.zeros((h, w, 3), np.uint8)
    alpha = np.zeros((h, w), np.uint8)
    shadow = np.zeros((h, w), np.uint8)

    def poly(pts: np.ndarray, colour: np.ndarray) -> None:
        p = [_fx(pts, x0, y0)]
        cv2.fillPoly(col, p, colour.tolist(), cv2.LINE_AA, _SHIFT)
        cv2.fillPoly(alpha, p, 255, cv2.LINE_AA, _SHIFT)

    def disc(c: np.ndarray, r: float, colour: np.ndarray, ax: tuple[float, float] | None = None,
             ang: float = 0.0) -> None:
        centre = tuple(int(v) for v in _fx(c[None], x0, y0)[0])
        axes = (int(round(r * _ONE)), int(round(r * _ONE))) if ax is None else \
            (int(round(ax[0] * _ONE)), int(round(ax[1] * _ONE)))
        cv2.ellipse(col, centre, axes, ang, 0, 360, colour.tolist(), -1, cv2.LINE_AA, _SHIFT)
        cv2.ellipse(alpha, centre, axes, ang, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT)

    tail = _fx(parts["tail"], x0, y0)
    thick = max(1, int(round(0.05 * L)))
    for seg, th in ((tail[:4], thick + 1), (tail[3:], thick)):
        cv2.polylines(col, [seg], False, look.tail.tolist(), th, cv2.LINE_AA, _SHIFT)
        cv2.polylines(alpha, [seg], False, 255, th, cv2.LINE_AA, _SHIFT)
    poly(parts["body"], look.fur)
    poly(parts["head"], look.fur)
    re = float(parts["ear_r"][0])
    hth = math.degrees(float(pose.body_angle[t] + pose.head_angle[t]))
    for e in parts["ears"]:
        disc(e, re, look.ear, (re * 0.8, re * 1.1), hth)
    for e in parts["eyes"]:
        disc(e, max(0.45, 0.03 * L), look.eye)
    if "paws" in parts:
        for p in parts["paws"]:
            disc(p, 0.0, look.paw, (0.075 * L, 0.05 * L), hth)

    # Rounded-body shading: darker flanks, a highlight along the back.
    yy, xx = np.ogrid[y0:y1, x0:x1]
    th = float(pose.body_angle[t])
    c, s = math.cos(th), math.sin(th)
    dx, dy = xx - float(pose.x[t]), yy - float(pose.y[t])
    u = (dx * c + dy * s) / (0.55 * L)
    v = (-dx * s + dy * c) / (0.5 * look.body_width)
    rho2 = np.minimum(u * u + v * v, 1.5).astype(np.float32)
    a_f = alpha.astype(np.float32) * (1.0 / 255.0)
    colour = col.astype(np.float32) * (1.0 - look.shade * rho2)[..., None]
    colour += (look.sheen * np.clip(1.0 - 2.5 * v * v, 0, 1) * np.clip(1.0 - rho2, 0, 1))[..., None] * a_f[..., None]

    sx, sy = scene.shadow_dir
    off = np.array([sx, sy]) * 0.08 * L
    cv2.fillPoly(shadow, [_fx(parts["body"] + off, x0, y0), _fx(parts["head"] + off, x0, y0)], 255,
                 cv2.LINE_AA, _SHIFT)
    k = max(3, int(0.2 * L) | 1)
    sh = cv2.blur(cv2.blur(shadow, (k, k)), (k, k)).astype(np.float32) * (0.35 / 255.0)

    bg = scene.background_f[y0:y1, x0:x1]
    light = scene.light[y0:y1, x0:x1]
    out = bg * ((1.0 - a_f) * (1.0 - sh))[..., None] + colour * light
    frame[y0:y1, x0:x1] = np.clip(out + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- video


def open_writer(path: Path, width: int, height: int, fps: float):
    """An mp4 container and its H.264 stream as every demo video is encoded (the same file for the same frames)."""
    container = av.open(str(path), mode="w", format="mp4")
    stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    gop = max(1, int(round(2 * fps)))
    stream.codec_context.gop_size = gop
    stream.codec_context.thread_count = 1
    # A fixed 2 s GOP; diamond motion search and short lookahead keep encoding cheap. The macroblock
    # tree is off: with it, the same frames gave other bytes from one encode to the next (in a video's
    # first seconds, more often with other work running), so a demo rendered anew trained on other pixels.
    params = f"keyint={gop}:min-keyint={gop}:scenecut=0:rc-lookahead=10:me=dia:subme=1:mbtree=0"
    stream.options = {"crf": str(_CRF), "preset": _PRESET, "x264-params": params}
    return container, stream


def render_video(path: Path | str, *, num_frames: int, fps: float = 30, size: tuple[int, int] = (160, 120),
                 seed: int | np.random.SeedSequence = 0,
                 behaviours: Sequence[tuple[str, int, int]] | None = None) -> VideoTruth:
    """Render one top-view video of a mouse to ``path`` (H.264 mp4) and return its truth.

    ``size`` is (width, height), both even. ``behaviours`` lists (class_name, start, end)
    inclusive frame ranges of "Self-Grooming" / "Head/Body TWITCH"; None samples them.
    """
    path = Path(path)
    width, height = int(size[0]), int(size[1])
    if width < 32 or height < 32 or width % 2 or height % 2:
        raise ValueError(f"{path}: size {size} must be (width, height), both even and >= 32")
    if num_frames < 1:
        raise ValueError(f"{path}: num_frames must be >= 1, got {num_frames}")
    if fps <= 0:
        raise ValueError(f"{path}: fps must be > 0, got {fps}")
    rng = np.random.default_rng(seed)
    look = _make_look(rng, min(width, height))
    scene = _make_scene(rng, width, height, look)
    if behaviours is None:
        behaviours = _sample_behaviours(rng, num_frames, fps)
    behaviours = _check_behaviours(behaviours, num_frames, str(path))
    act, base = _plan_activity(rng, num_frames, fps, behaviours)
    pose = _simulate(rng, scene, look, fps, act, base, behaviours)

    # Sensor noise: a small bank of noise fields, drawn at random offsets per frame.
    pad = 16
    bank = (rng.standard_normal((4, height + pad, width + pad, 1)) * 0.8
            + rng.standard_normal((4, height + pad, width + pad, 3)) * 0.6) * scene.noise_sigma
    bank = np.round(bank).astype(np.int16)
    noise_pos = np.clip(bank, 0, 255).astype(np.uint8)
    noise_neg = np.clip(-bank, 0, 255).astype(np.uint8)
    fl_a = rng.uniform(0.004, 0.02, 2)
    fl_f = rng.uniform(0.05, 0.5, 2)
    fl_p = rng.uniform(0, 2 * math.pi, 2)
    picks = rng.integers(0, [4, pad, pad], (num_frames, 3))
    ramp = np.arange(256, dtype=np.float32)

    boxes = np.empty((num_frames, 4), np.float32)
    head_xy = np.empty((num_frames, 2), np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    container, stream = open_writer(tmp, width, height, fps)
    try:
        frame = np.empty_like(scene.background)
        for t in range(num_frames):
            parts = _animal_parts(look, pose, t)
            boxes[t] = _box(parts, width, height)
            head_xy[t] = parts["head_c"]
            np.copyto(frame, scene.background)
            _draw(frame, scene, look, parts, pose, t)
            gain = 1.0 + float(np.sum(fl_a * np.sin(2 * math.pi * fl_f * t / fps + fl_p)))
            cv2.LUT(frame, np.clip(ramp * gain + 0.5, 0, 255).astype(np.uint8), dst=frame)
            k, oy, ox = picks[t]
            cv2.add(frame, noise_pos[k, oy:oy + height, ox:ox + width], dst=frame)
            cv2.subtract(frame, noise_neg[k, oy:oy + height, ox:ox + width], dst=frame)
            vf = av.VideoFrame.from_ndarray(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
            vf.pts = t
            container.mux(stream.encode(vf))
        container.mux(stream.encode(None))
    finally:
        container.close()
    os.replace(tmp, path)
    return VideoTruth(path=path, fps=float(fps), num_frames=num_frames, width=width, height=height,
                      behaviours=list(behaviours), boxes=boxes, head_xy=head_xy, activity=act,
                      background=scene.background.copy())
