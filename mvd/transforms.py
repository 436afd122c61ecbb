"""Clip transforms: every frame of a clip gets the same spatial augmentation.

Training: RandAugment (timm, replayed with one random state for all frames), random-resized
crop, horizontal/vertical flip, optional colour jitter and inversion, normalisation, random
erasing (timm, one region through all frames). Evaluation: resize to the input size and normalise.
Input ``(T, H, W, 3)`` uint8, output ``(3, T, S, S)`` float32.
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from timm.data import rand_augment_transform
from timm.data.random_erasing import RandomErasing

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def normalize(x: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    """(…, 3, T, H, W) float in [0, 1] → normalised (channel axis at -4)."""
    shape = (3, 1, 1, 1)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(shape)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(shape)
    return (x - m) / s


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 → (3, T, H, W) float in [0, 1]."""
    return torch.from_numpy(np.array(frames, dtype=np.uint8)).permute(3, 0, 1, 2).float().div_(255.0)


class ClipTransform:
    def __init__(
        self,
        input_size: int,
        train: bool,
        *,
        rrc_scale: tuple[float, float] = (0.7, 1.0),
        flip: bool = True,
        rand_augment: str = "",
        reprob: float = 0.0,
        color_jitter: float = 0.0,
        invert_prob: float = 0.0,
    ):
        self.size = int(input_size)
        self.train = train
        self.rrc_scale = tuple(rrc_scale)
        self.flip = flip
        self.rand_augment = None
        if train and rand_augment:
            hparams = {"translate_const": int(self.size * 0.45), "img_mean": tuple(round(255 * x) for x in MEAN)}
            self.rand_augment = rand_augment_transform(rand_augment, hparams)
        self.color_jitter = color_jitter if train else 0.0
        self.invert_prob = invert_prob if train else 0.0
        self.erase = RandomErasing(reprob, mode="pixel", max_count=1, device="cpu") if train and reprob > 0 else None

    def _rand_augment(self, frames: np.ndarray) -> np.ndarray:
        py_state, np_state = random.getstate(), np.random.get_state()
        out = []
        for f in frames:
            random.setstate(py_state)
            np.random.set_state(np_state)
            out.append(np.asarray(self.rand_augment(Image.fromarray(f))))
        return np.stack(out)

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        """(3, T, h, w) → (3, T, size, size), antialiased bilinear; unchanged when already that size."""
        if x.shape[-2:] == (self.size, self.size):
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)

    def _resized_crop(self, x: torch.Tensor) -> torch.Tensor:
        """Random-resized crop of (3, T, H, W), same box for all frames (aspect 3/4–4/3)."""
        _, t, h, w = x.shape
        if self.rrc_scale[0] >= 1.0:  # whole frame: only resize
            return self._resize(x)
        area = h * w
        for _ in range(10):
            target = area * float(torch.empty(1).uniform_(*self.rrc_scale))
            log_r = torch.empty(1).uniform_(np.log(3 / 4), np.log(4 / 3))
            ratio = float(torch.exp(log_r))
            cw = int(round((target * ratio) ** 0.5))
            ch = int(round((target / ratio) ** 0.5))
            if 0 < cw <= w and 0 < ch <= h:
                i = int(torch.randint(0, h - ch + 1, (1,)))
                j = int(torch.randint(0, w - cw + 1, (1,)))
                break
        else:
            ch, cw, i, j = h, w, 0, 0
        return self._resize(x[:, :, i:i + ch, j:j + cw])

    def _jitter(self, x: torch.Tensor) -> torch.Tensor:
        """Brightness, contrast and saturation scaled by 1 ± color_jitter, one draw per clip."""
        j = self.color_jitter
        b, c, sat = (1 + j * (2 * torch.rand(3) - 1)).tolist()
        x = x * b
        mean = x.mean()
        x = (x - mean) * c + mean
        gray = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0)
        x = (x - gray) * sat + gray
        return x.clamp_(0.0, 1.0)

    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        if self.rand_augment is not None:
            frames = self._rand_augment(frames)
        x = to_tensor(frames)
        if self.train:
            x = self._resized_crop(x)
            if self.flip and torch.rand(1) < 0.5:
                x = x.flip(-1)
            if self.flip and torch.rand(1) < 0.5:  # top-view footage has no preferred vertical direction
                x = x.flip(-2)
            if self.color_jitter > 0:
                x = self._jitter(x)
            if self.invert_prob > 0 and torch.rand(1) < self.invert_prob:  # dark mice on light floors and vice versa
                x = 1.0 - x
        else:
            x = self._resize(x)
        x = normalize(x)
        if self.erase is not None:
            c, t, h, w = x.shape
            x = self.erase(x.permute(1, 0, 2, 3).reshape(t * c, h, w)).reshape(t, c, h, w).permute(1, 0, 2, 3)
        return x.contiguous()
