"""The background-model mouse detector (``"background"``), which needs no weights:

1. each frame is shrunk (``cv2.INTER_AREA``) so its long side is ``max_side`` px and kept
   in memory as grayscale, plus a chroma channel (max - min of R, G, B) for colour videos;
2. the background is the per-pixel median of ``bg_samples`` frames spread evenly over the
   video, then *repaired*: the median is taken again over the sampled frames with the mouse
   found in each of them masked out, so an animal that rests in one place for most of the
   video does not stay printed into the background. An animal that sits in one place for
   (nearly) the whole video is found as a compact blob where the background differs from its
   own large-kernel median, and is told from arena parts (walls, bedding, marks) by
   frame-to-frame activity around it (grooming, breathing, head and limb movements); the
   floor estimate is painted over it;
3. each frame's global brightness is scaled onto the background's (lighting flicker) by the median
   over pixels of background / frame (not by whole-frame medians, which jump when floor and
   surround each fill about half the frame), ``|frame - background|`` is taken per channel (max over gray and chroma), thresholded at
   ``max(Otsu, noise_k * sigma, min_threshold)`` where sigma is a MAD noise estimate over the
   sampled frames, and cleaned with a morphological open (drops noise and the thin tail)
   and close (fills holes);
4. connected components are ranked by area; a component whose pixels contrast with their
   surroundings in the background but not in the frame is a "ghost" (the floor where the
   animal used to be) and is skipped; the largest remaining one above the minimum area is
   the mouse. When its differences fall in two clearly separate groups (a black body next to
   its fainter tail, motion blur or reflection on a wall) the box is cut to the strong group.
   The box is scaled back to the original frame; the score in (0, 1] grows with contrast over
   the noise floor and with area;
5. a frame without a blob inherits the previous box for up to ``carry_frames`` frames, its
   score multiplied by ``carry_decay`` per frame carried; after that the row is NaN.

Memory: the shrunk frames are held until the end of the video, ``h * w`` bytes per frame per
channel. For 640x480 at ``max_side=160`` (160x120) that is 19.2 kB per frame and channel:
about 0.7 GB for 20 min at 30 fps in grayscale, twice that when the chroma channel is on
(``use_color=None`` turns it on only for videos whose first frame has colour).

Frames arrive one at a time; without a ``num_frames`` hint the buffer grows by doubling.

Limits: an animal that does not move at all during the whole video, not even in place,
cannot be told from the arena and is not found (NaN rows; the crop then falls back to the
full frame). Only the largest moving thing is boxed: a hand in the arena that is larger than
the mouse takes the box for those frames.
"""


from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from .detect import DetectorBase, empty_boxes, register_detector
from .video import iter_frames_resized, probe

__all__ = ["BackgroundDetector"]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------
# background-model detector


MIN_GAIN_LEVEL = 8  # darker pixels are left out of the gain: their ratios are mostly noise


def _gain(img: np.ndarray, ref: np.ndarray) -> float:
    """The global brightness factor (in [0.5, 2]) that maps grey ``img`` onto ``ref``: the median over
    pixels (every other row and column) of ``ref / img``. A lighting change scales every pixel alike, so
    the ratio is the same everywhere but on the animal, whatever the scene's histogram; a ratio of
    whole-frame medians is not, when the floor and the surround each fill about half the frame and the
    median grey falls in the gap between them (the animal covering a little floor then moves it far)."""
    a = img[::2, ::2].astype(np.float32)
    ok = a >= MIN_GAIN_LEVEL
    if np.count_nonzero(ok) < 16:
        return 1.0
    return float(np.clip(np.median(ref[::2, ::2][ok] / a[ok]), 0.5, 2.0))


def _odd(k: int) -> int:
    return max(1, int(k) | 1)


@register_detector("background")
class BackgroundDetector(DetectorBase):
    """Median-background difference + largest non-ghost blob (see the module docstring).

    Args:
        max_side: long side (px) of the shrunk working copy.
        bg_samples: frames sampled evenly over the video for the background median.
        use_color: also difference a chroma channel; ``None`` decides from the first frame.
        noise_k: threshold floor in units of the MAD noise estimate.
        min_threshold: absolute threshold floor (gray levels).
        open_px, close_px: morphology kernel sizes at working resolution.
        min_area_frac: smallest blob, as a fraction of the working-frame area.
        carry_frames: frames a box is carried over a missing detection.
        carry_decay: score factor per carried frame.
        repair_background: re-estimate the background with the detected mouse masked out, and
            paint the floor over an animal that rests in the background for the whole video.
        activity_lag: frame gap of the activity map that tells a resting animal from arena parts.
        resting_activity_ratio: activity over its surroundings a resting-animal blob needs.
        refine_core: cut a blob down to its high-contrast body (drops tail, blur, reflections).
        core_ratio, core_separability: how clearly body and faint part must separate to cut.
    """

    # bumped when the code finds other boxes with the same parameters (cached boxes are keyed by it):
    # 2 = lighting gain from per-pixel ratios, not whole-frame medians
    VERSION = 2

    def __init__(
        self,
        max_side: int = 160,
        bg_samples: int = 48,
        use_color: bool | None = None,
        noise_k: float = 5.0,
        min_threshold: float = 12.0,
        open_px: int = 3,
        close_px: int = 5,
        min_area_frac: float = 0.0012,
        carry_frames: int = 5,
        carry_decay: float = 0.7,
        repair_background: bool = True,
        activity_lag: int = 15,
        resting_activity_ratio: float = 1.3,
        refine_core: bool = True,
        core_ratio: float = 2.0,
        core_separability: float = 0.88,
    ) -> None:
        if max_side < 16:
            raise ValueError(f"max_side must be >= 16 px, got {max_side}")
        if bg_samples < 3:
            raise ValueError(f"bg_samples must be >= 3, got {bg_samples}")
        if not 0.0 < carry_decay <= 1.0:
            raise ValueError(f"carry_decay must be in (0, 1], got {carry_decay}")
        if carry_frames < 0:
            raise ValueError(f"carry_frames must be >= 0, got {carry_frames}")
        self.max_side = int(max_side)
        self.bg_samples = int(bg_samples)
        self.use_color = use_color
        self.noise_k = float(noise_k)
        self.min_threshold = float(min_threshold)
        self.min_area_frac = float(min_area_frac)
        self.carry_frames = int(carry_frames)
        self.carry_decay = float(carry_decay)
        self.repair_background = bool(repair_background)
        self.activity_lag = int(activity_lag)
        self.resting_activity_ratio = float(resting_activity_ratio)
        self.refine_core = bool(refine_core)
        self.core_ratio = float(core_ratio)
        self.core_separability = float(core_separability)
        self._open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_odd(open_px), _odd(open_px)))
        self._close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_odd(close_px), _odd(close_px)))
        self._ring = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))

    def __repr__(self) -> str:
        return (
            f"BackgroundDetector(max_side={self.max_side}, bg_samples={self.bg_samples}, "
            f"use_color={self.use_color}, noise_k={self.noise_k}, min_threshold={self.min_threshold})"
        )

    # -- ingest ------------------------------------------------------------------------

    def _ingest(self, frames: Iterable[np.ndarray], num_frames: int | None) -> tuple[np.ndarray, int, int]:
        """Shrink every frame; returns (small (n, h, w, C) uint8, orig_w, orig_h)."""
        it: Iterator[np.ndarray] = iter(frames)
        buf: np.ndarray | None = None
        n = 0
        W = H = 0
        ws = hs = 0
        color = False
        for frame in it:
            if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
                shape = getattr(frame, "shape", type(frame).__name__)
                raise ValueError(f"frame {n}: expected an RGB (H, W, 3) uint8 array, got {shape}")
            if frame.dtype != np.uint8:
                raise ValueError(f"frame {n}: expected dtype uint8, got {frame.dtype}")
            if buf is None:
                H, W = frame.shape[:2]
                scale = min(1.0, self.max_side / max(H, W))
                ws, hs = max(1, round(W * scale)), max(1, round(H * scale))
                first = cv2.resize(frame, (ws, hs), interpolation=cv2.INTER_AREA)
                if self.use_color is None:
                    color = float(np.percentile(np.ptp(first, axis=2), 99)) > 12.0
                else:
                    color = bool(self.use_color)
                cap = max(1, int(num_frames)) if num_frames else 256
                buf = np.empty((cap, hs, ws, 2 if color else 1), np.uint8)
                resize = (ws, hs) != (W, H)
            elif frame.shape[:2] != (H, W):
                raise ValueError(
                    f"frame {n}: size {frame.shape[1]}x{frame.shape[0]} differs from frame 0 ({W}x{H})"
                )
            if n == buf.shape[0]:  # grow by doubling; untouched pages of np.empty cost no memory
                grown = np.empty((2 * n, *buf.shape[1:]), np.uint8)
                grown[:n] = buf
                buf = grown
            if color:
                small = cv2.resize(frame, (ws, hs), interpolation=cv2.INTER_AREA) if resize else frame
                buf[n, :, :, 0] = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
                buf[n, :, :, 1] = cv2.subtract(cv2.max(cv2.max(small[..., 0], small[..., 1]), small[..., 2]),
                                               cv2.min(cv2.min(small[..., 0], small[..., 1]), small[..., 2]))
            else:  # one channel to shrink instead of three: about twice as fast
                gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
                buf[n, :, :, 0] = cv2.resize(gray, (ws, hs), interpolation=cv2.INTER_AREA) if resize else gray
            n += 1
        if buf is None:
            return np.empty((0, 1, 1, 1), np.uint8), 0, 0
        if num_frames is not None and num_frames != n:
            logger.debug("detector: num_frames hint %s, got %d frames", num_frames, n)
        return buf[:n], W, H

    # -- per-frame core ----------------------------------------------------------------

    def _diff(self, small: np.ndarray, bg: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Brightness-normalised frame channels and the max-over-channels absolute difference."""
        gray = small[..., 0]
        alpha = _gain(gray, bg[..., 0])
        g = cv2.convertScaleAbs(gray, alpha=alpha) if abs(alpha - 1.0) > 0.01 else np.ascontiguousarray(gray)
        d = cv2.absdiff(g, bg[..., 0])
        chans = [g]
        if small.shape[2] > 1:
            c = np.ascontiguousarray(small[..., 1])
            d = cv2.max(d, cv2.absdiff(c, bg[..., 1]))
            chans.append(c)
        return d, chans

    def _blob(
        self, d: np.ndarray, chans: list[np.ndarray], bg_chans: list[np.ndarray], floor: float, min_area: int
    ) -> tuple[int, int, int, int, float] | None:
        """Largest non-ghost blob as (x, y, w, h, score) at working resolution, or None."""
        otsu, _ = cv2.threshold(d, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        thr = max(float(otsu), floor)
        _, mask = cv2.threshold(d, thr, 255, cv2.THRESH_BINARY)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._open)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._close)
        num, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if num <= 1:
            return None
        areas = stats[1:, cv2.CC_STAT_AREA]
        order = np.argsort(-areas)[:4] + 1
        hs, ws = d.shape
        for lab in order.tolist():
            x, y, w, h, area = (int(v) for v in stats[lab])
            if area < min_area:
                return None
            pad = 4
            x0, y0 = max(0, x - pad), max(0, y - pad)
            x1, y1 = min(ws, x + w + pad), min(hs, y + h + pad)
            inside = labels[y0:y1, x0:x1] == lab
            free = labels[y0:y1, x0:x1] == 0
            ring = cv2.dilate(inside.view(np.uint8), self._ring).astype(bool) & ~inside & free
            if ring.any():
                c_frame = max(abs(float(ch[y0:y1, x0:x1][inside].mean()) - float(ch[y0:y1, x0:x1][ring].mean()))
                              for ch in chans)
                c_bg = max(abs(float(b[y0:y1, x0:x1][inside].mean()) - float(b[y0:y1, x0:x1][ring].mean()))
                           for b in bg_chans)
                if c_bg > c_frame:
                    continue  # ghost: the floor where the animal was when the background was taken
            vals = d[y0:y1, x0:x1][inside]
            contrast = float(vals.mean())
            s_contrast = 1.0 - np.exp(-max(contrast / floor - 1.0, 0.0))
            s_area = min(1.0, area / (4.0 * min_area))
            score = float(np.clip(s_contrast * s_area, 0.01, 1.0))
            if self.refine_core:
                x, y, w, h = self._core(d[y0:y1, x0:x1], inside, vals, min_area, (x, y, w, h), (x0, y0))
            return x, y, w, h, score
        return None

    def _core(
        self, d: np.ndarray, inside: np.ndarray, vals: np.ndarray, min_area: int,
        box: tuple[int, int, int, int], origin: tuple[int, int],
    ) -> tuple[int, int, int, int]:
        """Shrink a blob to its high-contrast body when it also holds a faint part.

        A dark animal's tail, motion blur and its reflection on a wall differ from the floor
        far less than its body does; when the blob's differences split into two clearly
        separate groups (means at least ``core_ratio`` apart and Otsu separability, between-class
        over total variance, at least ``core_separability``; a uniform spread gives 0.75), the
        box is the bounding box of the strong group's largest part, grown by one working pixel.
        """
        t_hi, _ = cv2.threshold(vals.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        hi = vals > t_hi
        if not hi.any() or hi.all():
            return box
        v = vals.astype(np.float32)
        m_hi, m_lo, frac = float(v[hi].mean()), float(v[~hi].mean()), float(hi.mean())
        separability = frac * (1.0 - frac) * (m_hi - m_lo) ** 2 / max(float(v.var()), 1e-6)
        if m_hi < self.core_ratio * m_lo or separability < self.core_separability:
            return box  # one spread-out population (e.g. a patterned coat): keep the whole blob
        core = ((d > t_hi) & inside).view(np.uint8)
        core = cv2.morphologyEx(core, cv2.MORPH_OPEN, self._open)
        num, _, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
        if num <= 1:
            return box
        best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        cx, cy, cw, ch, carea = (int(v) for v in stats[best])
        if carea < min_area:
            return box
        bx, by, bw, bh = box
        x1 = max(bx, origin[0] + cx - 1)
        y1 = max(by, origin[1] + cy - 1)
        x2 = min(bx + bw, origin[0] + cx + cw + 1)
        y2 = min(by + bh, origin[1] + cy + ch + 1)
        return x1, y1, x2 - x1, y2 - y1

    # -- background --------------------------------------------------------------------

    def _floor(self, small: np.ndarray, idx: np.ndarray, bg: np.ndarray) -> float:
        diffs = np.stack([self._diff(small[i], bg)[0] for i in idx.tolist()])
        sigma = 1.4826 * float(np.median(diffs))
        return max(self.min_threshold, self.noise_k * sigma)

    def _sample_blobs(
        self, small: np.ndarray, idx: np.ndarray, bg: np.ndarray, floor: float
    ) -> list[tuple[int, int, int, int, float] | None]:
        bg_chans = [np.ascontiguousarray(bg[..., c]) for c in range(bg.shape[2])]
        min_area = self._min_area(*small.shape[1:3])
        out = []
        for i in idx.tolist():
            d, chans = self._diff(small[i], bg)
            out.append(self._blob(d, chans, bg_chans, floor, min_area))
        return out

    def _repair(self, samples: np.ndarray, bg: np.ndarray, blobs: list) -> np.ndarray:
        """Median over the sampled frames with each frame's detected mouse (dilated) masked out."""
        k, hs, ws, _ = samples.shape
        keep = np.zeros((k, hs, ws), bool)
        for j, blob in enumerate(blobs):
            if blob is None:
                continue  # nothing found: the animal may be hiding in the background here
            x, y, w, h, _ = blob
            mx, my = int(0.35 * w) + 2, int(0.35 * h) + 2
            keep[j] = True
            keep[j, max(0, y - my):y + h + my, max(0, x - mx):x + w + mx] = False
        if not keep.any():
            return bg
        vals = samples.astype(np.float32)
        vals[~keep] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels; replaced below
            rep = np.nanmedian(vals, axis=0)
        enough = keep.sum(axis=0) >= max(3, k // 8)
        fixed = np.where(enough[..., None], rep, bg.astype(np.float32))
        return np.clip(fixed.round(), 0, 255).astype(np.uint8)

    def _resting_animal(self, small: np.ndarray, bg: np.ndarray, floor: float) -> np.ndarray:
        """Paint the floor over an animal that sits in the background for (nearly) the whole video.

        Candidates are compact blobs where the background differs from its own large-kernel
        median (the floor without small objects). The one with the most frame-to-frame
        activity (frames ``lag`` apart) is taken if it is clearly more active than its
        surroundings; inert arena structures (walls, bedding, marks) are not.
        """
        n, hs, ws, nc = small.shape
        side = max(hs, ws)
        k = _odd(int(0.3 * side))
        floors = [cv2.medianBlur(np.ascontiguousarray(bg[..., c]), k) for c in range(nc)]
        sal = None
        for c in range(nc):
            s = cv2.absdiff(np.ascontiguousarray(bg[..., c]), floors[c])
            sal = s if sal is None else cv2.max(sal, s)
        otsu, _ = cv2.threshold(sal, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        _, mask = cv2.threshold(sal, max(float(otsu), floor), 255, cv2.THRESH_BINARY)
        k5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        mask = cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_OPEN, k5), cv2.MORPH_CLOSE, k5)
        num, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        min_area = 2 * self._min_area(hs, ws)
        # compact and thick enough: drops wall edges and lines, keeps an animal-shaped blob
        cands = [lab for lab in range(1, num)
                 if stats[lab, 4] >= min_area and min(stats[lab, 2], stats[lab, 3]) >= 0.04 * side
                 and stats[lab, 4] >= 0.3 * stats[lab, 2] * stats[lab, 3]]  # columns: x, y, w, h, area
        if not cands or n < 3:
            return bg
        lag = max(1, min(self.activity_lag, n // 4))
        pairs = np.unique(np.linspace(0, n - 1 - lag, min(n - lag, 600)).round().astype(np.int64))
        act = np.zeros((hs, ws), np.float32)
        for i in pairs.tolist():
            a, b = small[i, ..., 0], small[i + lag, ..., 0]
            gain = _gain(b, a)  # flicker is not activity
            if abs(gain - 1.0) > 0.01:
                b = cv2.convertScaleAbs(b, alpha=gain)
            act += cv2.absdiff(a, b)
        act /= len(pairs)
        # Activity is compared between the blob's neighbourhood (limbs, head and tail move
        # around a still body) and a ring beyond it.
        near = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_odd(int(0.08 * side)),) * 2)
        k11 = np.ones((11, 11), np.uint8)
        best, best_sum, best_ratio, best_reg, best_ring = None, -1.0, 0.0, None, 0.0
        for lab in cands:
            reg = cv2.dilate((labels == lab).view(np.uint8), k5)
            zone = cv2.dilate(reg, near)
            ring = cv2.dilate(zone, k11).astype(bool) & ~zone.astype(bool)
            zone_b = zone.astype(bool)
            total = float(act[zone_b].sum())
            if total > best_sum:
                ring_act = float(act[ring].mean()) + 0.02
                best, best_sum, best_reg, best_ring = lab, total, reg.astype(bool), ring_act
                best_ratio = float(act[zone_b].mean()) / ring_act
        if best is None or best_ratio < self.resting_activity_ratio:
            logger.debug("no resting animal in the background (best activity ratio %.2f)", best_ratio)
            return bg
        # Keep the part of the blob near activity: an animal against a wall merges with it.
        active = (act > 2.0 * best_ring).view(np.uint8)
        best_reg = best_reg & cv2.dilate(active, near).astype(bool)
        x, y, w, h, area = (int(v) for v in stats[best])
        logger.info("animal resting in the background at (%d, %d, %d, %d) working px (activity ratio %.1f); "
                    "painting the floor over it", x, y, w, h, best_ratio)
        out = bg.copy()
        for c in range(nc):
            out[..., c][best_reg] = floors[c][best_reg]
        return out

    def _background(self, small: np.ndarray) -> tuple[np.ndarray, float]:
        """Background (h, w, C) uint8 and the threshold floor."""
        n = small.shape[0]
        idx = np.unique(np.linspace(0, n - 1, min(self.bg_samples, n)).round().astype(np.int64))
        samples = small[idx]
        bg = np.median(samples, axis=0).round().astype(np.uint8)
        floor = self._floor(small, idx, bg)
        if not self.repair_background or len(idx) < 3:
            return bg, floor
        bg = self._repair(samples, bg, self._sample_blobs(small, idx, bg, floor))
        floor = self._floor(small, idx, bg)
        bg = self._resting_animal(small, bg, floor)
        return bg, floor

    def _min_area(self, hs: int, ws: int) -> int:
        return max(6, int(round(self.min_area_frac * hs * ws)))

    # -- public ------------------------------------------------------------------------

    def detect_video(self, path: str | Path) -> np.ndarray:
        """Boxes for every frame of ``path``, decoded once at the working size: the decoder's scaler
        shrinks each frame while converting its colours, which costs far less than converting the
        full frame and shrinking it here. Boxes are returned in original-frame pixels."""
        info = probe(path)
        scale = min(1.0, self.max_side / max(info.height, info.width))
        if scale >= 1.0:
            return super().detect_video(path)
        ws, hs = max(1, round(info.width * scale)), max(1, round(info.height * scale))
        boxes = self.detect((f for _, f in iter_frames_resized(path, ws, hs)), num_frames=info.num_frames)
        boxes[:, [0, 2]] *= info.width / ws
        boxes[:, [1, 3]] *= info.height / hs
        return boxes

    def detect(self, frames: Iterable[np.ndarray], *, num_frames: int | None = None) -> np.ndarray:
        """Boxes (N, 5) float32 in original pixels for every frame of ``frames``."""
        small, W, H = self._ingest(frames, num_frames)
        n = small.shape[0]
        if n == 0:
            return empty_boxes(0)
        hs, ws = small.shape[1:3]
        bg, floor = self._background(small)
        bg_chans = [np.ascontiguousarray(bg[..., c]) for c in range(bg.shape[2])]
        min_area = self._min_area(hs, ws)
        sx, sy = W / ws, H / hs
        out = empty_boxes(n)
        last: np.ndarray | None = None
        since = 0
        for i in range(n):
            d, chans = self._diff(small[i], bg)
            blob = self._blob(d, chans, bg_chans, floor, min_area)
            if blob is not None:
                x, y, w, h, score = blob
                out[i] = (x * sx, y * sy, min(W, (x + w) * sx), min(H, (y + h) * sy), score)
                last, since = out[i].copy(), 0
            elif last is not None and since < self.carry_frames:
                since += 1
                out[i, :4] = last[:4]
                out[i, 4] = last[4] * self.carry_decay**since
        found = int(np.isfinite(out[:, 0]).sum())
        logger.info("background detector: %d/%d frames with a box (floor %.1f, %dx%d working size)",
                    found, n, floor, ws, hs)
        return out
