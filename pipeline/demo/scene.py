"""The static scene and the animal's look: arena, floor, lighting, fur, body size."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

logger = logging.getLogger(__name__)


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
