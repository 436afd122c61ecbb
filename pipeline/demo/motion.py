"""The animal's motion in the arena over time, from its activity timeline."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from .scene import _Look, _Scene
from .truth import GROOM, GROOMING, REST, TWITCH_ACT, WALK

logger = logging.getLogger(__name__)


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
