"""When the animal rests, walks, grooms and twitches: tagged behaviours and the activity timeline."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from .truth import BEHAVIOURS, GROOM, GROOMING, REST, TWITCH, TWITCH_ACT, WALK

logger = logging.getLogger(__name__)


_GROOM_S = (2.0, 8.0)
_TWITCH_S = (0.1, 0.3)
_GAP_S = 1.5  # minimum idle time between two tagged events
_MARGIN_S = 1.0  # idle time kept at the start and end of a video
_MAX_GROOM_FRACTION = 0.35


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
