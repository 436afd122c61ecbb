"""Clip transforms, batch-wise on the device that runs the model.

The data loader hands over stored clips as uint8 ``(B, T, H, W, 3)``; :class:`ClipAugment`
turns a batch into normalised model input ``(B, 3, T, S, S)`` float32 on whatever device the
batch is on (the GPU during training), with its own random draw per clip and the same spatial
augmentation for every frame of a clip.

Training: RandAugment (torchvision, on the uint8 frames; the timm-style spec
``rand-m<M>-n<N>[-mstd<S>][-inc1]`` picks the number of ops and their magnitude, ``mstd`` draws
each clip's magnitude around M), random-resized crop, flips (horizontal, vertical and, for square frames, diagonal: the 8
symmetries of a square, since top-view footage has no preferred direction), optional lower
resolution (the clip shrunk and enlarged back: an animal filmed smaller in the frame or with a
coarser camera, whose crop is enlarged from fewer pixels), optional colour jitter and inversion,
normalisation, random erasing (timm, one region through all frames).
Evaluation: resize to the input size and normalise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.data.random_erasing import RandomErasing
from torchvision import tv_tensors
from torchvision.transforms import RandomResizedCrop, v2

from .config import TTA_VIEWS
from .randaugment import parse_rand_augment

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
_BINS = 31  # torchvision's magnitude scale 0..30 stands for the spec's 0..10

def normalize(x: torch.Tensor, mean=MEAN, std=STD, *, inplace: bool = False) -> torch.Tensor:
    """(…, 3, T, H, W) float in [0, 1] → normalised (channel axis at -4)."""
    shape = (3, 1, 1, 1)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(shape)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(shape)
    return x.sub_(m).div_(s) if inplace else (x - m) / s


def _check(clips: torch.Tensor) -> None:
    if clips.dtype != torch.uint8 or clips.ndim != 5 or clips.shape[-1] != 3:
        raise ValueError(f"expected a uint8 batch of RGB clips (B, T, H, W, 3), got {clips.dtype} {tuple(clips.shape)}")


def to_float(clips: torch.Tensor) -> torch.Tensor:
    """(B, T, H, W, 3) uint8 → contiguous (B, 3, T, H, W) float32 in [0, 1] (a new tensor)."""
    _check(clips)
    return clips.permute(0, 4, 1, 2, 3).to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)


def to_model_input(clips: torch.Tensor) -> torch.Tensor:
    """(B, T, S, S, 3) uint8 crops at the input size → normalised (B, 3, T, S, S) float32."""
    return normalize(to_float(clips), inplace=True)




def square_views(x: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` (1, 2, 4 or 8) of the symmetries of a square applied to (B, …, S, S) input,
    stacked view-major into (n × B, …, S, S): identity, horizontal flip, vertical flip, both (a half
    turn), then those four transposed about the main diagonal. Each choice of ``n`` is a group, so a
    mean over its views does not change when the input is flipped by one of them."""
    if n not in TTA_VIEWS:
        raise ValueError(f"the number of square views must be one of {TTA_VIEWS}, got {n}")
    if n == 1:
        return x
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"views of a square need square input, got {tuple(x.shape[-2:])}")
    views = [x, x.flip(-1)]
    if n >= 4:
        views += [x.flip(-2), x.flip(-2, -1)]
    if n == 8:
        views += [v.transpose(-2, -1) for v in views]
    return torch.cat(views)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(…, 3, T, h, w) → (…, 3, T, size, size), antialiased bilinear; unchanged when already that size."""
    if x.shape[-2:] == (size, size):
        return x
    lead = x.shape[:-3]
    y = F.interpolate(x.reshape(-1, *x.shape[-3:]), size=(size, size), mode="bilinear",
                      align_corners=False, antialias=True)
    return y.reshape(*lead, *y.shape[-3:])



class ClipAugment:
    """Batch transform from stored uint8 clips to model input (see the module docstring)."""

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
        low_res_prob: float = 0.0,
        low_res_scale: float = 0.5,
    ):
        self.size = int(input_size)
        self.train = train
        self.rrc_scale = tuple(rrc_scale)
        self.flip = flip
        self.rand_augment = None
        if train and rand_augment:
            n, self.ra_magnitude, self.ra_std = parse_rand_augment(rand_augment)
            fill = [round(255 * x) for x in MEAN]
            self.rand_augment = v2.RandAugment(num_ops=n, num_magnitude_bins=_BINS,
                                               interpolation=v2.InterpolationMode.BILINEAR, fill=fill)
        self.color_jitter = color_jitter if train else 0.0
        self.invert_prob = invert_prob if train else 0.0
        self.low_res_prob = low_res_prob if train else 0.0
        self.low_res_scale = float(low_res_scale)
        self.erase = RandomErasing(reprob, mode="pixel", max_count=1, device="cpu") if train and reprob > 0 else None

    def _rand_augment(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W, 3) uint8 → the same, one op draw per clip applied to all its frames."""
        out = torch.empty_like(clips)
        for b in range(len(clips)):
            mag = self.ra_magnitude + (self.ra_std * float(torch.randn(1)) if self.ra_std > 0 else 0.0)
            self.rand_augment.magnitude = int(round(min(max(mag, 0.0), 10.0) * (_BINS - 1) / 10))
            video = tv_tensors.Video(clips[b].permute(0, 3, 1, 2))  # (T, 3, H, W): same op for every frame
            out[b] = self.rand_augment(video).permute(0, 2, 3, 1)
        return out

    def _resized_crop(self, x: torch.Tensor) -> torch.Tensor:
        """Random-resized crop of (B, 3, T, H, W), one box per clip."""
        if self.rrc_scale[0] >= 1.0:  # whole frame: only resize
            return resize(x, self.size)
        crops = []
        for clip in x:  # (3, T, H, W): torchvision's crop-box draw, aspect 3/4–4/3
            i, j, ch, cw = RandomResizedCrop.get_params(clip, list(self.rrc_scale), [3 / 4, 4 / 3])
            crops.append(resize(clip[..., i:i + ch, j:j + cw], self.size))
        return torch.stack(crops)

    @staticmethod
    def _chosen(p: float, n: int) -> torch.Tensor:
        """Indices of the clips (of ``n``) that an event of probability ``p`` hits, one draw per clip."""
        return torch.nonzero(torch.rand(n) < p).flatten()

    def _flip(self, clips: torch.Tensor, owned: bool) -> torch.Tensor:
        """Horizontal, vertical and (square frames) diagonal flips of (B, T, H, W, 3) uint8, each with
        probability ½ per clip: every one of the 8 symmetries of a square is equally likely, as a top-view
        animal may face any way."""
        ops = [lambda c: c.flip(-2), lambda c: c.flip(-3)]
        if clips.shape[-3] == clips.shape[-2]:
            ops.append(lambda c: c.transpose(-3, -2))
        for op in ops:
            idx = self._chosen(0.5, len(clips)).to(clips.device)
            if len(idx):
                if not owned:
                    clips, owned = clips.clone(), True
                clips[idx] = op(clips[idx])
        return clips

    def _low_res(self, x: torch.Tensor) -> torch.Tensor:
        """Each chosen clip of (B, 3, T, S, S) shrunk to a side drawn uniformly from
        [low_res_scale × S, S] (antialiased) and enlarged back to S, the same for all its frames."""
        idx = self._chosen(self.low_res_prob, len(x))
        if not len(idx):
            return x
        s = x.shape[-1]
        sides = torch.randint(max(1, round(self.low_res_scale * s)), s + 1, (len(idx),))
        for i, side in zip(idx.tolist(), sides.tolist()):
            if side < s:
                x[i] = resize(resize(x[i], side), s)
        return x

    def _jitter(self, x: torch.Tensor) -> torch.Tensor:
        """Brightness, contrast and saturation scaled by 1 ± color_jitter, one draw per clip (in place)."""
        j = self.color_jitter
        b, c, sat = ((1 + j * (2 * torch.rand(len(x)) - 1)).to(x).view(-1, 1, 1, 1, 1) for _ in range(3))
        x.mul_(b)
        mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)
        x.sub_(mean).mul_(c).add_(mean)
        gray = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
        x.sub_(gray).mul_(sat).add_(gray)
        return x.clamp_(0.0, 1.0)

    def _invert(self, x: torch.Tensor) -> torch.Tensor:
        """Dark mice on light floors and vice versa (in place)."""
        idx = self._chosen(self.invert_prob, len(x)).to(x.device)
        if len(idx):
            x[idx] = 1.0 - x[idx]
        return x

    def _erase(self, x: torch.Tensor) -> torch.Tensor:
        """One region per clip through every frame and channel (in place)."""
        b, c, t, h, w = x.shape
        self.erase.device = x.device
        self.erase(x.view(b, c * t, h, w))
        return x

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W, 3) uint8 → contiguous (B, 3, T, S, S) float32, normalised; the input is left as it was."""
        _check(clips)
        if not self.train:
            return normalize(resize(to_float(clips), self.size), inplace=True)
        owned = False
        if self.rand_augment is not None:
            clips, owned = self._rand_augment(clips), True
        if self.flip:
            clips = self._flip(clips, owned)
        x = self._resized_crop(to_float(clips))
        if self.low_res_prob > 0:
            x = self._low_res(x)
        if self.color_jitter > 0:
            x = self._jitter(x)
        if self.invert_prob > 0:
            x = self._invert(x)
        x = normalize(x, inplace=True)
        if self.erase is not None:
            x = self._erase(x)
        return x
