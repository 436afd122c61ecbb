"""Per-frame class probabilities -> final per-frame labels and bouts: the one post-processor.

Benchmark, predict, calibration, metrics and the report all go through :class:`PostProcess`;
nothing else turns probabilities into labels. Rules are per action class and in seconds, so a
model's rules carry across frame rates (each video's own fps converts them to frames):

1. ``smooth_s``: a centred moving average of the class probability over that many seconds
   (an odd number of frames; 0 = none).
2. ``threshold``: a frame belongs to the class when its smoothed probability reaches the
   threshold; when several action classes pass, the one with the highest smoothed probability
   wins; when none passes, the frame is idle.
3. ``merge_gap_s``: idle gaps of at most that many seconds between two bouts of the class are
   filled with the class (one bout, as annotators mark it).
4. ``peak_threshold``: a bout is kept only when its smoothed probability reaches this value
   somewhere (hysteresis, or double thresholding, as in sound event detection: a high
   threshold decides *whether* an event happened, the lower ``threshold`` decides *where* it
   starts and ends, so a short event is neither missed nor clipped). At or below ``threshold``
   it adds nothing.
5. ``min_duration_s``: bouts shorter than that become idle.

The legacy decision (``decision="argmax"``) reproduces models made before rules were fitted:
the argmax class, kept only when its raw probability reaches its threshold, then the minimum
duration; no smoothing or gap filling.

The final labels' non-idle runs are the bouts (:func:`mvd.bouts.bouts_from_labels`), scored by
their mean raw probability.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .bouts import Bout, bouts_from_labels, labels_from_probs
from .labels import idle_index

__all__ = ["ClassRule", "PostProcess", "Processed", "class_runs", "smooth", "runs", "fill_gaps", "keep_peaked", "drop_short",
           "seconds_to_frames"]

DECISIONS = ("threshold", "argmax")


@dataclass(frozen=True)
class ClassRule:
    """Post-processing of one action class (durations in seconds)."""

    threshold: float = 0.5
    smooth_s: float = 0.0
    min_duration_s: float = 0.0
    merge_gap_s: float = 0.0
    peak_threshold: float = 0.0  # a bout must reach it somewhere; ≤ threshold = no extra condition

    def __post_init__(self) -> None:
        for name in ("threshold", "peak_threshold"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        for name in ("smooth_s", "min_duration_s", "merge_gap_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a number of seconds ≥ 0, got {v}")


class Processed(NamedTuple):
    labels: np.ndarray  # (N,) int64 final label per frame
    bouts: list[Bout]  # non-idle runs of ``labels``, frame order


def seconds_to_frames(seconds: float, fps: float) -> int:
    """Whole frames in ``seconds`` at ``fps`` (rounded; 0 stays 0)."""
    return int(round(float(seconds) * float(fps)))


def smooth(p: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over ``width`` frames (made odd), edges averaged over what exists."""
    p = np.asarray(p, dtype=np.float64)
    if width <= 1 or p.size == 0:
        return p
    half = width // 2
    c = np.concatenate(([0.0], np.cumsum(p)))
    i = np.arange(p.size)
    lo = np.maximum(0, i - half)
    hi = np.minimum(p.size, i + half + 1)
    return (c[hi] - c[lo]) / (hi - lo)


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the runs of True in a boolean mask; ends inclusive."""
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    d = np.diff(np.concatenate(([0], m.view(np.int8), [0])))
    return np.flatnonzero(d == 1).astype(np.int64), (np.flatnonzero(d == -1) - 1).astype(np.int64)


def fill_gaps(starts: np.ndarray, ends: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge runs separated by at most ``max_gap`` frames."""
    if max_gap <= 0 or starts.size < 2:
        return starts, ends
    gaps = starts[1:] - ends[:-1] - 1
    new = np.concatenate(([True], gaps > max_gap))
    group = np.cumsum(new) - 1
    s = starts[new]
    e = np.zeros(s.size, np.int64)
    np.maximum.at(e, group, ends)
    return s, e


def keep_peaked(ps: np.ndarray, starts: np.ndarray, ends: np.ndarray, peak: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep runs whose maximum of ``ps`` reaches ``peak``."""
    if starts.size == 0:
        return starts, ends
    bounds = np.stack([starts, ends + 1], axis=1).ravel()
    top = np.maximum.reduceat(np.append(np.asarray(ps, np.float64), -np.inf), bounds)[::2]
    keep = top >= peak
    return starts[keep], ends[keep]


def drop_short(starts: np.ndarray, ends: np.ndarray, min_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep runs of at least ``min_len`` frames."""
    if min_len <= 1:
        return starts, ends
    keep = ends - starts + 1 >= min_len
    return starts[keep], ends[keep]


def class_runs(ps: np.ndarray, fps: float, rule: ClassRule,
               base: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The bouts one class gets from its smoothed probability ``ps`` under ``rule`` (before other
    classes); ``base`` may give ``runs(ps >= rule.threshold)`` when it is already known."""
    s, e = runs(ps >= rule.threshold) if base is None else base
    s, e = fill_gaps(s, e, seconds_to_frames(rule.merge_gap_s, fps))
    if rule.peak_threshold > rule.threshold:
        s, e = keep_peaked(ps, s, e, rule.peak_threshold)
    return drop_short(s, e, seconds_to_frames(rule.min_duration_s, fps))


@dataclass
class PostProcess:
    """Per-class rules over a label map; ``source`` says per class where each rule came from
    (``fitted`` on validation videos, ``config`` pinned, or ``default``)."""

    labels: list[str]
    rules: dict[str, ClassRule]
    idle: int = 0
    decision: str = "threshold"
    source: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, got {self.decision!r}")
        if not 0 <= self.idle < len(self.labels):
            raise ValueError(f"idle index {self.idle} is outside the label map {self.labels}")
        unknown = sorted(set(self.rules) - set(self.labels))
        if unknown:
            raise ValueError(f"post-processing rules name classes {unknown} that are not in the label map {self.labels}")
        for name in self.action_labels:
            self.rules.setdefault(name, ClassRule())
            self.source.setdefault(name, "default")

    @property
    def action_labels(self) -> list[str]:
        return [n for k, n in enumerate(self.labels) if k != self.idle]

    @classmethod
    def default(cls, labels: Sequence[str], idle: int | None = None) -> PostProcess:
        return cls(list(labels), {}, idle_index(labels) if idle is None else idle)

    # -------------------------------------------------------------- (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "idle": self.labels[self.idle],
                "classes": {n: {**asdict(self.rules[n]), "source": self.source.get(n, "default")}
                            for n in self.action_labels}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], labels: Sequence[str], where: str = "post-processing") -> PostProcess:
        labels = list(labels)
        try:
            idle_name = d.get("idle", labels[idle_index(labels)])
            if idle_name not in labels:
                raise ValueError(f"idle class {idle_name!r} is not in the label map {labels}")
            rules, source = {}, {}
            for name, r in dict(d.get("classes", {})).items():
                r = dict(r)
                source[name] = str(r.pop("source", "default"))
                rules[name] = ClassRule(**{k: float(v) for k, v in r.items()})
            return cls(labels, rules, labels.index(idle_name), str(d.get("decision", "threshold")), source)
        except (TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"{where}: {e}") from e

    # -------------------------------------------------------------- application

    def apply(self, probs: np.ndarray, fps: float) -> Processed:
        """Final labels and bouts of one video from its per-frame probabilities ``(N, C)``."""
        p = np.asarray(probs, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != len(self.labels):
            raise ValueError(f"probabilities must have shape (frames, {len(self.labels)}) for classes "
                             f"{self.labels}, got {p.shape}")
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be > 0, got {fps}")
        n = p.shape[0]
        if self.decision == "argmax":
            lab = labels_from_probs(p, thresholds={self.labels.index(c): r.threshold for c, r in self.rules.items()},
                                    background=self.idle)
            out = np.full(n, self.idle, np.int64)
            for b in bouts_from_labels(lab):
                if b.label != self.idle and b.length >= seconds_to_frames(
                        self.rules[self.labels[b.label]].min_duration_s, fps):
                    out[b.start:b.end + 1] = b.label
        else:
            best = np.full(n, -np.inf)
            out = np.full(n, self.idle, np.int64)
            for name in self.action_labels:
                k = self.labels.index(name)
                rule = self.rules[name]
                ps = smooth(p[:, k], seconds_to_frames(rule.smooth_s, fps) | 1)
                s, e = class_runs(ps, fps, rule)
                mask = np.zeros(n, bool)
                for a, b in zip(s.tolist(), e.tolist()):
                    mask[a:b + 1] = True
                win = mask & (ps > best)
                out[win] = k
                best[win] = ps[win]
            # another class may have taken frames out of a bout: drop the pieces now too short
            for b in bouts_from_labels(out):
                if b.label != self.idle and b.length < seconds_to_frames(
                        self.rules[self.labels[b.label]].min_duration_s, fps):
                    out[b.start:b.end + 1] = self.idle
        bouts = bouts_from_labels(out, p, include=[k for k in range(len(self.labels)) if k != self.idle])
        return Processed(out, bouts)
