"""The episode state machine on hand-made verdict streams."""

from __future__ import annotations

import pytest

from detector.pipeline.episodes import EpisodePolicy, EpisodeTracker, SourceState, WindowVerdict


def feed(tracker: EpisodeTracker, ratios: list[float], source: str = "pump", start: int = 0, now: float = 0.0):
    out = []
    for i, r in enumerate(ratios):
        w = WindowVerdict(source, 0, start + i, float(start + i), r * 0.1, r,
                          [{"start": 0, "end": 10, "share": 1.0}] if r > 1 else None)
        out += [(rec.kind, start + i, rec.episode.id) for rec in tracker.apply(w, now + i)]
    return out


def test_one_incident_is_one_episode() -> None:
    tracker = EpisodeTracker(EpisodePolicy(quiet_windows=3, update_interval_s=1e9))
    ratios = [0.2, 0.3, 1.5, 2.0, 0.5, 1.8, 0.9, 0.85, 0.3, 0.2, 0.1, 0.2]
    records = feed(tracker, ratios)
    # opens at 2; 0.5 at 4 is below the 0.8 closing level but 1.8 follows before 3 quiet windows; 0.9 and 0.85
    # stay above the closing level (hysteresis); 8, 9, 10 are quiet: it closes at 10
    assert records == [("episode_open", 2, "pump@0:2"), ("episode_close", 10, "pump@0:2")]
    assert tracker.open_episodes == 0


def test_k_of_n_opening_and_cooldown() -> None:
    tracker = EpisodeTracker(EpisodePolicy(open_k=2, open_n=3, quiet_windows=1, cooldown_windows=2))
    records = feed(tracker, [1.5, 0.1, 0.1, 1.5, 0.1, 1.6, 0.1, 1.7, 1.7, 0.1, 1.9, 0.1])
    # 0: 1 of 3; 3: 1 of 3 (0 fell out); 5: 3 and 5 cross -> open; 6 quiet -> close, cooldown 2 (7, 8 ignored)
    # 9 resets nothing; 10: history was cleared on close, 8 and 10 are in it -> open at 10 (2 of 3: 8, 10)
    assert [(k, i) for k, i, _ in records] == [("episode_open", 5), ("episode_close", 6), ("episode_open", 10),
                                               ("episode_close", 11)]


def test_updates_are_rate_limited_and_only_when_the_peak_grows() -> None:
    tracker = EpisodeTracker(EpisodePolicy(quiet_windows=5, update_interval_s=2.0))
    records = feed(tracker, [1.2, 1.6, 1.1, 2.0, 2.1, 1.0, 3.0, 1.5])
    # open at 0 (t=0, peak 1.2); 1: peak 1.6 (+33%) but only 1 s later; 2: 2 s after the open, peak 1.6 >= 1.25 x 1.2
    # -> update; 3: 2.0 is +25% of 1.6 but 1 s later; 4: 2 s later, peak 2.1 >= 2.0 -> update; 6: 3.0, 2 s -> update
    assert [(k, i) for k, i, _ in records] == [("episode_open", 0), ("episode_update", 2), ("episode_update", 4),
                                               ("episode_update", 6)]
    small = EpisodeTracker(EpisodePolicy(quiet_windows=5, update_interval_s=0.0))
    assert [k for k, _, _ in feed(small, [2.0, 2.2, 2.4, 2.6])] == ["episode_open", "episode_update"]  # 2.6 >= 2.5
    episode = tracker.states["pump"].episode
    assert episode is not None and episode.peak_ratio == 3.0 and episode.windows == 8


def test_replayed_windows_change_nothing_and_state_round_trips() -> None:
    tracker = EpisodeTracker(EpisodePolicy(quiet_windows=2))
    assert feed(tracker, [0.1, 1.5, 1.2]) == [("episode_open", 1, "pump@0:1")]
    saved = {s: st.to_dict() for s, st in tracker.take_dirty().items()}
    restored = EpisodeTracker(EpisodePolicy(quiet_windows=2),
                              {s: SourceState.from_dict(d) for s, d in saved.items()})
    # a restarted worker re-reads offsets 1..4: 1 and 2 were applied already, 3 and 4 close the episode
    assert feed(restored, [1.5, 1.2, 0.1, 0.1], start=1) == [("episode_close", 4, "pump@0:1")]


def test_quiet_sources_are_not_tracked_as_dirty() -> None:
    tracker = EpisodeTracker()
    feed(tracker, [0.1] * 20, source="idle")
    assert tracker.take_dirty() == {} and not tracker.needs("idle")
    feed(tracker, [1.2], source="hot")
    assert set(tracker.take_dirty()) == {"hot"} and tracker.needs("hot")


def test_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="open_k"):
        EpisodePolicy(open_k=3, open_n=2)
    with pytest.raises(ValueError, match="close_ratio"):
        EpisodePolicy(close_ratio=1.5)


def test_records_are_snapshots() -> None:
    tracker = EpisodeTracker(EpisodePolicy(quiet_windows=5))
    records = [r for i, ratio in enumerate([2.0, 3.0, 4.0])
               for r in tracker.apply(WindowVerdict("s", 0, i, float(i), ratio, ratio), float(i))]
    assert records[0].kind == "episode_open" and records[0].episode.windows == 1 and records[0].episode.end_time == 0
