"""The ``train.rand_augment`` spec (timm's notation, e.g. ``rand-m7-n4-mstd0.5-inc1``), parsed without
torch so the configuration is checked where it loads; :mod:`mvd.transforms` applies it."""

from __future__ import annotations

import re

__all__ = ["parse_rand_augment"]


def parse_rand_augment(spec: str) -> tuple[int, float, float]:
    """``rand-m7-n4-mstd0.5-inc1`` → (ops per clip, magnitude 0–10, magnitude std)."""
    head, *opts = spec.strip().split("-")
    if head != "rand":
        raise ValueError(f"train.rand_augment={spec!r} is not a RandAugment spec; "
                         "write e.g. 'rand-m7-n4-mstd0.5-inc1' (m magnitude 0–10, n ops), or '' for none")
    n, mag, mstd = 2, 9.0, 0.0
    for opt in opts:
        key, val = re.fullmatch(r"([a-z]*)(.*)", opt).groups()
        try:
            if key == "m":
                mag = float(val)
            elif key == "n":
                n = int(val)
            elif key == "mstd":
                mstd = float(val)
            elif key == "inc" and val in ("", "1"):  # increasing-severity ops: the only kind torchvision has
                pass
            else:
                raise ValueError
        except ValueError:
            raise ValueError(f"train.rand_augment={spec!r}: option {opt!r} is not understood; "
                             "known: m<magnitude 0–10>, n<ops>, mstd<std>, inc1") from None
    if not 0 <= mag <= 10 or n < 0 or mstd < 0:
        raise ValueError(f"train.rand_augment={spec!r}: magnitude must be in 0–10, ops and mstd ≥ 0")
    return n, mag, mstd
