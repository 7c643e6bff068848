"""Segment attribution geometry: a window cut into equal contiguous segments, so an event can say where its
error sits. The scorer sums per-sample errors per segment on the device; the record encoder prints the ranges."""

from __future__ import annotations

import itertools

import numpy as np


def segment_bounds(window: int, segments: int) -> list[tuple[int, int]]:
    """`segments` contiguous [start, end) ranges covering the window, sizes differing by at most one."""
    edges = np.linspace(0, window, segments + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def segment_ids(window: int, segments: int) -> np.ndarray:
    """For each sample, the index of its segment."""
    ids = np.empty(window, dtype=np.int64)
    for i, (a, b) in enumerate(segment_bounds(window, segments)):
        ids[a:b] = i
    return ids
