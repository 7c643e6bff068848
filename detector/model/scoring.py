"""Scoring: reconstruction error of each window under the model.

The scorer takes an array batch and returns arrays; it knows nothing of Kafka, JSON or thresholds. The score of
a window is the mean absolute reconstruction error over its samples (in scaled units), the loss the reference
recipe trains with; the per-sample errors are returned as well so events can say *where* a window went wrong.

With C channels the score is the mean over all C × L scaled values: every channel weighs the same, because scaling
put each on its training range, and a fault that changes how channels move together shows in whichever channels it
moves. The segment shares then say which channel(s) and which part of the window carry the error.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from detector.model.scaler import Scaler
from detector.model.segments import segment_ids

# Windows decoded with np.frombuffer are read-only views; the scorer only ever reads them.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


@dataclass(frozen=True)
class ScoreResult:
    scores: np.ndarray  # [n] float32, mean absolute error per window
    errors: np.ndarray  # [n, channels * window] float32, absolute error per value


def resolve_device(requested: str) -> torch.device:
    """'auto' picks CUDA when available; 'cuda' without a GPU is an error rather than a silent fallback."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but CUDA is not available")
    return torch.device(requested)


SCORE_KINDS = ("mean_abs_error", "recent_offset", "error_change", "level_change")


def window_scores(recon: torch.Tensor, scaled: torch.Tensor, kind: str, channels: int, window: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(score per window, absolute error per value) of reconstructions of scaled rows [n, channels * window].

    - `mean_abs_error`: the mean absolute error over every sample of every channel.
    - `recent_offset`: per channel, the mean signed error over the newest quarter of the window, squared, then the
      mean over channels. A matched filter for a sustained departure in the newest samples: zero-mean noise
      averages out, an offset that persists does not, and a window is judged by what just happened (with stride 1
      the score reacts within a quarter window and settles as soon as the signal does). A lone spike is diluted
      over the quarter window: where single-sample glitches matter, keep mean_abs_error.
    - `error_change`: how much the error level moved inside the window: the mean absolute error (over channels) of
      the newest sixth of the samples against the sixth before it, as an absolute difference. Meant as a detector
      of transitions (the start and the end of an anomaly); measured on SKAB's change points (docs/skab.md) it
      mostly flickers while a fault lasts, since its threshold is set on the small errors of normal data. Kept so
      that measurement can be repeated (`benchmarks/skab.py --score error_change`); no preset uses it.
    - `level_change`: per channel, the mean signed error over the newest quarter of the window against its mean over
      the rest of the window, squared, then the mean over channels. A step detector that re-anchors on its own: a
      new level scores most while it enters the window; once it fills it the score falls to what the model makes
      of the offset (zero where a level leaves a flat residual; ~0.1–0.2 of the step's in a synthetic check), so a
      level shift is reported at its start (and its end) more than while it lasts. For change points; its failure
      modes: a fault that persists at a steady level closes its episode after the quiet period, and a slow ramp
      hardly scores (docs/skab.md).
    The absolute errors always serve segment attribution.
    """
    residual = recon - scaled
    errors = residual.abs()
    if kind in ("error_change", "level_change") and window < 2:  # each compares two parts of the window
        raise ValueError(f"score kind {kind!r} needs a window of at least 2 samples, got {window}")
    if kind == "mean_abs_error":
        return errors.mean(dim=1), errors
    if kind in ("recent_offset", "level_change"):  # the newest quarter's mean signed error, alone or against the rest
        span = max(1, window // 4)
        blocks = residual.view(len(residual), channels, window)
        offsets = blocks[:, :, -span:].mean(dim=2)
        if kind == "level_change":
            offsets = offsets - blocks[:, :, :-span].mean(dim=2)
        return offsets.square().mean(dim=1), errors
    if kind == "error_change":
        span = max(1, window // 6)
        profile = errors.view(len(errors), channels, window).mean(dim=1)  # per sample, over channels
        newest, before = profile[:, -span:].mean(dim=1), profile[:, -2 * span : -span].mean(dim=1)
        return (newest - before).abs(), errors
    raise ValueError(f"unknown score kind {kind!r}; choose from {list(SCORE_KINDS)}")


class Scorer:
    """Scales, reconstructs and measures error for a batch of windows on one device."""

    def __init__(
        self,
        model: nn.Module,
        scaler: Scaler,
        window: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        channels: int = 1,
        score: str = "mean_abs_error",
    ) -> None:
        if score not in SCORE_KINDS:
            raise ValueError(f"unknown score kind {score!r}; choose from {list(SCORE_KINDS)}")
        self.score_kind = score
        self.device = torch.device(device)
        self.dtype = dtype
        self.window = window  # samples per channel
        self.channels = channels
        self.width = window * channels  # values per row (channel-major)
        self.model = model.to(self.device).eval()
        if dtype != torch.float32:
            self.model = self.model.to(dtype)
        offset, scale = scaler.offset_and_scale(window, channels)
        self.centers = scaler.centers_windows
        self._offset = torch.from_numpy(offset).to(self.device)
        self._inv_scale = torch.from_numpy(1.0 / scale).to(self.device)

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        scaled = (x - self._offset) * self._inv_scale
        if self.centers:  # window_center: each window on its own mean, per channel
            blocks = scaled.view(len(scaled), self.channels, self.window)
            scaled = (blocks - blocks.mean(dim=2, keepdim=True)).view(len(scaled), -1)
        return scaled

    @torch.inference_mode()
    def score_tensor(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score a raw (unscaled) float32 batch already on `self.device`; returns (scores, errors) there."""
        scaled = self._scaled(x)
        recon = self.model(scaled.to(self.dtype)).float()
        return window_scores(recon, scaled, self.score_kind, self.channels, self.window)

    def _to_device(self, x: np.ndarray) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"expected a batch of shape [n, {self.width}], got {list(x.shape)}")
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)

    def scale(self, x: np.ndarray) -> np.ndarray:
        """The model's view of raw windows (scaled units)."""
        return self._scaled(self._to_device(x)).cpu().numpy()

    @torch.inference_mode()
    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """The model's reconstruction of raw windows, in scaled units."""
        return self.model(self._scaled(self._to_device(x)).to(self.dtype)).float().cpu().numpy()

    def score(self, x: np.ndarray) -> ScoreResult:
        scores, errors = self.score_tensor(self._to_device(x))
        return ScoreResult(scores.cpu().numpy(), errors.cpu().numpy())


class ScoredBatch:
    """Scores of a batch (on the host), and per-segment error shares on demand for chosen rows.

    Shares are only needed for the windows that become events, so they stay on the device until asked for: the
    copy back is 4 bytes per window instead of 4 × (1 + segments).
    """

    def __init__(self, scores: np.ndarray, errors: torch.Tensor, onehot: torch.Tensor) -> None:
        self.scores = scores
        self._errors = errors
        self._onehot = onehot

    @torch.inference_mode()
    def shares(self, rows: np.ndarray) -> np.ndarray:
        """[len(rows), segments]: each segment's share of the row's total absolute error."""
        if not len(rows):
            return np.empty((0, self._onehot.shape[1]), dtype=np.float32)
        index = torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(self._errors.device)
        per_segment = self._errors.index_select(0, index) @ self._onehot
        return (per_segment / per_segment.sum(dim=1, keepdim=True).clamp_min(1e-12)).cpu().numpy()


class BatchScorer:
    """The worker's scoring path: a reusable (pinned, on CUDA) host staging buffer, a non-blocking copy to the
    device, scores computed there, and one small copy back (segment shares follow for the rows that need them)."""

    def __init__(self, scorer: Scorer, max_batch: int, segments: int) -> None:
        self.scorer = scorer
        self.max_batch = max_batch
        self.segments = segments
        device = scorer.device
        self._host = torch.empty((max_batch, scorer.width), dtype=torch.float32,
                                 pin_memory=device.type == "cuda")
        # value → (channel, segment) as a [C·L, C·segments] 0/1 matrix: summing per segment is one small GEMM;
        # column c·segments + s is segment s of channel c
        per_channel = segment_ids(scorer.window, segments)
        ids = torch.from_numpy(np.concatenate([per_channel + c * segments for c in range(scorer.channels)]))
        self._onehot = torch.nn.functional.one_hot(ids, segments * scorer.channels).to(torch.float32).to(device)

    @property
    def device(self) -> torch.device:
        return self.scorer.device

    @torch.inference_mode()
    def score(self, windows: np.ndarray) -> ScoredBatch:
        """Scores for raw windows [n, channels * window], n <= max_batch."""
        n = len(windows)
        if self.device.type == "cuda":
            source = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
            if source.is_pinned():  # a caller's pinned buffer (e.g. a ring buffer a source fills): no staging
                x = source.to(self.device, non_blocking=True)  # `.cpu()` below waits, so it is safe to reuse after
            else:
                # torch's CPU copy runs on several threads: staging is ~memcpy speed, not numpy's one core
                self._host[:n].copy_(source)
                x = self._host[:n].to(self.device, non_blocking=True)
        else:
            x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
        scores, errors = self.scorer.score_tensor(x)
        return ScoredBatch(scores.cpu().numpy(), errors, self._onehot)

    def warm_up(self, batches: int) -> None:
        """Run a few batches of every size class so the first real batch pays no allocation or kernel set-up."""
        rng = np.random.default_rng(0)
        for size in sorted({1, max(1, self.max_batch // 4), self.max_batch}):
            for _ in range(batches):
                self.score(rng.normal(size=(size, self.scorer.width)).astype(np.float32))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
