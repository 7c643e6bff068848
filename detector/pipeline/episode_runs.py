"""A source's windows of one batch applied to its open episode in stretches, not one by one.

While a source's episode is open, most of its windows change only counters: the episode's window count, end time
and peak, the source's quiet count and recent crossings. `plain_stretch` finds how far from a given window that
holds — up to, not including, the window that closes the episode or sends an update — and `apply_stretch` makes
those changes in one step with numpy. The tracker (`EpisodeTracker.apply_run`) feeds the window that ends a
stretch, and every window while no episode is open, through its per-window rule, so the records and states are
those of `apply` window by window (tests/unit/test_episode_runs.py checks that with hypothesis).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from detector.pipeline.episodes import EpisodePolicy, SourceRun, SourceState

UPDATE_GROWTH = 1.25  # an update is worth sending when the peak grew by a quarter since the last record
HORIZON = 1024  # windows looked ahead at once: the cost of one look stays bounded when closes come often


def plain_stretch(policy: EpisodePolicy, state: SourceState, run: SourceRun, start: int, now: float) -> int:
    """The index of the first window from `start` that closes the open episode or sends an update, or the end of
    the look-ahead (at most HORIZON windows on) when none does."""
    episode = state.episode
    assert episode is not None
    ratios, scores = run.ratios[start:start + HORIZON], run.scores[start:start + HORIZON]
    above = ratios > policy.close_ratio
    at = np.arange(len(ratios))
    last_above = np.maximum.accumulate(np.where(above, at, -1))
    # below-level windows in a row ending at each window, with the quiet ones carried in from before `start`
    quiet = at - last_above + np.where(last_above < 0, state.quiet, 0)
    closes = np.flatnonzero(quiet >= policy.quiet_windows)
    end = int(closes[0]) if len(closes) else len(ratios)
    if now - episode.last_update >= policy.update_interval_s:
        target = UPDATE_GROWTH * episode.reported_peak
        if episode.peak_ratio >= target:  # grown already: the next window above the closing level reports it
            fires = np.flatnonzero(above[:end])
        else:  # the peak's ratio changes only at a new peak, so that is where it first reaches the target
            fires = np.flatnonzero(_new_peaks(above[:end], scores[:end], episode.peak_score) & (ratios[:end] >= target))
        if len(fires):
            end = int(fires[0])
    return start + end


def apply_stretch(policy: EpisodePolicy, state: SourceState, run: SourceRun, start: int, stop: int) -> None:
    """Windows start..stop-1 of the run, none of which closes the episode or sends an update, applied at once."""
    episode = state.episode
    assert episode is not None
    ratios, scores = run.ratios[start:stop], run.scores[start:stop]
    above = ratios > policy.close_ratio
    hits = np.flatnonzero(above)
    if len(hits):
        last = int(hits[-1])
        episode.windows += state.quiet + last + 1  # every window up to the last one above, the dips included
        state.quiet = len(ratios) - 1 - last
        episode.end_time = float(run.times[start + last])
        peaks = np.flatnonzero(_new_peaks(above, scores, episode.peak_score))
        if len(peaks):
            p = int(peaks[-1])
            episode.peak_score, episode.peak_ratio = float(scores[p]), float(ratios[p])
            for q in peaks[::-1].tolist():  # each new peak keeps the segments before it when it has none
                segments = run.segments.get(start + q)
                if segments:
                    episode.segments = segments
                    break
    else:
        state.quiet += len(ratios)
    k = min(policy.open_n, len(ratios))
    bits = 0
    for crossed in (ratios[len(ratios) - k:] > 1.0).tolist():
        bits = (bits << 1) | crossed
    state.recent = ((state.recent << k) | bits) & ((1 << policy.open_n) - 1)
    state.last_offset, state.last_row = int(run.offsets[stop - 1]), int(run.rows[stop - 1])
    state.partition = int(run.partitions[stop - 1])


def _new_peaks(above: np.ndarray, scores: np.ndarray, peak: float) -> np.ndarray:
    """Where a window above the closing level scores above every earlier one and the episode's peak."""
    masked = np.where(above, scores, -np.inf)
    before = np.fmax.accumulate(np.concatenate(([peak], masked[:-1])))  # fmax: a NaN score is no peak, and no bar
    return masked > before
