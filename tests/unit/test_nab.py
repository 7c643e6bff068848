"""NAB scoring on cases small enough to work out by hand.

Handy identities: sigma(y) = 2 / (1 + exp(5y)) - 1 = -tanh(2.5 y), so sigma(-1) = tanh(2.5) = 0.98661 and a
true positive at relative position y is worth A_TP * tanh(-2.5 y) / tanh(2.5).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainer.nab import PROFILES, NabResult, Profile, nab_score, nab_windows, normalised, scaled_sigmoid

S1 = math.tanh(2.5)  # sigma(-1), NAB's maxTP
START, END = 0.0, 1000.0
TWO = nab_windows([200, 600], 60)  # [[200, 260], [600, 660]]
ONE = nab_windows([200], 60)  # [[200, 260]]


def score(detections: list[float], windows: np.ndarray = TWO, profile: str = "standard", **kw: float) -> float:
    return normalised([nab_score(detections, windows, START, END, profile, **kw)])


def test_scaled_sigmoid_matches_nab_reference_points() -> None:
    # NAB's docstring: -1 -> 0.98661, -0.5 -> 0.84828, 0 -> 0, 1 -> -0.98661, beyond 3 -> -1
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.5) == -1.0


def test_windows_start_at_the_change_point_and_overlaps_are_cut_or_merged() -> None:
    assert TWO.tolist() == [[200, 260], [600, 660]]
    assert nab_windows([200], 60, side="left").tolist() == [[140, 200]]
    assert nab_windows([200], 60, side="center").tolist() == [[170, 230]]
    # change points 20 s apart: SKAB cuts the later window, NAB merges the two
    assert nab_windows([600, 620], 60).tolist() == [[600, 660], [660, 680]]
    assert nab_windows([600, 620], 60, overlap="merge").tolist() == [[600, 680]]
    cps = np.array(["2020-03-09T10:24:33", "2020-03-09T10:25:33"], dtype="datetime64[s]")
    w = nab_windows(cps, np.timedelta64(60, "s"))  # touching windows share 10:25:33
    assert w.dtype == np.dtype("datetime64[ns]")
    assert w[1, 0] == w[0, 1] == cps[1]
    assert nab_windows([], 60).shape == (0, 2)
    with pytest.raises(ValueError):
        nab_windows([200], 0)


def test_perfect_detector_scores_100() -> None:
    # a detection at each window start: y = -1 -> A_TP each; raw 2, null -2, perfect 2 -> 100 * 4 / 4
    result = nab_score([200, 600], TWO, START, END)
    assert (result.raw, result.null, result.perfect) == pytest.approx((2.0, -2.0, 2.0))
    assert (result.tp, result.fp, result.fn) == (2, 0, 0)
    assert score([200, 600]) == pytest.approx(100.0)


def test_detector_that_never_fires_scores_0() -> None:
    # both windows missed: raw = -A_FN * 2 = null -> 0
    result = nab_score([], TWO, START, END)
    assert result.raw == pytest.approx(-2.0) and result.fn == 2
    assert score([]) == pytest.approx(0.0)


def test_one_early_detection_in_each_window() -> None:
    # 15 s into each 60 s window: y = -(260 - 215) / 60 = -0.75, worth tanh(1.875) / tanh(2.5) = 0.96699 each
    each = math.tanh(1.875) / S1
    assert each == pytest.approx(0.96699, abs=1e-5)
    assert nab_score([215, 615], TWO, START, END).raw == pytest.approx(2 * each)
    assert score([215, 615]) == pytest.approx(100 * (2 * each + 2) / 4)  # 98.349


def test_detection_at_the_window_end() -> None:
    # continuous definition: y = 0, sigma = 0, the window is caught but earns nothing: raw 0, null -1, perfect 1 -> 50
    assert nab_score([260], ONE, START, END).raw == pytest.approx(0.0)
    assert score([260], ONE) == pytest.approx(50.0)
    # NAB's row arithmetic at 1 Hz: the last of 61 rows, y = -1/61, worth tanh(2.5/61) / tanh(2.5) = 0.04152 -> 52.08
    last_row = math.tanh(2.5 / 61) / S1
    assert score([260], ONE, sample_period=1.0) == pytest.approx(100 * (last_row + 1) / 2)
    assert score([200], ONE, sample_period=1.0) == pytest.approx(100.0)  # first row: y = -61/61 = -1


def test_late_detection_just_after_the_window() -> None:
    # the window is missed (-1) and the detection 1 s after its end is a cheap false positive:
    # y = (261 - 260) / 60, sigma = -tanh(2.5/60) = -0.04164, times A_FP 0.11 = -0.00458 -> normalised -0.229
    late = -0.11 * math.tanh(2.5 / 60)
    result = nab_score([261], ONE, START, END)
    assert (result.tp, result.fp, result.fn) == (0, 1, 1)
    assert result.raw == pytest.approx(-1.0 + late)
    assert score([261], ONE) == pytest.approx(100 * late / 2)
    # one window width after the end: -0.11 * tanh(2.5) = -0.10853; beyond three widths: the full -0.11
    assert nab_score([320], ONE, START, END).raw == pytest.approx(-1.0 - 0.11 * S1)
    assert nab_score([460], ONE, START, END).raw == pytest.approx(-1.11)


def test_only_false_positives_score_below_0() -> None:
    # two detections before any window: -0.11 each, plus the missed window: raw -1.22, null -1, perfect 1 -> -11
    assert score([50, 100], ONE) == pytest.approx(-11.0)
    assert score([50, 100], ONE, "reward_low_FP") == pytest.approx(-22.0)  # -0.22 each: raw -1.44 -> -22


def test_two_detections_in_one_window_only_the_first_counts() -> None:
    first = nab_score([215], ONE, START, END)
    both = nab_score([230, 215], ONE, START, END)  # unordered on purpose
    assert both.raw == pytest.approx(first.raw) == pytest.approx(math.tanh(1.875) / S1)
    assert (both.tp, both.fp, both.fn) == (1, 0, 0)


def test_profiles_weigh_false_positives_and_misses() -> None:
    # a false positive before the window, then a detection at its start: raw = 1 - A_FP
    assert score([50, 200], ONE, "standard") == pytest.approx(100 * (0.89 + 1) / 2)  # 94.5
    assert score([50, 200], ONE, "reward_low_FP") == pytest.approx(100 * (0.78 + 1) / 2)  # 89.0
    assert score([50, 200], ONE, "reward_low_FN") == pytest.approx(100 * (0.89 + 2) / 3)  # null -2 -> 96.33
    assert PROFILES["reward_low_FN_rate"] == Profile(1.0, 0.11, 2.0)


def test_pooling_two_series_sums_before_normalising() -> None:
    # A: one window caught at its start (raw 1, null -1, perfect 1); B: two windows missed (raw -2, null -2, perf. 2)
    # pooled: 100 * ((1 - 2) - (-1 - 2)) / ((1 + 2) - (-1 - 2)) = 100 * 2 / 6 = 33.33, not the mean (100 + 0) / 2
    a = nab_score([200], ONE, START, END)
    b = nab_score([], TWO, START, END)
    assert normalised([a, b]) == pytest.approx(100 / 3)
    with pytest.raises(ValueError, match="profiles"):
        normalised([a, nab_score([], TWO, START, END, "reward_low_FN")])
    with pytest.raises(ValueError, match="no scoring windows"):
        normalised([nab_score([5], nab_windows([], 60), START, END)])


def test_datetime64_and_seconds_give_the_same_score() -> None:
    t0 = np.datetime64("2020-03-09T10:00:00", "ns")
    at = [t0 + np.timedelta64(s, "s") for s in (50, 215, 615, 700)]
    windows = nab_windows([t0 + np.timedelta64(200, "s"), t0 + np.timedelta64(600, "s")], 60)
    dated = nab_score(at, windows, t0, t0 + np.timedelta64(1000, "s"))
    assert dated == nab_score([50, 215, 615, 700], TWO, START, END)
    with pytest.raises(TypeError, match="mixed"):
        nab_score([50.0], windows, t0, t0 + np.timedelta64(1000, "s"))


def test_only_the_series_range_is_scored() -> None:
    # a detection before series_start is ignored; a window running past series_end is clipped to [950, 1000]
    result = nab_score([-10, 950], nab_windows([950], 60), START, END)
    assert (result.raw, result.tp, result.fp) == (pytest.approx(1.0), 1, 0)
    # a window wholly before the start is dropped: no windows left, the detection is a plain false positive
    dropped = nab_score([10], nab_windows([-100], 60), START, END)
    assert (dropped.null, dropped.perfect, dropped.raw) == (0.0, 0.0, pytest.approx(-0.11))


def test_a_shared_instant_belongs_to_the_later_window() -> None:
    # change points 60 s apart: windows [200, 260] and [260, 320]; firing at both change points is perfect
    windows = nab_windows([200, 260], 60)
    assert normalised([nab_score([200, 260], windows, START, END)]) == pytest.approx(100.0)


@given(
    start=st.integers(0, 800),
    width=st.integers(1, 150),
    a=st.floats(0.0, 1.0),
    b=st.floats(0.0, 1.0),
    period=st.sampled_from([0.0, 1.0]),
    others=st.lists(st.integers(0, 1000), max_size=5),
)
def test_moving_a_detection_earlier_in_its_window_never_lowers_the_score(
    start: int, width: int, a: float, b: float, period: float, others: list[int]
) -> None:
    windows = nab_windows([start], width)
    end = min(start + width, 1000)
    earlier, later = sorted((start + a * (end - start), start + b * (end - start)))
    rest = [t for t in others if not start <= t <= end]  # other detections stay outside the window

    def raw(t: float) -> float:
        result: NabResult = nab_score([*rest, t], windows, START, END, sample_period=period)
        return result.raw

    assert raw(earlier) >= raw(later) - 1e-12
