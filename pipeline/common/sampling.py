"""Evenly spaced picks out of a sequence: the frames a contact sheet shows, the faces that describe
a shot, the train crops behind a centroid."""
from __future__ import annotations

import numpy as np


def evenly_spaced(n: int, count: int | None) -> np.ndarray:
    """`count` indices spread evenly over range(n), first and last included (all of them when
    count is None or >= n)."""
    if count is None or count >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, count).round().astype(int))
