"""Input scaling applied to every window before the model sees it.

Scalers are fitted by the trainer and stored in the bundle as plain numbers, so the detector applies exactly
the transform the model was trained on. A window is a row of C channels × L samples, channel-major; scaling that
works "per channel" uses one offset and one scale for each channel's L samples.

A channel that is constant in the training data (a sensor that holds one value while healthy) gets a small scale
instead of zero: 0.1% of its level (0.001 for a level of 0). It trains like any other channel, and afterwards any
departure of that size counts about as much as a whole training range of a varying channel, so it is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCALER_KINDS = ("global_minmax", "channel_standard", "feature_standard", "window_center", "none")
CONSTANT_SCALE = 1e-3  # relative to the level of a channel that did not vary in training


class ScalerError(ValueError):
    """A scaler spec that is unknown or does not fit the window shape."""


def _safe_scale(spread: np.ndarray, level: np.ndarray) -> np.ndarray:
    floor = CONSTANT_SCALE * np.maximum(np.abs(level), 1.0)
    return np.where(spread > 0, spread, floor)


@dataclass(frozen=True)
class Scaler:
    """`kind` plus the fitted parameters.

    - `global_minmax`: min and max over the whole training data, per channel (the reference recipe for C = 1).
    - `channel_standard`: mean and standard deviation per channel.
    - `feature_standard`: mean and standard deviation per position (every sample of every channel).
    - `window_center`: each window minus its own mean, per channel, divided by the training spread of such centred
      values: the model sees shapes, not levels, so a signal that settles at a new level is judged by its shape
      (the step into the new level is itself an unusual shape, so the change is still flagged once). What this
      cannot see: a slow drift of the level alone (docs/episodes.md).
    - `none`: identity.
    """

    @property
    def centers_windows(self) -> bool:
        return self.kind == "window_center"

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def fit(kind: str, x: np.ndarray, channels: int = 1) -> Scaler:
        """Fit on training rows `x` of shape [n, channels * window]."""
        per_channel = x.reshape(len(x), channels, -1).transpose(1, 0, 2).reshape(channels, -1).astype(np.float64)
        if kind == "global_minmax":
            lo, hi = per_channel.min(axis=1), per_channel.max(axis=1)
            if channels == 1:  # scalars, as single-channel bundles always stored them
                return Scaler(kind, {"min": float(lo[0]), "max": float(hi[0])})
            return Scaler(kind, {"min": lo.tolist(), "max": hi.tolist()})
        if kind == "channel_standard":
            return Scaler(kind, {"mean": per_channel.mean(axis=1).tolist(), "std": per_channel.std(axis=1).tolist()})
        if kind == "window_center":
            windows = x.reshape(len(x), channels, -1).astype(np.float64)
            centred = windows - windows.mean(axis=2, keepdims=True)
            level = np.abs(windows).mean(axis=(0, 2))
            return Scaler(kind, {"std": centred.std(axis=(0, 2)).tolist(), "level": level.tolist()})
        if kind == "feature_standard":
            mean = x.mean(axis=0)
            std = np.maximum(x.std(axis=0), 1e-6)
            return Scaler(kind, {"mean": mean.tolist(), "std": std.tolist()})
        if kind == "none":
            return Scaler(kind, {})
        raise ScalerError(f"unknown scaler {kind!r}; choose from {list(SCALER_KINDS)}")

    def offset_and_scale(self, window: int, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(offset, scale) rows of length channels * window such that scaled = (x - offset) / scale."""
        if self.kind == "global_minmax":
            lo, hi = self._per_channel("min", channels), self._per_channel("max", channels)
            return self._rows(lo, _safe_scale(hi - lo, np.maximum(np.abs(lo), np.abs(hi))), window)
        if self.kind == "channel_standard":
            mean, std = self._per_channel("mean", channels), self._per_channel("std", channels)
            return self._rows(mean, _safe_scale(std, mean), window)
        if self.kind == "window_center":  # the offset is each window's own mean, removed after scaling
            std, level = self._per_channel("std", channels), self._per_channel("level", channels)
            return self._rows(np.zeros(channels), _safe_scale(std, level), window)
        if self.kind == "feature_standard":
            mean = np.asarray(self.params["mean"], np.float32)
            std = np.asarray(self.params["std"], np.float32)
            width = window * channels
            if mean.shape != (width,) or std.shape != (width,):
                shape = f"the window length is {window}" if channels == 1 else f"a window has {channels} x {window}"
                raise ScalerError(f"feature_standard scaler has {mean.shape[0]} positions but {shape}")
            return mean, std
        if self.kind == "none":
            return np.zeros(window * channels, np.float32), np.ones(window * channels, np.float32)
        raise ScalerError(f"unknown scaler {self.kind!r}; choose from {list(SCALER_KINDS)}")

    def _per_channel(self, key: str, channels: int) -> np.ndarray:
        values = np.atleast_1d(np.asarray(self.params[key], np.float64))
        if values.shape != (channels,):
            raise ScalerError(f"{self.kind} scaler has {values.size} value(s) for {key!r} but the window has "
                              f"{channels} channel(s)")
        return values

    @staticmethod
    def _rows(offset: np.ndarray, scale: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
        return np.repeat(offset, window).astype(np.float32), np.repeat(scale, window).astype(np.float32)

    def transform(self, x: np.ndarray, channels: int = 1) -> np.ndarray:
        offset, scale = self.offset_and_scale(x.shape[-1] // channels, channels)
        scaled = ((x - offset) / scale).astype(np.float32)
        if self.centers_windows:
            blocks = scaled.reshape(len(scaled), channels, -1)
            scaled = (blocks - blocks.mean(axis=2, keepdims=True)).reshape(len(scaled), -1)
        return scaled

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": self.params}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Scaler:
        return Scaler(str(data["kind"]), dict(data.get("params", {})))
