"""Threshold calibration: turn scores of held-out windows into a `Threshold` (method and parameters kept).

- `mean_std`: mean + k·std of normal scores (the reference recipe uses k = 1 on the training scores).
- `fpr_quantile`: the (1 − fpr) quantile of held-out normal scores, so about `fpr` of normal windows alarm.
- `f1_optimal`: the cut that maximises anomaly-class F1 on a labelled validation split.
- `max_factor`: `factor` × the largest held-out normal score: with few calibration windows (a short quiet start of
  a series) a quantile is only as good as its largest sample, so say so and keep a margin.
- `pot`: peaks over threshold (Siffer et al., KDD 2017): fit a generalized Pareto tail to the excesses over a
  high initial quantile and extrapolate to a target risk `q` (the probability that a normal score exceeds it).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import genpareto

from detector.model.threshold import Threshold


class CalibrationError(ValueError):
    """Scores or parameters from which no threshold can be computed."""


def _finite(scores: np.ndarray, what: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise CalibrationError(f"{what}: no scores to calibrate on")
    if not np.all(np.isfinite(s)):
        raise CalibrationError(f"{what}: scores contain NaN or Inf")
    return s


def mean_std(normal_scores: np.ndarray, k: float = 1.0) -> Threshold:
    s = _finite(normal_scores, "mean_std")
    return Threshold(float(s.mean() + k * s.std()), "mean_std", {"k": k, "n": int(s.size)})


def fpr_quantile(normal_scores: np.ndarray, fpr: float = 0.01) -> Threshold:
    if not 0.0 < fpr < 1.0:
        raise CalibrationError(f"fpr_quantile: fpr must be in (0, 1), got {fpr}")
    s = _finite(normal_scores, "fpr_quantile")
    # 'higher' so that at most `fpr` of the calibration scores lie strictly above the threshold.
    value = float(np.quantile(s, 1.0 - fpr, method="higher"))
    return Threshold(value, "fpr_quantile", {"fpr": fpr, "n": int(s.size)})


def f1_optimal(scores: np.ndarray, is_anomaly: np.ndarray) -> Threshold:
    """Exhaustive search over every distinct cut (O(n log n)); the midpoint between neighbours is returned."""
    s = _finite(scores, "f1_optimal")
    y = np.asarray(is_anomaly, dtype=bool).ravel()
    if y.size != s.size:
        raise CalibrationError(f"f1_optimal: {s.size} scores but {y.size} labels")
    positives = int(y.sum())
    if positives == 0 or positives == y.size:
        raise CalibrationError("f1_optimal: the validation split needs both normal and anomalous windows")
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    # Cut after position i (predict anomaly for the top i+1 scores); only where the next score differs.
    tp = np.cumsum(y_sorted)
    predicted = np.arange(1, s.size + 1)
    f1 = 2 * tp / (predicted + positives)
    valid = np.append(s_sorted[1:] < s_sorted[:-1], True)
    f1 = np.where(valid, f1, -1.0)
    best = int(np.argmax(f1))
    lower = s_sorted[best + 1] if best + 1 < s.size else s_sorted[best] - 1e-6
    value = float((s_sorted[best] + lower) / 2)
    return Threshold(value, "f1_optimal", {"validation_f1": float(f1[best]), "n": int(s.size)})


def pot(normal_scores: np.ndarray, risk: float = 1e-3, initial_quantile: float = 0.98) -> Threshold:
    s = _finite(normal_scores, "pot")
    if not 0.0 < risk < 1.0 - initial_quantile:
        raise CalibrationError(
            f"pot: risk must be in (0, 1 - initial_quantile = {1 - initial_quantile:.3g}), got {risk}"
        )
    t = float(np.quantile(s, initial_quantile))
    excesses = s[s > t] - t
    if excesses.size < 10:
        raise CalibrationError(
            f"pot: only {excesses.size} scores above the initial {initial_quantile:.0%} quantile; "
            "need at least 10 (more calibration data or a lower initial_quantile)"
        )
    shape, _, scale = genpareto.fit(excesses, floc=0.0)
    ratio = risk * s.size / excesses.size
    if abs(shape) < 1e-6:  # noqa: SIM108 -- exponential tail: the shape → 0 limit of the formula below
        value = t - scale * np.log(ratio)
    else:
        value = t + (scale / shape) * (ratio ** (-shape) - 1.0)
    return Threshold(
        float(value),
        "pot",
        {
            "risk": risk,
            "initial_quantile": initial_quantile,
            "initial_threshold": t,
            "gpd_shape": float(shape),
            "gpd_scale": float(scale),
            "n_peaks": int(excesses.size),
            "n": int(s.size),
        },
    )


def max_factor(normal_scores: np.ndarray, factor: float = 2.0) -> Threshold:
    if factor <= 0:
        raise CalibrationError(f"max_factor: factor must be positive, got {factor}")
    s = _finite(normal_scores, "max_factor")
    return Threshold(float(s.max() * factor), "max_factor", {"factor": factor, "n": int(s.size)})
