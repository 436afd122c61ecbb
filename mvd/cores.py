"""How many CPU cores this process may use: the affinity mask where the OS has one (a container or
``taskset`` limit), else the machine's count."""

from __future__ import annotations

import os

__all__ = ["usable_cores"]


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
