"""The label map's idle class: the class named ``idle`` (any case), else the first class.

Every class but idle is an action class: bouts, events and counts are of action classes only.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["idle_index", "action_indices"]


def idle_index(labels: Sequence[str]) -> int:
    for k, name in enumerate(labels):
        if str(name).strip().lower() == "idle":
            return k
    return 0


def action_indices(labels: Sequence[str]) -> list[int]:
    idle = idle_index(labels)
    return [k for k in range(len(labels)) if k != idle]
