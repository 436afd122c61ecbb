"""Synthetic demo data: a Supervisely video project of a mouse filmed from above.

Every video is a full-length top view of one animal in an arena. The animal rests or
walks (idle, untagged) and now and then self-grooms or makes a head/body twitch; those
two behaviours are written as Supervisely video tags with inclusive frame ranges, the
way labs annotate real projects. Everything is deterministic from the seed.

``render_video`` renders one clip (used by tests to make tiny videos quickly);
``write_demo_project`` writes a whole project with the Supervisely SDK.
"""
from __future__ import annotations

import logging
import math
import os
import random
import shutil
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

logger = logging.getLogger(__name__)

GROOMING = "Self-Grooming"
TWITCH = "Head/Body TWITCH"
BEHAVIOURS = (GROOMING, TWITCH)
MOUSE_CLASS = "mouse"
DATASETS = ("cohort_A", "cohort_B")
DEFAULT_SIZES = ((320, 240), (384, 288), (352, 264))
DEFAULT_FPS = (25, 30, 50, 60)

# Per-frame activity codes stored in VideoTruth.activity.
ACTIVITIES = ("rest", "walk", "groom", "twitch")
REST, WALK, GROOM, TWITCH_ACT = range(4)

_GROOM_S = (2.0, 8.0)
_TWITCH_S = (0.1, 0.3)
_GAP_S = 1.5  # minimum idle time between two tagged events
_MARGIN_S = 1.0  # idle time kept at the start and end of a video
_MAX_GROOM_FRACTION = 0.35
_PRESET, _CRF = "veryfast", 21


@dataclass(frozen=True, kw_only=True)
class VideoTruth:
    """What was rendered into one video (frame indices 0-based, ranges inclusive)."""

    path: Path
    fps: float
    num_frames: int
    width: int
    height: int
    behaviours: list[tuple[str, int, int]]
    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2 (whole pixels, x2/y2 exclusive) around the animal, tail excluded
    head_xy: np.ndarray  # (N, 2) float32 centre of the head
    activity: np.ndarray  # (N,) uint8 index into ACTIVITIES
    background: np.ndarray  # (H, W, 3) uint8 static scene without animal, flicker, noise


@dataclass(frozen=True, kw_only=True)
class DemoVideo(VideoTruth):
    """One video of a demo project."""

    dataset: str
    name: str


@dataclass(frozen=True)
class DemoProject:
    """A demo Supervisely video project written on disk."""

    root: Path
    videos: list[DemoVideo] = field(default_factory=list)
    tag_names: tuple[str, ...] = BEHAVIOURS

    def video(self, name: str) -> DemoVideo:
        """The video called ``name`` (file name incl. extension)."""
        for v in self.videos:
            if v.name == name:
                return v
        raise KeyError(f"no video {name!r} in demo project {self.root}")


# --------------------------------------------------------------------------- scene


@dataclass
class _Scene:
    width: int
    height: int
    shape: str  # "rect" or "circle"
    rect: tuple[float, float, float, float]  # arena x0, y0, x1, y1
    circle: tuple[float, float, float]  # arena cx, cy, r
    background: np.ndarray  # uint8, lit
    background_f: np.ndarray  # float32, lit
    light: np.ndarray  # (H, W, 1) float32 lighting gain
    shadow_dir: tuple[float, float]
    noise_sigma: float


@dataclass
class _Look:
    body_len: float
    body_width: float
    fur: np.ndarray  # RGB float
    ear: np.ndarray
    paw: np.ndarray
    tail: np.ndarray
    eye: np.ndarray
    shade: float  # edge darkening of the rounded body
    sheen: float  # additive highlight along the back


def _luma(rgb: np.ndarray) -> float:
    return float(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


def _make_look(rng: np.random.Generator, short_side: int) -> _Look:
    body_len = float(rng.uniform(0.09, 0.14) * short_side)
    kind = rng.choice(["black", "agouti", "white"], p=[0.4, 0.3, 0.3])
    if kind == "black":
        fur = np.array([32, 30, 34]) + rng.uniform(-8, 10, 3)
        ear = fur * 0.6 + np.array([120, 90, 95]) * 0.4
        paw = np.array([175, 135, 135]) + rng.uniform(-15, 15, 3)
        tail = fur + 25
        eye, shade, sheen = np.array([5, 5, 5]), 0.15, rng.uniform(14, 26)
    elif kind == "agouti":
        fur = np.array([112, 92, 72]) + rng.uniform(-20, 20) + rng.uniform(-8, 8, 3)
        ear = np.array([150, 110, 105]) + rng.uniform(-10, 10, 3)
        paw = np.array([205, 160, 150]) + rng.uniform(-15, 15, 3)
        tail = np.array([160, 125, 115]) + rng.uniform(-10, 10, 3)
        eye, shade, sheen = np.array([10, 8, 8]), 0.25, rng.uniform(6, 14)
    else:
        fur = np.array([238, 234, 226]) + rng.uniform(-14, 8) + rng.uniform(-5, 5, 3)
        ear = np.array([235, 180, 180]) + rng.uniform(-10, 10, 3)
        paw = np.array([240, 175, 170]) + rng.uniform(-10, 10, 3)
        tail = np.array([228, 180, 172]) + rng.uniform(-10, 10, 3)
        eye, shade, sheen = np.array([150, 40, 50]), 0.22, 0.0
    return _Look(
        body_len=body_len,
        body_width=body_len * float(rng.uniform(0.5, 0.6)),
        fur=np.clip(fur, 0, 255).astype(np.float32),
        ear=np.clip(ear, 0, 255).astype(np.float32),
        paw=np.clip(paw, 0, 255).astype(np.float32),
        tail=np.clip(tail, 0, 255).astype(np.float32),
        eye=eye.astype(np.float32),
        shade=float(shade),
        sheen=float(sheen),
    )


def _floor_colour(rng: np.random.Generator, fur: np.ndarray) -> np.ndarray:
    """A floor colour whose brightness contrasts with the fur."""
    if _luma(fur) < 140:  # dark or agouti animal: light floor
        base = rng.choice(["white", "grey", "beige", "blue"])
        lum = rng.uniform(200, 245) if _luma(fur) < 80 else rng.uniform(215, 248)
        tint = {"white": (0, 0, 0), "grey": (-4, -4, -4), "beige": (8, 2, -14), "blue": (-14, -4, 10)}[base]
    else:  # white animal: dark floor
        base = rng.choice(["black", "grey", "blue", "red"])
        lum = rng.uniform(25, 85)
        tint = {"black": (0, 0, 0), "grey": (2, 2, 2), "blue": (-10, -2, 20), "red": (18, -6, -6)}[base]
    colour = lum + np.array(tint, dtype=np.float64) * rng.uniform(0.5, 1.5)
    return np.clip(colour, 0, 255)


def _make_scene(rng: np.random.Generator, width: int, height: int, look: _Look) -> _Scene:
    short = min(width, height)
    floor = _floor_colour(rng, look.fur)
    floor_l = _luma(floor)
    wall_l = floor_l - rng.uniform(50, 110) if floor_l > 128 else floor_l + rng.uniform(40, 90)
    wall = np.clip(wall_l + rng.uniform(-12, 12, 3), 0, 255)
    rim = np.clip((floor + wall) / 2 + rng.uniform(-30, 30), 0, 255)

    img = np.empty((height, width, 3), np.float32)
    img[:] = wall
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # Outside the arena: a soft gradient, as a table or a cage wall would give.
    img *= (1.0 + 0.08 * (xx / width - 0.5))[..., None]

    if rng.random() < 0.5:
        shape = "rect"
        mx0, mx1 = rng.uniform(0.03, 0.12, 2) * width
        my0, my1 = rng.uniform(0.03, 0.12, 2) * height
        rect = (float(mx0), float(my0), float(width - mx1), float(height - my1))
        circle = (width / 2, height / 2, short / 2)
        mask = ((xx >= rect[0]) & (xx <= rect[2]) & (yy >= rect[1]) & (yy <= rect[3]))
    else:
        shape = "circle"
        r = float(rng.uniform(0.40, 0.48) * short)
        cx = float(width / 2 + rng.uniform(-1, 1) * max(0.0, width / 2 - r - 2))
        cy = float(height / 2 + rng.uniform(-1, 1) * max(0.0, height / 2 - r - 2))
        circle = (cx, cy, r)
        rect = (cx - r, cy - r, cx + r, cy + r)
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r

    # Floor: colour with a faint low-frequency texture.
    tex = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), short / 25)
    tex /= max(float(tex.std()), 1e-6)
    floor_img = floor[None, None, :] * (1.0 + 0.015 * tex[..., None])
    img[mask] = floor_img[mask]
    if rng.random() < 0.3:  # bedding: small speckles on the floor
        bedding = np.clip(floor + rng.choice([-1, 1]) * rng.uniform(25, 50) + np.array([10, 4, -12]), 0, 255)
        layer = np.zeros((height, width), np.uint8)
        n_speck = int(rng.uniform(0.004, 0.012) * width * height)
        pts = rng.uniform([0, 0], [width, height], (n_speck, 2))
        for (px, py), ax, ang in zip(pts, rng.uniform(0.6, 1.8, n_speck), rng.uniform(0, 180, n_speck)):
            cv2.ellipse(layer, ((float(px), float(py)), (float(ax * 2), float(ax)), float(ang)), 255, -1, cv2.LINE_AA)
        a = (layer.astype(np.float32) / 255.0 * rng.uniform(0.4, 0.8))[..., None] * mask[..., None]
        img = img * (1 - a) + bedding[None, None, :] * a
    rim_px = int(rng.integers(2, 6))
    if shape == "rect":
        cv2.rectangle(img, (int(rect[0]), int(rect[1])), (int(rect[2]), int(rect[3])), rim.tolist(), rim_px)
    else:
        cv2.circle(img, (int(round(circle[0])), int(round(circle[1]))), int(round(circle[2])), rim.tolist(), rim_px,
                   cv2.LINE_AA)
    img = cv2.GaussianBlur(img, (0, 0), 0.7)

    # Lighting: global level, vignette and a linear gradient.
    level = rng.uniform(0.8, 1.1)
    vig = rng.uniform(0.05, 0.25)
    ang = rng.uniform(0, 2 * math.pi)
    grad = rng.uniform(0.0, 0.15)
    r2 = ((xx - width / 2) ** 2 + (yy - height / 2) ** 2) / ((width / 2) ** 2 + (height / 2) ** 2)
    lin = ((xx - width / 2) * math.cos(ang) + (yy - height / 2) * math.sin(ang)) / short
    light = (level * (1.0 - vig * r2) * (1.0 + grad * lin)).astype(np.float32)[..., None]
    lit = np.clip(img * light, 0, 255).astype(np.float32)
    return _Scene(
        width=width,
        height=height,
        shape=shape,
        rect=rect,
        circle=circle,
        background=np.round(lit).astype(np.uint8),
        background_f=lit,
        light=light,
        shadow_dir=(math.cos(ang + math.pi), math.sin(ang + math.pi)),
        noise_sigma=float(rng.uniform(1.0, 2.5)),
    )


# --------------------------------------------------------------------------- timeline


def _sample_behaviours(rng: np.random.Generator, n: int, fps: float) -> list[tuple[str, int, int]]:
    """Grooming bouts and twitches, non-overlapping, at least 1.5 s apart, idle the majority."""
    dur = n / fps
    if dur >= 30:
        n_groom, n_twitch = int(rng.integers(2, 5)), int(rng.integers(5, 11))
    else:
        n_groom = max(1, round(rng.uniform(2, 4.5) * dur / 45))
        n_twitch = max(1, round(rng.uniform(5, 10.5) * dur / 45))
    g_min, g_max = math.ceil(_GROOM_S[0] * fps), math.floor(_GROOM_S[1] * fps)
    t_min, t_max = max(3, math.ceil(_TWITCH_S[0] * fps)), max(3, math.floor(_TWITCH_S[1] * fps))
    grooms = [int(np.clip(round(rng.uniform(*_GROOM_S) * fps), g_min, g_max)) for _ in range(n_groom)]
    total = sum(grooms)
    if total > _MAX_GROOM_FRACTION * n:
        scale = _MAX_GROOM_FRACTION * n / total
        grooms = [max(g_min, int(g * scale)) for g in grooms]
    twitches = [int(np.clip(round(rng.uniform(*_TWITCH_S) * fps), t_min, t_max)) for _ in range(n_twitch)]
    gap, margin = math.ceil(_GAP_S * fps), math.ceil(_MARGIN_S * fps)

    def required() -> int:
        k = len(grooms) + len(twitches)
        return sum(grooms) + sum(twitches) + gap * max(0, k - 1) + 2 * margin

    while (grooms or twitches) and required() > n:
        excess = required() - n
        if grooms and max(grooms) > g_min:
            i = int(np.argmax(grooms))
            grooms[i] = max(g_min, grooms[i] - excess)
        elif twitches and len(twitches) >= len(grooms):
            twitches.pop()
        else:
            grooms.pop()
    if required() > n:
        return []
    events = [(GROOMING, g) for g in grooms] + [(TWITCH, t) for t in twitches]
    order = rng.permutation(len(events))
    events = [events[i] for i in order]
    slack = n - required()
    shares = np.floor(rng.dirichlet(np.ones(len(events) + 1)) * slack).astype(int)
    out, t = [], margin + int(shares[0])
    for (name, length), extra in zip(events, shares[1:]):
        out.append((name, t, t + length - 1))
        t += length + gap + int(extra)
    return out


def _check_behaviours(behaviours: Sequence[tuple[str, int, int]], n: int, where: str) -> list[tuple[str, int, int]]:
    out = []
    for item in behaviours:
        name, start, end = item
        if name not in BEHAVIOURS:
            raise ValueError(f"{where}: unknown behaviour {name!r}; use one of {BEHAVIOURS}")
        if not (0 <= int(start) <= int(end) < n):
            raise ValueError(f"{where}: behaviour {item!r} is outside frames 0..{n - 1}")
        out.append((name, int(start), int(end)))
    out.sort(key=lambda b: b[1])
    for a, b in zip(out, out[1:]):
        if b[1] <= a[2]:
            raise ValueError(f"{where}: behaviours {a!r} and {b!r} overlap")
    return out


def _plan_activity(rng: np.random.Generator, n: int, fps: float,
                   behaviours: list[tuple[str, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame activity code and the idle mode underneath it (rest or walk)."""
    p_walk = rng.uniform(0.35, 0.6)
    base = np.empty(n, np.uint8)
    t = 0
    mode = WALK if rng.random() < p_walk else REST
    while t < n:
        length = max(1, int(rng.uniform(1.5, 6.0) * fps))
        base[t:t + length] = mode
        t += length
        mode = WALK if rng.random() < p_walk else REST
    pre_groom, around_twitch = int(0.8 * fps), int(0.4 * fps)
    for name, s, e in behaviours:
        if name == GROOMING:
            base[max(0, s - pre_groom):s] = REST
            base[s:e + 1] = REST
        else:
            ctx = REST if rng.random() < 0.75 else WALK
            base[max(0, s - around_twitch):min(n, e + 1 + around_twitch)] = ctx
    act = base.copy()
    for name, s, e in behaviours:
        act[s:e + 1] = GROOM if name == GROOMING else TWITCH_ACT
    return act, base


# --------------------------------------------------------------------------- motion


@dataclass
class _Pose:
    x: np.ndarray
    y: np.ndarray
    body_angle: np.ndarray  # drawn body axis, radians
    head_angle: np.ndarray  # head relative to body, radians
    head_bob: np.ndarray  # head shift along its axis, pixels
    head_scale: np.ndarray  # head length factor (foreshortening when it bends down)
    len_scale: np.ndarray
    width_scale: np.ndarray
    paws: np.ndarray  # (N, 2) forepaw offsets along the head axis, pixels; NaN = not visible
    tail_phase: np.ndarray


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


class _Arena:
    def __init__(self, scene: _Scene, margin: float):
        self.scene, self.m = scene, margin

    def clamp(self, x: float, y: float) -> tuple[float, float, bool]:
        s = self.scene
        if s.shape == "rect":
            x0, y0, x1, y1 = s.rect
            cx = min(max(x, x0 + self.m), x1 - self.m)
            cy = min(max(y, y0 + self.m), y1 - self.m)
            return cx, cy, (cx != x or cy != y)
        ccx, ccy, r = s.circle
        rr = max(1.0, r - self.m)
        dx, dy = x - ccx, y - ccy
        d = math.hypot(dx, dy)
        if d <= rr:
            return x, y, False
        return ccx + dx / d * rr, ccy + dy / d * rr, True

    def sample(self, rng: np.random.Generator, near_wall: bool) -> tuple[float, float]:
        s = self.scene
        if s.shape == "rect":
            x0, y0, x1, y1 = s.rect
            x0, y0, x1, y1 = x0 + self.m, y0 + self.m, x1 - self.m, y1 - self.m
            x, y = rng.uniform(x0, max(x0, x1)), rng.uniform(y0, max(y0, y1))
            if near_wall:
                side = rng.integers(4)
                x = x0 if side == 0 else x1 if side == 1 else x
                y = y0 if side == 2 else y1 if side == 3 else y
            return float(x), float(y)
        ccx, ccy, r = s.circle
        rr = max(1.0, r - self.m)
        a = rng.uniform(0, 2 * math.pi)
        d = rr if near_wall else rr * math.sqrt(rng.random())
        return float(ccx + d * math.cos(a)), float(ccy + d * math.sin(a))


def _simulate(rng: np.random.Generator, scene: _Scene, look: _Look, fps: float, act: np.ndarray,
              base: np.ndarray, behaviours: list[tuple[str, int, int]]) -> _Pose:
    n = len(act)
    L = look.body_len
    dt = 1.0 / fps
    arena = _Arena(scene, 0.55 * L)
    wall_lover = rng.random() < 0.35
    x, y = arena.sample(rng, near_wall=wall_lover and rng.random() < 0.5)
    theta = float(rng.uniform(-math.pi, math.pi))
    v = 0.0
    waypoint = arena.sample(rng, wall_lover)
    max_turn = float(rng.uniform(2.5, 4.0)) * dt
    breath_f, breath_a = rng.uniform(1.5, 3.0), rng.uniform(0.02, 0.045)
    gait_f, gait_a = rng.uniform(2.0, 4.0), math.radians(rng.uniform(3, 6))
    tau_v = 0.2

    # Per-event parameters.
    event_at = np.full(n, -1, np.int32)
    params = []
    for i, (name, s, e) in enumerate(behaviours):
        event_at[s:e + 1] = i
        if name == GROOMING:
            params.append(dict(f=rng.uniform(4.0, 7.0), amp=rng.uniform(0.5, 1.0),
                               yaw=math.radians(rng.uniform(-15, 15)), side=math.radians(rng.uniform(0, 8)),
                               paw_phase=rng.choice([0.0, math.pi / 2, math.pi]),
                               compress=rng.uniform(0.88, 0.97), phase=rng.uniform(0, 2 * math.pi)))
        else:
            params.append(dict(amp=math.radians(rng.uniform(25, 45)) * rng.choice([-1, 1]),
                               k=int(rng.choice([2, 3])), body=rng.uniform(0.25, 0.45)))

    def zeros() -> np.ndarray:
        return np.zeros(n, np.float32)

    pose = _Pose(x=zeros(), y=zeros(), body_angle=zeros(), head_angle=zeros(), head_bob=zeros(),
                 head_scale=zeros(), len_scale=zeros(), width_scale=zeros(),
                 paws=np.full((n, 2), np.nan, np.float32), tail_phase=zeros())
    phi_base, phi_target, tau_phi = 0.0, 0.0, 0.3
    walk_speed, scan, sitting = 0.0, 0.0, 0.0
    tail_phase = float(rng.uniform(0, 2 * math.pi))
    prev_mode = -1
    for t in range(n):
        mode, ctx = int(act[t]), int(base[t])
        if ctx != prev_mode and ctx == WALK:
            walk_speed = float(rng.uniform(0.6, 2.5) if rng.random() < 0.9 else rng.uniform(2.5, 4.0)) * L * dt
        if ctx != prev_mode and ctx == REST:
            scan = float(math.radians(rng.uniform(10, 25))) if rng.random() < 0.3 else 0.0
            # Sometimes the animal rests sitting up, forepaws still under the snout.
            sitting = float(rng.uniform(0.92, 0.98)) if rng.random() < 0.3 else 0.0
        prev_mode = ctx
        moving = ctx == WALK and mode != GROOM
        v_target = walk_speed if moving else 0.0
        v += (v_target - v) * (1.0 - math.exp(-dt / tau_v))
        if mode == GROOM or (not moving and v < 0.01):
            v = 0.0
        turn = 0.0
        if v > 0:
            dx, dy = waypoint[0] - x, waypoint[1] - y
            if math.hypot(dx, dy) < 0.8 * L:
                waypoint = arena.sample(rng, wall_lover and rng.random() < 0.75)
                dx, dy = waypoint[0] - x, waypoint[1] - y
            turn = float(np.clip(0.15 * _wrap(math.atan2(dy, dx) - theta), -max_turn, max_turn))
            turn += float(rng.normal(0, 0.02))
            theta = _wrap(theta + turn)
            x, y, hit = arena.clamp(x + v * math.cos(theta), y + v * math.sin(theta))
            if hit:
                waypoint = arena.sample(rng, False)

        # Head direction relative to the body.
        if mode == GROOM:
            phi_target, tau_phi = params[event_at[t]]["yaw"], 0.15
            phi_goal = phi_target
        elif ctx == WALK:
            if rng.random() < 0.8 * dt:  # ordinary head turns while walking
                phi_target = math.radians(rng.uniform(-35, 35))
                tau_phi = float(rng.uniform(0.12, 0.25))
            phi_goal = phi_target + float(np.clip(0.15 * turn * fps, -0.35, 0.35))  # look into the turn
        else:
            if rng.random() < 0.25 * dt:  # slow head turn while resting
                phi_target = math.radians(rng.uniform(-40, 40))
                tau_phi = float(rng.uniform(0.3, 0.7))
            phi_goal = phi_target
        phi_base += (phi_goal - phi_base) * (1.0 - math.exp(-dt / tau_phi))
        phi = phi_base + (scan * math.sin(2 * math.pi * 0.5 * t * dt) if ctx == REST and mode != GROOM else 0.0)
        phi = float(np.clip(phi, -math.radians(55), math.radians(55)))

        body_angle = theta + gait_a * math.sin(2 * math.pi * gait_f * t * dt) * min(1.0, v / (1.5 * L * dt))
        bob, hscale, lscale, paws = 0.0, 1.0, 1.0, (math.nan, math.nan)
        wscale = 1.0 + breath_a * math.sin(2 * math.pi * breath_f * t * dt)
        if mode == GROOM:
            p = params[event_at[t]]
            s0 = behaviours[event_at[t]][1]
            ph = 2 * math.pi * p["f"] * (t - s0) * dt + p["phase"]
            bob = -p["amp"] * 0.12 * L * math.sin(ph)
            hscale = 1.0 - 0.15 * p["amp"] * (1 + math.sin(ph)) / 2
            phi += p["side"] * math.sin(ph + 1.0)
            lscale = p["compress"]
            ah = 0.26 * L
            paws = (ah * (0.6 + 0.35 * p["amp"] * math.sin(ph + 0.5)),
                    ah * (0.6 + 0.35 * p["amp"] * math.sin(ph + 0.5 + p["paw_phase"])))
        elif ctx == REST and sitting:
            lscale = sitting
            paws = (0.26 * L * 0.55, 0.26 * L * 0.6)
        if mode == TWITCH_ACT:
            p = params[event_at[t]]
            _, s0, e0 = behaviours[event_at[t]]
            u = (t - s0 + 0.5) / (e0 - s0 + 1)
            swing = p["amp"] * math.sin(math.pi * p["k"] * u)
            phi += swing
            body_angle += p["body"] * swing
        tail_phase += dt * (0.4 + 2.0 * v / (L * dt + 1e-6) * 0.5) + float(rng.normal(0, 0.02))

        pose.x[t], pose.y[t] = x, y
        pose.body_angle[t], pose.head_angle[t] = body_angle, phi
        pose.head_bob[t], pose.head_scale[t] = bob, hscale
        pose.len_scale[t], pose.width_scale[t] = lscale, wscale
        pose.paws[t] = paws
        pose.tail_phase[t] = tail_phase
    return pose


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


def _open_writer(path: Path, width: int, height: int, fps: float):
    container = av.open(str(path), mode="w", format="mp4")
    stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    gop = max(1, int(round(2 * fps)))
    stream.codec_context.gop_size = gop
    stream.codec_context.thread_count = 1
    # A fixed 2 s GOP; diamond motion search and short lookahead keep encoding cheap.
    params = f"keyint={gop}:min-keyint={gop}:scenecut=0:rc-lookahead=10:me=dia:subme=1"
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
    container, stream = _open_writer(tmp, width, height, fps)
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


# --------------------------------------------------------------------------- project


def _project_meta(sly):  # noqa: ANN001, ANN202 - the supervisely module
    applicable = sly.TagApplicableTo.IMAGES_ONLY  # tags of the item (the video), not of objects
    tags = [sly.TagMeta(name, sly.TagValueType.NONE, applicable_to=applicable, color=colour)
            for name, colour in zip(BEHAVIOURS, ([46, 204, 113], [231, 76, 60]))]
    return sly.ProjectMeta(obj_classes=[sly.ObjClass(MOUSE_CLASS, sly.Rectangle, color=[52, 152, 219])], tag_metas=tags)


class _Ids:
    """Deterministic keys and platform-style ids, as a project downloaded from Supervisely has."""

    def __init__(self, sly, seed: int):  # noqa: ANN001 - the supervisely module
        self.key_id_map = sly.KeyIdMap()
        self._rand = random.Random(seed)
        self._next = {"video": 1, "tag": 1, "object": 1, "figure": 1}

    def key(self, kind: str) -> uuid.UUID:
        key = uuid.UUID(int=self._rand.getrandbits(128), version=4)
        ident, self._next[kind] = self._next[kind], self._next[kind] + 1
        getattr(self.key_id_map, f"add_{kind}")(key, ident)
        return key


def _annotation(sly, meta, truth: VideoTruth, with_boxes: bool, ids: _Ids):  # noqa: ANN001, ANN202
    tags = [sly.VideoTag(meta.get_tag_meta(name), frame_range=(s, e), key=ids.key("tag"))
            for name, s, e in truth.behaviours]
    objects, frames = [], []
    if with_boxes:
        mouse = sly.VideoObject(meta.get_obj_class(MOUSE_CLASS), key=ids.key("object"))
        objects.append(mouse)
        for i, (x1, y1, x2, y2) in enumerate(truth.boxes.tolist()):
            # Supervisely rectangles hold inclusive pixel indices: right = x2 - 1.
            rect = sly.Rectangle(top=int(y1), left=int(x1), bottom=int(y2) - 1, right=int(x2) - 1)
            frames.append(sly.Frame(i, figures=[sly.VideoFigure(mouse, rect, i, key=ids.key("figure"))]))
    return sly.VideoAnnotation(
        img_size=(truth.height, truth.width), frames_count=truth.num_frames,
        objects=sly.VideoObjectCollection(objects), frames=sly.FrameCollection(frames),
        tags=sly.VideoTagCollection(tags), key=ids.key("video"))


def _verify(sly, root: Path, videos: list[DemoVideo]) -> None:  # noqa: ANN001
    """Read the project back with the SDK and compare the tags with the truth."""
    project = sly.VideoProject(str(root), sly.OpenMode.READ)
    by_key = {(v.dataset, v.name): v for v in videos}
    seen = 0
    for ds in project.datasets:
        for name in ds.get_items_names():
            truth = by_key[(ds.name, name)]
            ann_path = Path(ds.get_ann_path(name))
            ann = sly.VideoAnnotation.load_json_file(str(ann_path), project.meta, project.key_id_map)
            got = sorted((tag.meta.name, *tag.frame_range) for tag in ann.tags)
            if got != sorted(truth.behaviours) or ann.frames_count != truth.num_frames:
                raise RuntimeError(f"{ann_path}: annotation read back does not match what was rendered")
            seen += 1
    if seen != len(videos):
        raise RuntimeError(f"{root}: expected {len(videos)} videos, read back {seen}")


def write_demo_project(root: Path | str, *, n_videos: int = 12, seed: int = 0,
                       duration_s: tuple[float, float] = (40.0, 60.0), with_boxes: bool = False,
                       sizes: Sequence[tuple[int, int]] | None = None,
                       fps_choices: Sequence[float] | None = None, workers: int | None = None) -> DemoProject:
    """Write a Supervisely video project of ``n_videos`` synthetic mouse videos under ``root``.

    Videos are split over the datasets cohort_A / cohort_B; behaviours are video tags
    with inclusive frame ranges; ``with_boxes`` adds a "mouse" rectangle per frame.
    ``root`` must not exist or be empty; the project appears there complete or not at all.
    ``workers`` videos are rendered at a time (default: one per CPU core).
    """
    import supervisely as sly  # imported here: the SDK takes seconds to import

    root = Path(root)
    if n_videos < 1:
        raise ValueError(f"n_videos must be >= 1, got {n_videos}")
    lo, hi = duration_s
    if not 0 < lo <= hi:
        raise ValueError(f"duration_s must be (min, max) seconds with 0 < min <= max, got {duration_s}")
    sizes = tuple(tuple(s) for s in (sizes or DEFAULT_SIZES))
    fps_choices = tuple(fps_choices or DEFAULT_FPS)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(f"{root} exists and is not an empty directory; choose a new path for the demo project")

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f".{root.name}.part")
    if tmp.exists():
        shutil.rmtree(tmp)
    children = np.random.SeedSequence(seed).spawn(n_videos)
    ids = _Ids(sly, seed)
    meta = _project_meta(sly)
    videos: list[DemoVideo] = []
    try:
        project = sly.VideoProject(str(tmp), sly.OpenMode.CREATE)
        project.set_meta(meta)
        n_a = (n_videos + 1) // 2
        datasets = {name: project.create_dataset(name) for name in (DATASETS if n_videos > 1 else DATASETS[:1])}
        jobs = []
        for i, child in enumerate(children):
            rng = np.random.default_rng(child)
            ds_name = DATASETS[0] if i < n_a else DATASETS[1]
            size = sizes[int(rng.integers(len(sizes)))]
            fps = fps_choices[int(rng.integers(len(fps_choices)))]
            num_frames = max(1, int(round(rng.uniform(lo, hi) * fps)))
            name = f"mouse_{i + 1:02d}.mp4"
            path = Path(datasets[ds_name].item_dir) / name
            jobs.append((ds_name, name, dict(path=path, num_frames=num_frames, fps=fps, size=size,
                                             seed=child.spawn(1)[0])))
        # Encoding releases the GIL, so threads render videos side by side.
        n_workers = max(1, min(workers or os.cpu_count() or 1, n_videos))
        with ThreadPoolExecutor(n_workers) as pool:
            futures = [pool.submit(render_video, **kw) for _, _, kw in jobs]
            for (ds_name, name, kw), fut in zip(jobs, futures):
                truth = fut.result()
                ds = datasets[ds_name]
                ann = _annotation(sly, meta, truth, with_boxes, ids)
                ds.add_item_file(name, str(kw["path"]), ann=ann.to_json(ids.key_id_map))
                final = root / ds_name / "video" / name
                videos.append(DemoVideo(**{**truth.__dict__, "path": final}, dataset=ds_name, name=name))
                logger.info("rendered %s/%s: %d frames at %g fps, %dx%d, %d tagged events", ds_name, name,
                            truth.num_frames, truth.fps, truth.width, truth.height, len(truth.behaviours))
        project.set_key_id_map(ids.key_id_map)
        if root.exists():
            root.rmdir()
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _verify(sly, root, videos)
    return DemoProject(root=root, videos=videos)
