"""Per-frame mouse boxes without learned weights, behind a small detector registry.

Every detector turns a stream of RGB uint8 frames into a float32 ``(N, 5)`` array of
``x1, y1, x2, y2, score`` rows in original-frame pixels; a NaN row means no mouse was found
in that frame. Frames are consumed as an iterable, so a caller can decode a video once and
feed the same frames elsewhere; :func:`detect_video` is the convenience for a file.

The default is :class:`mvd.background.BackgroundDetector` (``"background"``), which needs no
weights.

Adding a learned detector: write a class with ``detect(frames, *, num_frames=None)`` and
``detect_video(path)`` (subclass :class:`DetectorBase` to get the latter for free), decorate
it with ``@register_detector("name")`` in a module that is imported before use, and select
it with ``make_detector("name", **kwargs)``. Load its weights from an explicit path
argument; nothing may download at run time.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from mvd.video import iter_frames

__all__ = [
    "Detector",
    "DetectorBase",
    "BackgroundDetector",
    "register_detector",
    "make_detector",
    "available_detectors",
    "detect_video",
    "empty_boxes",
]

logger = logging.getLogger(__name__)


def empty_boxes(n: int) -> np.ndarray:
    """An all-NaN ``(n, 5)`` float32 boxes array."""
    return np.full((n, 5), np.nan, dtype=np.float32)


@runtime_checkable
class Detector(Protocol):
    """Turns RGB uint8 frames into per-frame ``(N, 5)`` float32 boxes (NaN row = none)."""

    def detect(self, frames: Iterable[np.ndarray], *, num_frames: int | None = None) -> np.ndarray:
        """Boxes for every frame of ``frames``; ``num_frames`` is an optional size hint."""
        ...

    def detect_video(self, path: str | Path) -> np.ndarray:
        """Boxes for every frame of the video file at ``path``."""
        ...


class DetectorBase:
    """Mixin giving :meth:`detect_video` to any class that implements ``detect``."""

    def detect(self, frames: Iterable[np.ndarray], *, num_frames: int | None = None) -> np.ndarray:
        raise NotImplementedError

    def detect_video(self, path: str | Path) -> np.ndarray:
        """Decode ``path`` once (sequentially) and detect on every frame."""
        return self.detect(frame for _, frame in iter_frames(path))


# ---------------------------------------------------------------------------------------
# registry

_T = TypeVar("_T", bound=Callable[..., Detector])
_REGISTRY: dict[str, Callable[..., Detector]] = {}


def register_detector(name: str) -> Callable[[_T], _T]:
    """Class/factory decorator: make a detector available as ``make_detector(name)``."""
    if not name or not isinstance(name, str):
        raise ValueError(f"detector name must be a non-empty string, got {name!r}")

    def deco(factory: _T) -> _T:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"detector name {name!r} is already registered to {_REGISTRY[name]!r}")
        _REGISTRY[name] = factory
        return factory

    return deco


def available_detectors() -> list[str]:
    """Registered detector names, sorted."""
    return sorted(_REGISTRY)


def make_detector(name: str, **kwargs: object) -> Detector:
    """Build the detector registered as ``name`` with ``kwargs``."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise ValueError(f"unknown detector {name!r}; available detectors: {', '.join(available_detectors())}")
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as e:
        raise ValueError(f"bad options for detector {name!r}: {e}") from e
    return factory(**kwargs)


def detect_video(path: str | Path, detector: str | Detector = "background", **kwargs: object) -> np.ndarray:
    """Boxes for every frame of ``path`` with a detector given by name (plus options) or instance."""
    det = make_detector(detector, **kwargs) if isinstance(detector, str) else detector
    return det.detect_video(path)


# the default detector registers itself on import
from .background import BackgroundDetector  # noqa: E402, F401
