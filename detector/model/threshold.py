"""Deciding: a calibrated threshold turns anomaly scores into verdicts.

Scoring (how far a reconstruction is from its input) lives in `scoring`; this module only decides. The method
that produced the value and its parameters travel with it in the bundle, so a report can say how it was set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

THRESHOLD_METHODS = ("mean_std", "fpr_quantile", "f1_optimal", "pot")


@dataclass(frozen=True)
class Threshold:
    """A score strictly above `value` is an anomaly."""

    value: float
    method: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not np.isfinite(self.value):
            raise ValueError(f"threshold value must be finite, got {self.value}")

    def is_anomaly(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores) > self.value

    def ratio(self, scores: np.ndarray) -> np.ndarray:
        """score / threshold: above 1 means anomalous; how far above says how strongly."""
        return np.asarray(scores, dtype=np.float64) / max(self.value, 1e-12)

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "method": self.method, "params": self.params}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Threshold:
        return Threshold(float(data["value"]), str(data["method"]), dict(data.get("params", {})))
