"""`EpisodeTracker.apply_run` (stretches of an open episode applied at once) against `apply` window by window."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.pipeline import episode_runs, episodes
from detector.pipeline.episodes import EpisodePolicy, EpisodeTracker, SourceRun

policies = st.builds(EpisodePolicy, open_k=st.integers(1, 3), open_n=st.integers(3, 5),
                     close_ratio=st.sampled_from([0.5, 0.75, 1.0]), quiet_windows=st.integers(1, 12),
                     cooldown_windows=st.integers(0, 4), update_interval_s=st.sampled_from([0.0, 1.0, 300.0]))


@st.composite
def batches(draw: Any) -> list[list[tuple[float, float, int]]]:
    """Batches of (ratio, score, offset step) for one source: runs of levels around the thresholds, and now and
    then a step back (a replay after a rebalance). Levels and jitter are exact binary fractions, so ratios tie
    with the closing level and with the update's growth target (1.25 x a reported peak); a score is not always
    the same multiple of its ratio (per-source and adaptive thresholds), so a new peak need not be the highest
    ratio."""
    out = []
    for _ in range(draw(st.integers(1, 4))):
        windows = []
        for _ in range(draw(st.integers(1, 6))):
            level = draw(st.sampled_from([0.25, 0.5, 0.75, 1.0, 1.25, 1.5625, 2.0, 2.5]))
            for _ in range(draw(st.integers(5, 40))):
                ratio = level * draw(st.sampled_from([0.875, 1.0, 1.0, 1.125]))
                step = draw(st.sampled_from([1] * 30 + [0, -3]))
                windows.append((ratio, ratio * draw(st.sampled_from([2.0, 2.0, 3.0, 5.0])), step))
        out.append(windows)
    return out


def runs_of(batches_: list[list[tuple[float, float, int]]], batched: bool) -> list[SourceRun]:
    """Each non-empty batch as one run of source "s", offsets following on from batch to batch."""
    runs, offset = [], 0
    for windows in filter(None, batches_):
        offsets, rows, row = [], [], -1
        for _, _, step in windows:
            if not batched:
                offset += step
            elif step == 1 and row >= 0:  # the next row of the same batched message
                row += 1
            elif step < 0:  # a message re-read
                offset, row = offset - 1, 0
            else:  # the next message
                offset, row = offset + 1, 0
            offsets.append(offset)
            rows.append(row if batched else -1)
        ratios = np.array([w[0] for w in windows], dtype=np.float64)
        segments = {k: [{"channel": k % 3, "share": 1.0}] for k, r in enumerate(ratios.tolist()) if r > 1.0}
        times = [float(o) + 0.5 * max(r, 0) for o, r in zip(offsets, rows, strict=True)]
        runs.append(SourceRun("s", np.zeros(len(windows), np.int64), np.array(offsets), np.array(rows),
                              np.array(times), np.array([w[1] for w in windows], dtype=np.float64), ratios, segments))
    return runs


def same_as_one_by_one(policy: EpisodePolicy, runs: list[SourceRun]) -> list[tuple[int, str]]:
    """Feeds the runs to one tracker by `apply_run` and to another window by window (batch b decided at 10 b s);
    asserts the same records and states after every run; returns (index in its run, kind) of the records."""
    by_run, one_by_one = EpisodeTracker(policy), EpisodeTracker(policy)
    kinds = []
    for b, run in enumerate(runs):
        got = [(k, r.kind, asdict(r.episode), r.window) for k, r in by_run.apply_run(run, 10.0 * b)]
        want = [(k, r.kind, asdict(r.episode), r.window)
                for k in range(len(run.offsets)) for r in one_by_one.apply(run.verdict(k), 10.0 * b)]
        assert got == want
        assert snapshot(by_run) == snapshot(one_by_one)
        kinds += [(k, kind) for k, kind, _, _ in got]
    return kinds


def snapshot(tracker: EpisodeTracker) -> tuple[Any, ...]:
    return ({s: st.to_dict() for s, st in tracker.states.items()}, set(tracker.dirty), set(tracker.active))


@settings(max_examples=400, deadline=None)
@given(policies, batches(), st.booleans(), st.sampled_from([1, 7, 1024]), st.sampled_from([1, 32]))
def test_a_run_gives_the_records_and_state_of_its_windows_one_by_one(policy: EpisodePolicy, batches_: list[Any],
                                                                    batched: bool, horizon: int,
                                                                    min_stretch: int) -> None:
    originals = episode_runs.HORIZON, episodes.MIN_STRETCH
    # short look-aheads and no one-by-one spells: stretches that end on no event and start with quiet carried in
    episode_runs.HORIZON, episodes.MIN_STRETCH = horizon, min_stretch
    try:
        same_as_one_by_one(policy, runs_of(batches_, batched))
    finally:
        episode_runs.HORIZON, episodes.MIN_STRETCH = originals


def test_a_long_open_episode_goes_in_one_stretch_and_still_closes_and_reports_growth(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The stretch logic is really used (not only the fallback): one call per stretch, and the events land on
    the windows that make them."""
    policy = EpisodePolicy(quiet_windows=5, update_interval_s=0.0)
    ratios = [2.0] + [1.5] * 200 + [3.0] + [1.1] * 100 + [0.1] * 5 + [2.0]
    n = len(ratios)
    run = SourceRun("s", np.zeros(n, np.int64), np.arange(n), np.full(n, -1), np.arange(n, dtype=np.float64),
                    np.array(ratios), np.array(ratios),
                    {k: [{"channel": 0}] for k, r in enumerate(ratios) if r > 1.0})
    calls = []
    original = episode_runs.apply_stretch

    def counting(*args: Any) -> None:
        calls.append(args[3:5])
        original(*args)

    monkeypatch.setattr(episodes, "apply_stretch", counting)
    records = EpisodeTracker(policy).apply_run(run, 0.0)
    assert [(k, r.kind) for k, r in records] == [(0, "episode_open"), (201, "episode_update"),
                                                 (306, "episode_close"), (307, "episode_open")]
    assert calls == [(1, 201), (202, 306)]
    closed = records[2][1].episode
    assert (closed.windows, closed.peak_ratio, closed.end_time) == (302, 3.0, 301.0)


def test_a_short_run_goes_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """At low rates a source brings a few windows per batch: numpy's per-call cost would exceed the saving."""
    monkeypatch.setattr(episodes, "apply_stretch", lambda *args: pytest.fail("a short run took the stretch path"))
    runs = runs_of([[(2.0, 4.0, 1)] * (episodes.MIN_STRETCH - 1)], batched=False)
    assert same_as_one_by_one(EpisodePolicy(), runs) == [(0, "episode_open")]


@pytest.fixture
def stretches_always(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short runs go one by one in production (MIN_STRETCH); these small cases must take the stretch path."""
    monkeypatch.setattr(episodes, "MIN_STRETCH", 1)


@pytest.mark.usefixtures("stretches_always")
def test_an_update_fires_when_the_peak_reaches_exactly_its_growth_target() -> None:
    """2.5 is exactly 1.25 x the reported 2.0: the update goes out on that window, in a stretch as one by one."""
    policy = EpisodePolicy(update_interval_s=0.0)
    runs = runs_of([[(r, 2 * r, 1) for r in [2.0, 1.5, 1.5, 2.5, 1.5]]], batched=False)
    assert same_as_one_by_one(policy, runs) == [(0, "episode_open"), (3, "episode_update")]


@pytest.mark.usefixtures("stretches_always")
def test_a_stretch_with_several_new_peaks_keeps_the_highest() -> None:
    runs = runs_of([[(r, 2 * r, 1) for r in [1.75, 1.5, 2.0, 2.25, 1.5] * 10]], batched=False)
    assert same_as_one_by_one(EpisodePolicy(), runs) == [(0, "episode_open")]


@pytest.mark.usefixtures("stretches_always")
def test_a_nan_score_in_a_stretch_hides_no_later_peak() -> None:
    runs = runs_of([[(2.0, 4.0, 1), (1.5, float("nan"), 1), (1.5, 6.0, 1), (1.5, 5.0, 1)]], batched=False)
    assert same_as_one_by_one(EpisodePolicy(), runs) == [(0, "episode_open")]


@pytest.mark.usefixtures("stretches_always")
def test_replayed_windows_in_a_run_change_nothing() -> None:
    tracker = EpisodeTracker(EpisodePolicy(quiet_windows=3))
    first = SourceRun("s", np.zeros(2, np.int64), np.array([10, 11]), np.full(2, -1), np.array([1.0, 2.0]),
                      np.array([2.0, 2.0]), np.array([2.0, 2.0]), {})
    assert [r.kind for _, r in tracker.apply_run(first, 0.0)] == ["episode_open"]
    again = SourceRun("s", np.zeros(3, np.int64), np.array([10, 11, 12]), np.full(3, -1), np.array([1.0, 2.0, 3.0]),
                      np.full(3, 2.0), np.full(3, 2.0), {})
    assert tracker.apply_run(again, 0.0) == []
    episode = tracker.states["s"].episode
    assert episode is not None and episode.windows == 3 and tracker.states["s"].last_offset == 12
