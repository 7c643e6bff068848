"""Continuous telemetry with labelled incidents, for measuring alert episodes (benchmarks/episodes.py).

The window generator (`generator.py`) makes independent windows; incidents need time: here each source is one long
series (a noisy oscillation with slow wander), cut into overlapping windows like real telemetry. Incidents are
stretches of one kind — spike burst, dropout, noise burst, temporary level shift, drift, shape distortion — labelled
point by point. A `persistent_shift` moves the signal to a new level for good at a given point: only the change is an
incident (the first `window` points after it), the new level is the new normal. That is what alarmed forever before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INCIDENT_KINDS = ("spike_burst", "dropout", "noise_burst", "level_shift", "drift", "shape_distortion")


@dataclass(frozen=True)
class IncidentSeries:
    values: np.ndarray  # [T]
    labels: np.ndarray  # [T] 0/1
    incidents: list[tuple[int, int, str]]  # (start, end exclusive, kind)


def normal_signal(length: int, rng: np.random.Generator, period: float = 40.0) -> np.ndarray:
    t = np.arange(length)
    wander = np.cumsum(rng.normal(0, 0.002, length))
    return np.sin(2 * np.pi * t / period) + 0.3 * np.sin(2 * np.pi * t / (period * 3.7)) + wander + \
        rng.normal(0, 0.05, length)


def incident_series(length: int, seed: int, incidents: int = 4, window: int = 64, train: int = 2000,
                    persistent_shift: int | None = None) -> IncidentSeries:
    """`length` points: the first `train` quiet (for fitting), then `incidents` incidents of rotating kinds spaced
    evenly after it, and optionally a persistent level shift at `persistent_shift`."""
    rng = np.random.default_rng(seed)
    x = normal_signal(length, rng)
    labels = np.zeros(length, dtype=np.int64)
    spread = float(np.std(x[:train]))
    out = []
    gap = (length - train) // (incidents + 1)
    for k in range(incidents):
        kind = INCIDENT_KINDS[(seed + k) % len(INCIDENT_KINDS)]
        start = train + gap * (k + 1) + int(rng.integers(-gap // 4, gap // 4))
        size = int(rng.integers(window // 2, 3 * window))
        end = min(length, start + size)
        _inject(x, start, end, kind, spread, rng)
        labels[start:end] = 1
        out.append((start, end, kind))
    if persistent_shift is not None:
        x[persistent_shift:] += 3.0 * spread
        labels[persistent_shift : persistent_shift + window] = 1
        out.append((persistent_shift, persistent_shift + window, "persistent_shift"))
    return IncidentSeries(x, labels, sorted(out))


def _inject(x: np.ndarray, start: int, end: int, kind: str, spread: float, rng: np.random.Generator) -> None:
    n = end - start
    if kind == "spike_burst":
        idx = start + rng.integers(0, n, size=max(3, n // 8))
        x[idx] += rng.choice([-1, 1], size=idx.size) * 6 * spread
    elif kind == "dropout":
        x[start:end] = 0.0
    elif kind == "noise_burst":
        x[start:end] += rng.normal(0, 2.0 * spread, n)
    elif kind == "level_shift":
        x[start:end] += rng.choice([-1, 1]) * 2.5 * spread
    elif kind == "drift":
        x[start:end] += np.linspace(0, rng.choice([-1, 1]) * 3 * spread, n)
    elif kind == "shape_distortion":
        x[start:end] = -x[start:end] * 1.5
    else:
        raise ValueError(f"unknown incident kind {kind!r}; choose from {list(INCIDENT_KINDS)}")
