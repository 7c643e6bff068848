"""How far the live score distribution has moved from the one the bundle was calibrated on.

The bundle keeps the deciles of its held-out normal scores; each decile bin held 10% of them. The worker keeps
decayed counts of its recent scores in the same bins (about the last `window` windows) and reports the population
stability index PSI = Σ (live − reference) · ln(live / reference). Rules of thumb: below 0.1 nothing moved, 0.1–0.25
a shift worth a look, above 0.25 the model no longer describes the data it sees (retrain on recent normal data).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

FLOOR = 1e-4  # a bin never seen counts as this share, so the logarithm stays finite


class ScoreDrift:
    def __init__(self, deciles: Sequence[float], window: int = 10_000) -> None:
        self.edges = np.asarray(deciles, dtype=np.float64)
        self.window = window
        self.counts = np.zeros(len(self.edges) + 1)
        self.reference = np.full(len(self.edges) + 1, 1.0 / (len(self.edges) + 1))

    @property
    def available(self) -> bool:
        return len(self.edges) > 0

    def observe(self, scores: np.ndarray) -> None:
        if not self.available or not len(scores):
            return
        self.counts *= math.exp(-len(scores) / self.window)
        self.counts += np.bincount(np.searchsorted(self.edges, scores, side="right"), minlength=len(self.counts))

    def psi(self) -> float:
        """The index over the recent scores (NaN before any score or without a reference)."""
        total = self.counts.sum()
        if not self.available or total <= 0:
            return math.nan
        live = np.maximum(self.counts / total, FLOOR)
        return float(np.sum((live - self.reference) * np.log(live / self.reference)))
