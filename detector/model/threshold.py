"""Deciding: a calibrated threshold turns anomaly scores into verdicts.

Scoring (how far a reconstruction is from its input) lives in `scoring`; this module only decides. The method
that produced the value and its parameters travel with it in the bundle, so a report can say how it was set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

THRESHOLD_METHODS = ("mean_std", "fpr_quantile", "f1_optimal", "pot", "max_factor")


@dataclass(frozen=True)
class Threshold:
    """A score strictly above `value` is an anomaly. `per_source` holds thresholds calibrated per source from the
    training data grouped by source; `value` is the fallback for every source without one (e.g. a new sensor)."""

    value: float
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    per_source: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not np.isfinite(self.value) or not all(np.isfinite(v) for v in self.per_source.values()):
            raise ValueError(f"threshold values must be finite, got {self.value} and {self.per_source}")

    def is_anomaly(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores) > self.value

    def for_sources(self, sources: Sequence[str]) -> np.ndarray:
        """The threshold that applies to each window, by its source (the global one where none was calibrated)."""
        get, value = self.per_source.get, self.value
        return np.fromiter((get(s, value) for s in sources), dtype=np.float64, count=len(sources))

    def ratio(self, scores: np.ndarray) -> np.ndarray:
        """score / threshold: above 1 means anomalous; how far above says how strongly."""
        return np.asarray(scores, dtype=np.float64) / max(self.value, 1e-12)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "method": self.method, "params": self.params}
        if self.per_source:
            out["per_source"] = self.per_source
        return out

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Threshold:
        return Threshold(float(data["value"]), str(data["method"]), dict(data.get("params", {})),
                         {str(k): float(v) for k, v in dict(data.get("per_source", {})).items()})
