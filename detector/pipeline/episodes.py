"""Alert episodes: per source, one incident is one episode, not hundreds of per-window events.

Deciding stays the threshold's job; this turns a source's stream of window verdicts into episodes:

- an episode **opens** when `open_k` of the source's last `open_n` windows cross the threshold (ratio > 1) and no
  cooldown is running;
- it **stays open** while windows keep crossing the lower closing level (`close_ratio` × threshold: hysteresis,
  so a score hovering at the threshold does not flap);
- it **closes** after `quiet_windows` consecutive windows below the closing level; then `cooldown_windows` more
  windows must pass before the source can open a new one.

Records: `episode_open`, `episode_update` (at most one per `update_interval_s` per episode, and only when its peak
grew by a quarter since the last record) and `episode_close`, each with the episode id, source, start/end event
times, peak score and ratio, window count and the segments (channels) of the peak window.

Replays are harmless: each source remembers the input offset of the last window it applied (windows of one source
share a partition), and a window at or below it — re-read after a crash or a rebalance — changes nothing. An
episode's id is derived from the window that opened it, so a re-emitted record carries the same id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from detector.pipeline.episode_runs import UPDATE_GROWTH, apply_stretch, plain_stretch

MIN_STRETCH = 32  # a shorter stretch is not worth its numpy calls: the next this many windows go one by one


@dataclass(frozen=True)
class EpisodePolicy:
    open_k: int = 1
    open_n: int = 1
    close_ratio: float = 0.8
    quiet_windows: int = 50
    cooldown_windows: int = 0
    update_interval_s: float = 300.0

    def __post_init__(self) -> None:
        if not 1 <= self.open_k <= self.open_n <= 64:
            raise ValueError(f"episodes: need 1 <= open_k <= open_n <= 64, got {self.open_k} of {self.open_n}")
        if not 0.0 < self.close_ratio <= 1.0:
            raise ValueError(f"episodes: close_ratio must be in (0, 1], got {self.close_ratio}")
        if self.quiet_windows < 1 or self.cooldown_windows < 0 or self.update_interval_s < 0:
            raise ValueError("episodes: quiet_windows >= 1, cooldown_windows >= 0, update_interval_s >= 0")


@dataclass
class Episode:
    id: str
    source: str
    start_time: float  # event time of the window that opened it
    end_time: float  # event time of the last window that still crossed the closing level
    peak_score: float
    peak_ratio: float
    windows: int  # windows from the opening one to the last one that crossed the closing level
    segments: list[dict[str, Any]] | None  # where the peak window's error sat
    opened_at: float  # detection (wall) time of the open
    last_update: float = 0.0
    reported_peak: float = 0.0  # peak ratio of the last record sent


@dataclass
class SourceState:
    """Everything an episode decision needs about one source; small, and saved in the episode-state topic."""

    last_offset: int = -1
    partition: int = -1  # the input partition the source's windows arrive on
    last_row: int = -1  # row of the last window applied, within a batched message
    recent: int = 0  # bit i: the i-th most recent window crossed the threshold
    quiet: int = 0  # consecutive windows below the closing level while an episode is open
    cooldown: int = 0  # windows still to pass before a new episode may open
    episode: Episode | None = None
    adaptive_q: float = 0.0  # log of the tracked score quantile (pipeline/adaptive.py), when adaptive is on
    adaptive_n: int = 0  # normal windows it has learnt from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> SourceState:
        episode = data.get("episode")
        return SourceState(int(data["last_offset"]), int(data.get("partition", -1)), int(data.get("last_row", -1)),
                           int(data["recent"]), int(data["quiet"]), int(data["cooldown"]),
                           None if episode is None else Episode(**episode), float(data.get("adaptive_q", 0.0)),
                           int(data.get("adaptive_n", 0)))


class WindowVerdict(NamedTuple):
    """One window's decision, as the tracker needs it (a tuple: one is made per window of an active source, and a
    frozen dataclass cost more to build than the tracker spends on it)."""

    source: str
    partition: int
    offset: int
    event_time: float
    score: float
    ratio: float  # score / threshold
    segments: list[dict[str, Any]] | None = None  # for windows above the threshold
    row: int = -1  # within a batched message


class SourceRun(NamedTuple):
    """One source's windows of a batch, in order, as columns (what `EpisodeTracker.apply_run` takes)."""

    source: str
    partitions: np.ndarray  # int64
    offsets: np.ndarray  # int64
    rows: np.ndarray  # int64; -1: not in a batched message
    times: np.ndarray  # float64, event times
    scores: np.ndarray  # float64
    ratios: np.ndarray  # float64, score / threshold
    segments: Mapping[int, list[dict[str, Any]] | None]  # by index in the run, for windows above the threshold

    def verdict(self, k: int) -> WindowVerdict:
        return WindowVerdict(self.source, int(self.partitions[k]), int(self.offsets[k]), float(self.times[k]),
                             float(self.scores[k]), float(self.ratios[k]), self.segments.get(k), int(self.rows[k]))

    def ordered_after(self, offset: int, row: int) -> bool:
        """Whether every window comes after the one before it and after (offset, row): nothing is a replay."""
        o, r = self.offsets, self.rows
        later = (o[1:] > o[:-1]) | ((o[1:] == o[:-1]) & (r[1:] > r[:-1]))
        return bool(later.all()) and (int(o[0]), int(r[0])) > (offset, row)


@dataclass(frozen=True)
class EpisodeRecord:
    kind: str  # episode_open | episode_update | episode_close
    episode: Episode  # a snapshot: the episode as it was when the record was made
    window: WindowVerdict  # the window whose arrival produced the record (its input offset guards it)

    def body(self, times: dict[float, str], detected_at: str, model: dict[str, str],
             threshold: float) -> dict[str, Any]:
        """The record as JSON-able fields; `times` maps event times (epoch seconds) to their ISO-8601 text."""
        e = self.episode
        at = f"{self.window.offset}" + (f".{self.window.row}" if self.window.row >= 0 else "")
        return {"schema": 1, "type": self.kind, "id": f"{e.id}/{self.kind}/{at}",
                "episode_id": e.id, "source": e.source, "start_time": times[e.start_time],
                "end_time": times[e.end_time] if self.kind == "episode_close" else None,
                "last_time": times[e.end_time], "peak_score": round(e.peak_score, 6),
                "peak_ratio": round(e.peak_ratio, 4), "windows": e.windows, "segments": e.segments,
                "detection_time": detected_at, "model": model, "threshold": round(threshold, 6)}


@dataclass
class EpisodeTracker:
    """Episode state for every source this worker owns; `apply` feeds one window at a time, in offset order."""

    policy: EpisodePolicy = field(default_factory=EpisodePolicy)
    states: dict[str, SourceState] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)  # sources whose state changed since `take_dirty`
    active: set[str] = field(default_factory=set)  # sources whose quiet windows still change their state

    def __post_init__(self) -> None:
        self.active = {s for s, st in self.states.items() if _live(st)}

    @property
    def open_episodes(self) -> int:
        return sum(1 for s in self.states.values() if s.episode is not None)

    def needs(self, source: str) -> bool:
        """Whether a window of `source` that does not cross the threshold still changes its state."""
        return source in self.active

    def put(self, source: str, state: SourceState) -> None:
        self.states[source] = state
        (self.active.add if _live(state) else self.active.discard)(source)

    def apply(self, w: WindowVerdict, now: float) -> list[EpisodeRecord]:
        """The records this window produces: none, or one."""
        state = self.states.get(w.source)
        if state is None:
            state = self.states[w.source] = SourceState()
        record = self._apply(state, w, now)
        if _live(state):
            self.active.add(w.source)
        else:
            self.active.discard(w.source)
        return [] if record is None else [record]

    def apply_run(self, run: SourceRun, now: float) -> list[tuple[int, EpisodeRecord]]:
        """(index in the run, record) for one source's windows of a batch: the same records and state as `apply`
        on each window in turn; while an episode is open, the windows between its events go in one step."""
        state = self.states.get(run.source)
        if state is None:
            state = self.states[run.source] = SourceState()
        out: list[tuple[int, EpisodeRecord]] = []
        n, k, one_by_one = len(run.offsets), 0, 0
        if n < MIN_STRETCH or not run.ordered_after(state.last_offset, state.last_row):
            one_by_one = n  # a few windows (low rates) are cheaper one by one; replays: the per-window rule knows them
        while k < n:
            if state.episode is not None and k >= one_by_one:
                stop = plain_stretch(self.policy, state, run, k, now)
                if stop > k:
                    apply_stretch(self.policy, state, run, k, stop)
                    self.dirty.add(run.source)
                if stop - k < MIN_STRETCH:
                    one_by_one = stop + MIN_STRETCH
                k = stop
                if k == n:
                    break
            record = self._apply(state, run.verdict(k), now)
            if record is not None:
                out.append((k, record))
            k += 1
        (self.active.add if _live(state) else self.active.discard)(run.source)
        return out

    def _apply(self, state: SourceState, w: WindowVerdict, now: float) -> EpisodeRecord | None:
        if (w.offset, w.row) <= (state.last_offset, state.last_row):
            return None  # re-read after a crash or a rebalance: already applied
        state.last_offset, state.last_row, state.partition = w.offset, w.row, w.partition
        crossed = w.ratio > 1.0
        if crossed or state.episode is not None or state.recent or state.cooldown:
            self.dirty.add(w.source)
        p = self.policy
        state.recent = ((state.recent << 1) | crossed) & ((1 << p.open_n) - 1)
        episode = state.episode
        if episode is None:
            if state.cooldown:
                state.cooldown -= 1
            elif crossed and bin(state.recent).count("1") >= p.open_k:
                where = f"{w.partition}:{w.offset}" + (f".{w.row}" if w.row >= 0 else "")
                state.episode = Episode(f"{w.source}@{where}", w.source, w.event_time,
                                        w.event_time, w.score, w.ratio, 1, w.segments, now, now, w.ratio)
                state.quiet = 0
                return EpisodeRecord("episode_open", replace(state.episode), w)
            return None
        if w.ratio > p.close_ratio:
            episode.windows += 1 + state.quiet  # the dip it just came back from is part of the episode
            state.quiet = 0
            episode.end_time = w.event_time
            if w.score > episode.peak_score:
                episode.peak_score, episode.peak_ratio = w.score, w.ratio
                episode.segments = w.segments or episode.segments
            grown = episode.peak_ratio >= UPDATE_GROWTH * episode.reported_peak
            if grown and now - episode.last_update >= p.update_interval_s:
                episode.last_update, episode.reported_peak = now, episode.peak_ratio
                return EpisodeRecord("episode_update", replace(episode), w)
            return None
        state.quiet += 1
        if state.quiet >= p.quiet_windows:
            state.episode, state.quiet, state.cooldown, state.recent = None, 0, p.cooldown_windows, 0
            return EpisodeRecord("episode_close", episode, w)
        return None

    def take_dirty(self) -> dict[str, SourceState]:
        """The states changed since the last call (to be saved), by source."""
        out = {source: self.states[source] for source in self.dirty if source in self.states}
        self.dirty = set()
        return out

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget the sources of input partitions given up (their next owner loads them from the state topic)."""
        self.drop_sources({s for s, st in self.states.items() if st.partition in partitions})

    def drop_sources(self, sources: set[str]) -> None:
        for source in sources:
            self.states.pop(source, None)
            self.dirty.discard(source)
            self.active.discard(source)


def _live(state: SourceState) -> bool:
    return state.episode is not None or state.recent != 0 or state.cooldown > 0
