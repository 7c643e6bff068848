"""Every threshold method on synthetic scores whose right answer is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from trainer import calibration
from trainer.calibration import CalibrationError

RNG = np.random.default_rng(7)


def test_mean_std_is_mean_plus_k_std() -> None:
    s = RNG.normal(10.0, 2.0, size=200_000)
    t = calibration.mean_std(s, k=1.5)
    assert t.value == pytest.approx(13.0, abs=0.05)
    assert t.method == "mean_std" and t.params["k"] == 1.5


def test_fpr_quantile_gives_the_target_false_positive_rate() -> None:
    s = RNG.uniform(0, 1, size=100_000)
    t = calibration.fpr_quantile(s, fpr=0.05)
    assert t.value == pytest.approx(0.95, abs=0.005)
    fresh = RNG.uniform(0, 1, size=100_000)
    assert t.is_anomaly(fresh).mean() == pytest.approx(0.05, abs=0.003)


def test_f1_optimal_separates_separable_classes() -> None:
    normal = RNG.uniform(0.0, 1.0, size=500)
    anomalous = RNG.uniform(2.0, 3.0, size=50)
    t = calibration.f1_optimal(np.concatenate([normal, anomalous]), np.r_[np.zeros(500), np.ones(50)])
    assert normal.max() < t.value < anomalous.min()
    assert t.params["validation_f1"] == 1.0


def test_f1_optimal_matches_brute_force_on_overlapping_classes() -> None:
    scores = np.r_[RNG.normal(0, 1, 300), RNG.normal(1.5, 1, 100)]
    labels = np.r_[np.zeros(300, bool), np.ones(100, bool)]

    def f1(th: float) -> float:
        pred = scores > th
        tp = (pred & labels).sum()
        return 2 * tp / (pred.sum() + labels.sum())

    brute = max(f1(c) for c in np.unique(scores))
    t = calibration.f1_optimal(scores, labels)
    assert f1(t.value) == pytest.approx(brute)
    assert t.params["validation_f1"] == pytest.approx(brute)


def test_pot_recovers_the_exponential_tail_quantile() -> None:
    # Exponential(rate 2): P(S > z) = exp(-2 z), so the threshold at risk q is -ln(q) / 2.
    s = RNG.exponential(scale=0.5, size=200_000)
    t = calibration.pot(s, risk=1e-4, initial_quantile=0.98)
    assert t.value == pytest.approx(-np.log(1e-4) / 2, rel=0.08)
    assert abs(t.params["gpd_shape"]) < 0.1


def test_pot_heavy_tail_is_above_the_light_tail_answer() -> None:
    pareto = RNG.pareto(3.0, size=100_000)  # P(S > z) = (1 + z)^-3, true quantile at 1e-4: 10^(4/3) - 1
    t = calibration.pot(pareto, risk=1e-4)
    assert t.value == pytest.approx(10 ** (4 / 3) - 1, rel=0.25)
    assert t.params["gpd_shape"] > 0.1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: calibration.mean_std(np.array([])), "no scores"),
        (lambda: calibration.fpr_quantile(np.array([1.0, np.nan])), "NaN"),
        (lambda: calibration.fpr_quantile(np.ones(10), fpr=1.5), "fpr must be"),
        (lambda: calibration.f1_optimal(np.ones(4), np.zeros(4)), "both normal and anomalous"),
        (lambda: calibration.f1_optimal(np.ones(4), np.zeros(3)), "4 scores but 3 labels"),
        (lambda: calibration.pot(np.arange(100.0)), "need at least 10"),
        (lambda: calibration.pot(np.arange(1000.0), risk=0.5), "risk must be"),
    ],
)
def test_bad_calibration_input(call, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        call()


def test_max_factor_is_a_margin_over_the_largest_held_out_score() -> None:
    from trainer.calibration import CalibrationError, max_factor

    t = max_factor(np.array([0.1, 0.3, 0.2]), factor=2.0)
    assert t.value == pytest.approx(0.6) and t.method == "max_factor" and t.params == {"factor": 2.0, "n": 3}
    with pytest.raises(CalibrationError, match="factor must be positive"):
        max_factor(np.array([0.1]), factor=0)
