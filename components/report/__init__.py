"""Benchmark report: figures (:mod:`.figures`), the HTML page (:mod:`.page`) and the per-frame /
per-bout prediction files (:mod:`.files`).

The HTML page is built from the result of :func:`mvd.metrics.evaluate`; its images are
embedded as base64 PNG data URIs, so the single file can be mailed or attached as is.
Class colours are fixed by class order (:func:`class_colors`) so every figure agrees.
"""

from .figures import (
    IDLE_COLOR,
    PALETTE,
    agreement_figure,
    class_colors,
    confusion_png,
    ethogram_png,
)
from .files import BOUTS_CSV_HEADER, FRAMES_CSV_BASE, write_bouts_csv, write_frames_csv
from .page import write_report

__all__ = [
    "IDLE_COLOR",
    "PALETTE",
    "class_colors",
    "ethogram_png",
    "confusion_png",
    "agreement_figure",
    "write_report",
    "write_frames_csv",
    "write_bouts_csv",
    "FRAMES_CSV_BASE",
    "BOUTS_CSV_HEADER",
]
