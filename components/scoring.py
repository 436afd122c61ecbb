"""Label the videos of a manifest split under a model's inference contract, and their truth.

The benchmark (test videos) and the post-processing fit after training (validation videos)
both go through :func:`score_records`, which calls :func:`mvd.infer.label_video` with the
per-frame boxes bbox-crop stored for each video. A video that cannot be scored is reported and
the others go on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn

from mvd.bouts import Bout, intervals_to_frame_labels
from mvd.card import InferenceSpec
from mvd.crops_index import CropsIndex, CropsIndexError
from mvd.infer import Labelled, label_video
from mvd.labels import idle_index
from mvd.manifest import VideoRecord
from mvd.video import VideoReadError

logger = logging.getLogger(__name__)


class Scored(NamedTuple):
    record: VideoRecord
    labelled: Labelled
    truth: np.ndarray  # (N,) per-frame true labels
    true_bouts: list[Bout]  # annotated action events, kept apart even when they touch

    @property
    def name(self) -> str:
        """The video's unique file name (its predictions are written under it)."""
        return Path(self.record.file).name


def truth_of(rec: VideoRecord, labels: list[str], num_frames: int) -> tuple[np.ndarray, list[Bout]]:
    """Per-frame labels and annotated action bouts of a video, clipped to ``num_frames``."""
    ivs = [(labels.index(i.label), i.start, min(i.end, num_frames - 1)) for i in rec.intervals if i.start < num_frames]
    idle = idle_index(labels)
    bouts = sorted((Bout(k, s, e) for k, s, e in ivs if k != idle), key=lambda b: (b.start, b.end))
    return intervals_to_frame_labels(num_frames, ivs, background=idle), bouts


def score_records(model: nn.Module, spec: InferenceSpec, manifest_dir: str | Path, records: list[VideoRecord],
                  index: CropsIndex, *, device: torch.device, amp: bool = True,
                  progress: bool = True) -> tuple[list[Scored], list[dict[str, str]]]:
    """(scored videos, failures ``{video, reason}``) for ``records``."""
    labels = spec.postprocess.labels
    scored, failures = [], []
    for rec in records:
        try:
            boxes = index.load_boxes(rec.id)
            lab = label_video(model, spec, Path(manifest_dir) / rec.file, boxes, device=device, amp=amp,
                              progress=progress)
        except (VideoReadError, CropsIndexError, ValueError) as e:
            logger.error("%s: cannot be scored: %s", rec.id, e)
            failures.append({"video": rec.id, "reason": str(e)})
            continue
        truth, bouts = truth_of(rec, labels, len(lab.probs))
        scored.append(Scored(rec, lab, truth, bouts))
    return scored, failures
