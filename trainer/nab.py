"""NAB (Numenta Anomaly Benchmark) scoring of change-point detections, in the setting of SKAB's benchmark.

Implemented from the definition in numenta/NAB (read, not copied): ``nab/sweeper.py`` (``scaledSigmoid``,
``Sweeper.calcSweepScore``, ``calcScoreByThreshold``; NAB 1.x ``nab/scorer.py`` delegates to it), ``nab/runner.py``
(``normalize``), ``nab/labeler.py`` (windows clipped to the data, overlapping windows merged); window placement and
pooling from waico/SKAB ``core/metrics.py`` (``chp_score``, taken from waico/tsad).

One series, windows ``[s, e]``, ``sigma(y) = 2 / (1 + exp(5y)) - 1`` and ``sigma(y) = -1`` for ``y > 3`` (as NAB):

- the first detection in a window is a true positive worth ``A_TP * sigma(y) / sigma(-1)`` with
  ``y = -(e - t + dt) / (e - s + dt)``: ``A_TP`` at the window start, about 0 at its end. Later detections in the
  same window count for nothing; a window without a detection costs ``-A_FN``.
- every other detection is a false positive. Before the first window it costs ``-A_FP``; after one it is worth
  ``A_FP * sigma((t - e) / (e - s))`` for the closest preceding window (NAB's sweeper): almost free just after the
  window end, ``-0.987 A_FP`` one window width later, ``-A_FP`` beyond three widths.
- ``dt`` (``sample_period``) is 0 by default: the continuous definition, window end at ``y = 0``. NAB counts rows,
  ``-(R - i + 1) / W`` for a window of ``W`` rows; on a regular grid that is the formula above with ``dt`` = the row
  spacing (1.0 for SKAB's 1 Hz rows). Its false-positive position ``(i - R) / (W - 1)`` is the formula above exactly.
- null detector (never fires): ``-A_FN`` per window; perfect detector (fires at each window start): ``A_TP`` each.

SKAB pools its files as NAB pools its corpus: ``chp_score`` sums ``[score, null, perfect]`` over all files and
normalises once, ``100 * (sum raw - sum null) / (sum perfect - sum null)``: see :func:`normalised`. SKAB's own scorer
weights true positives with a tanh-shaped curve of its own and charges every false positive a flat ``A_FP``; this
module scores as NAB does, so its numbers are not SKAB's leaderboard arithmetic.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class Profile:
    """NAB application profile: weights of true positives, false positives and false negatives (positive)."""

    a_tp: float
    a_fp: float
    a_fn: float
    a_tn: float = 1.0  # in NAB's cost matrix, unused by its scoring


PROFILES: dict[str, Profile] = {
    "standard": Profile(a_tp=1.0, a_fp=0.11, a_fn=1.0),
    "reward_low_FP": Profile(a_tp=1.0, a_fp=0.22, a_fn=1.0),
    "reward_low_FN": Profile(a_tp=1.0, a_fp=0.11, a_fn=2.0),
}
PROFILES["reward_low_FP_rate"] = PROFILES["reward_low_FP"]  # NAB's own names (config/profiles.json)
PROFILES["reward_low_FN_rate"] = PROFILES["reward_low_FN"]


@dataclass(frozen=True)
class NabResult:
    """One series: raw score, the null and perfect detectors' raw scores (for pooling), and the counts."""

    profile: Profile
    raw: float
    null: float
    perfect: float
    tp: int
    fp: int
    fn: int


def scaled_sigmoid(y: float) -> float:
    """NAB's scaled sigmoid: 2 / (1 + exp(5y)) - 1, and -1 for y > 3 (far after a window)."""
    return -1.0 if y > 3.0 else 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def _times(x: Any) -> np.ndarray:
    """Times as an array of datetime64[ns] or float64 (seconds); NaN/NaT refused."""
    a = np.asarray(x)
    if a.dtype.kind in "OM":
        a = a.astype("datetime64[ns]")
        bad = np.isnat(a)
    elif a.dtype.kind in "biuf":
        a = a.astype(np.float64)
        bad = ~np.isfinite(a)
    else:
        raise TypeError(f"times must be numbers (seconds) or datetime64, not {a.dtype}")
    if bad.any():
        raise ValueError("times must not be NaN/NaT")
    return a


def _seconds_since(x: Any, origin: np.ndarray) -> np.ndarray:
    """Float seconds from ``origin``; refuses to mix datetime64 and numeric times."""
    a = _times(x)
    if a.size == 0:
        return np.zeros(a.shape)
    if (a.dtype.kind == "M") != (origin.dtype.kind == "M"):
        raise TypeError("mixed datetime64 and numeric times")
    if a.dtype.kind == "M":
        return np.asarray((a - origin) / np.timedelta64(1, "s"), dtype=np.float64)
    return np.asarray(a - origin, dtype=np.float64)


def nab_windows(
    changepoint_times: Any,
    width: Any,
    side: Literal["right", "left", "center"] = "right",
    overlap: Literal["cut_right", "merge"] = "cut_right",
) -> np.ndarray:
    """Scoring windows, one ``[start, end]`` row per change point, in the change points' time type.

    ``width``: seconds, or a timedelta. ``side="right"`` (SKAB's ``"righter"``): the window starts at the change
    point. Overlapping windows: ``"cut_right"`` (SKAB's default) starts the later one where the earlier ends, and an
    instant shared by two windows belongs to the later one (as in NAB's sweeper); ``"merge"`` joins them (NAB).
    """
    cps = np.unique(_times(changepoint_times).ravel())
    timedelta = isinstance(width, np.timedelta64 | datetime.timedelta)  # np.timedelta64 is also an np.integer
    seconds = np.timedelta64(width) / np.timedelta64(1, "s") if timedelta else float(width)
    if not seconds > 0:
        raise ValueError(f"window width must be positive, got {width!r}")
    w: Any = np.timedelta64(round(seconds * 1e9), "ns") if cps.dtype.kind == "M" else seconds
    offsets = {"right": 0 * w, "left": -w, "center": -(w / 2)}
    if side not in offsets or overlap not in ("cut_right", "merge"):
        raise ValueError(f"unknown side {side!r} or overlap {overlap!r}")
    rows: list[list[Any]] = []
    for start in cps + offsets[side]:
        end = start + w
        if rows and start < rows[-1][1]:
            if overlap == "merge":
                rows[-1][1] = max(rows[-1][1], end)
                continue
            start = rows[-1][1]
        rows.append([start, end])
    return np.array(rows, dtype=cps.dtype).reshape(-1, 2)


def nab_score(
    detection_times: Any,
    windows: Any,
    series_start: Any,
    series_end: Any,
    profile: str | Profile = "standard",
    *,
    sample_period: float = 0.0,
) -> NabResult:
    """Raw NAB score of one series' detections (e.g. the times of rows flagged 1; each counts once).

    Only ``[series_start, series_end]`` is scored: windows are clipped to it (dropped when outside it, as NAB's
    labeler clips windows to the data) and detections outside it are ignored (pass the probation end or the start of
    the test part as ``series_start``). Windows must be sorted and disjoint, as :func:`nab_windows` returns them.
    """
    p = PROFILES[profile] if isinstance(profile, str) else profile
    if sample_period < 0:
        raise ValueError("sample_period must be >= 0")
    origin = _times(series_start).reshape(())
    span = float(_seconds_since(series_end, origin))
    if span < 0:
        raise ValueError("series_end is before series_start")
    w = _seconds_since(windows, origin).reshape(-1, 2)
    w = np.clip(w[(w[:, 1] >= 0) & (w[:, 0] <= span)], 0.0, span)
    starts, ends = w[:, 0], w[:, 1]
    if np.any(starts > ends) or np.any(starts[1:] < ends[:-1]):
        raise ValueError("windows must be sorted, disjoint [start, end] pairs")
    t = _seconds_since(detection_times, origin).ravel()
    t = np.unique(t[(t >= 0) & (t <= span)])
    k = np.searchsorted(starts, t, side="right") - 1  # the last window starting at or before each detection
    inside = (k >= 0) & (t <= ends[np.maximum(k, 0)]) if len(w) else np.zeros(t.shape, dtype=bool)

    raw, tp = 0.0, 0
    for i, (s, e) in enumerate(w):
        hits = t[inside & (k == i)]
        if hits.size:  # only the first detection counts
            length = e - s + sample_period
            y = -(e - hits[0] + sample_period) / length if length > 0 else -1.0
            raw += p.a_tp * scaled_sigmoid(y) / scaled_sigmoid(-1.0)
            tp += 1
    fn = len(w) - tp
    raw -= p.a_fn * fn
    for x, i in zip(t[~inside], k[~inside], strict=True):
        if i < 0:  # no window before it
            raw -= p.a_fp
        else:  # outside window i, so after it: i is the closest preceding window
            s, e = w[i]
            raw += p.a_fp * scaled_sigmoid((x - e) / (e - s) if e > s else math.inf)
    n = len(w)
    return NabResult(p, raw, -p.a_fn * n, p.a_tp * n, tp, int((~inside).sum()), fn)


def normalised(results: Iterable[NabResult]) -> float:
    """Pooled NAB score of many series: 100 * (sum raw - sum null) / (sum perfect - sum null), as NAB and SKAB do.

    100 is the perfect detector, 0 the null detector; false positives can take it below 0.
    """
    rs = list(results)
    if len({r.profile for r in rs}) > 1:
        raise ValueError("results scored with different profiles cannot be pooled")
    raw, null, perfect = (sum(getattr(r, f) for r in rs) for f in ("raw", "null", "perfect"))
    if perfect == null:
        raise ValueError("no scoring windows: the normalised NAB score is undefined")
    return float(100.0 * (raw - null) / (perfect - null))
