"""Input scaling applied to every window before the model sees it.

Scalers are fitted by the trainer and stored in the bundle as plain numbers, so the detector applies exactly
the transform the model was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCALER_KINDS = ("global_minmax", "feature_standard", "none")


class ScalerError(ValueError):
    """A scaler spec that is unknown or does not fit the window length."""


@dataclass(frozen=True)
class Scaler:
    """`kind` plus the fitted parameters.

    - `global_minmax`: one min and max over the whole training array (the reference recipe).
    - `feature_standard`: per-position mean and std.
    - `none`: identity.
    """

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def fit(kind: str, x: np.ndarray) -> Scaler:
        if kind == "global_minmax":
            lo, hi = float(x.min()), float(x.max())
            if hi <= lo:
                raise ScalerError("global_minmax: training data is constant")
            return Scaler(kind, {"min": lo, "max": hi})
        if kind == "feature_standard":
            mean = x.mean(axis=0)
            std = np.maximum(x.std(axis=0), 1e-6)
            return Scaler(kind, {"mean": mean.tolist(), "std": std.tolist()})
        if kind == "none":
            return Scaler(kind, {})
        raise ScalerError(f"unknown scaler {kind!r}; choose from {list(SCALER_KINDS)}")

    def offset_and_scale(self, window: int) -> tuple[np.ndarray, np.ndarray]:
        """(offset, scale) vectors such that scaled = (x - offset) / scale; used for fused GPU scaling."""
        if self.kind == "global_minmax":
            lo, hi = float(self.params["min"]), float(self.params["max"])
            return np.full(window, lo, np.float32), np.full(window, hi - lo, np.float32)
        if self.kind == "feature_standard":
            mean = np.asarray(self.params["mean"], np.float32)
            std = np.asarray(self.params["std"], np.float32)
            if mean.shape != (window,) or std.shape != (window,):
                raise ScalerError(
                    f"feature_standard scaler has {mean.shape[0]} positions but the window length is {window}"
                )
            return mean, std
        if self.kind == "none":
            return np.zeros(window, np.float32), np.ones(window, np.float32)
        raise ScalerError(f"unknown scaler {self.kind!r}; choose from {list(SCALER_KINDS)}")

    def transform(self, x: np.ndarray) -> np.ndarray:
        offset, scale = self.offset_and_scale(x.shape[-1])
        return ((x - offset) / scale).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": self.params}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Scaler:
        return Scaler(str(data["kind"]), dict(data.get("params", {})))
