"""Scoring: reconstruction error of each window under the model.

The scorer takes an array batch and returns arrays; it knows nothing of Kafka, JSON or thresholds. The score of
a window is the mean absolute reconstruction error over its samples (in scaled units), the loss the reference
recipe trains with; the per-sample errors are returned as well so events can say *where* a window went wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from detector.scaler import Scaler


@dataclass(frozen=True)
class ScoreResult:
    scores: np.ndarray  # [n] float32, mean absolute error per window
    errors: np.ndarray  # [n, window] float32, absolute error per sample


def resolve_device(requested: str) -> torch.device:
    """'auto' picks CUDA when available; 'cuda' without a GPU is an error rather than a silent fallback."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but CUDA is not available")
    return torch.device(requested)


class Scorer:
    """Scales, reconstructs and measures error for a batch of windows on one device."""

    def __init__(
        self,
        model: nn.Module,
        scaler: Scaler,
        window: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        self.window = window
        self.model = model.to(self.device).eval()
        if dtype != torch.float32:
            self.model = self.model.to(dtype)
        offset, scale = scaler.offset_and_scale(window)
        self._offset = torch.from_numpy(offset).to(self.device)
        self._inv_scale = torch.from_numpy(1.0 / scale).to(self.device)

    @torch.inference_mode()
    def score_tensor(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score a raw (unscaled) float32 batch already on `self.device`; returns (scores, errors) there."""
        scaled = (x - self._offset) * self._inv_scale
        recon = self.model(scaled.to(self.dtype)).float()
        errors = (recon - scaled).abs()
        return errors.mean(dim=1), errors

    def _to_device(self, x: np.ndarray) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.window:
            raise ValueError(f"expected a batch of shape [n, {self.window}], got {list(x.shape)}")
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)

    def scale(self, x: np.ndarray) -> np.ndarray:
        """The model's view of raw windows (scaled units)."""
        return ((self._to_device(x) - self._offset) * self._inv_scale).cpu().numpy()

    @torch.inference_mode()
    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """The model's reconstruction of raw windows, in scaled units."""
        scaled = (self._to_device(x) - self._offset) * self._inv_scale
        return self.model(scaled.to(self.dtype)).float().cpu().numpy()

    def score(self, x: np.ndarray) -> ScoreResult:
        scores, errors = self.score_tensor(self._to_device(x))
        return ScoreResult(scores.cpu().numpy(), errors.cpu().numpy())
