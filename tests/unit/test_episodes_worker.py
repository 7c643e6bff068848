"""Episodes through the worker loop on in-memory seams: one incident is one open and one close, state is saved with
the outputs, and a restart or an aborted transaction neither opens a second episode nor loses the close."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from test_worker import W, msg, zero_model

from detector.config import (
    BatchConfig,
    Config,
    ConfigError,
    EpisodesConfig,
    EventsConfig,
    KafkaConfig,
    TopicsConfig,
    WorkerConfig,
)
from detector.kafka.seams import BrokerError
from detector.ops.health import Health
from detector.ops.metrics import WorkerMetrics
from detector.pipeline.assembly import build_worker
from detector.testing import MemorySink, MemorySource, MemoryStateReader, MemoryTransactionalSink

HOT = np.full(W, 3.0)  # score 3.0 against a threshold of 0.5: ratio 6
QUIET = np.zeros(W)


def config(mode: str = "episodes", exactly_once: bool = False, scores: str | None = None) -> Config:
    return Config(kafka=KafkaConfig(exactly_once=exactly_once),
                  topics=TopicsConfig(input="in", events="ev", dead_letter="dlq", scores=scores, episode_state="st"),
                  batch=BatchConfig(max_size=4, max_wait_ms=0, max_in_flight=1000),
                  events=EventsConfig(mode=mode), episodes=EpisodesConfig(quiet_windows=3, update_interval_s=1e9),
                  worker=WorkerConfig(commit_interval_ms=0))


def build(cfg: Config, source: MemorySource, sink: MemorySink, state_sink: MemorySink | None = None):
    registry = CollectorRegistry()
    worker = build_worker(config=cfg, source=source, sink=sink, model=zero_model(4), metrics=WorkerMetrics(registry),
                          health=Health(), state=MemoryStateReader(state_sink or sink), wall=lambda: 1_700_000_100.0)
    source.listener = worker
    return worker, registry


def stream(pattern: list[np.ndarray], start: int = 0, partition: int = 0) -> list:
    return [msg(start + i, values, partition=partition, key=b"pump") for i, values in enumerate(pattern)]


INCIDENT = [QUIET] * 3 + [HOT, HOT, QUIET, HOT] + [QUIET] * 5  # one incident with a dip inside it


def episode_records(records) -> list[dict]:
    return [json.loads(r.value) for r in records if r.kind == "episode"]


def run(worker, turns: int = 10) -> None:
    for _ in range(turns):
        worker.step()


def test_one_incident_is_one_open_and_one_close() -> None:
    source, sink = MemorySource(), MemorySink()
    worker, registry = build(config(), source, sink)
    source.add(stream(INCIDENT))
    run(worker)
    episodes = episode_records(sink.acked)
    assert [e["type"] for e in episodes] == ["episode_open", "episode_close"]
    opened, closed = episodes
    assert opened["episode_id"] == closed["episode_id"] == "pump@0:3" and opened["source"] == "pump"
    assert closed["start_time"] == "2023-11-14T22:13:20.003Z" and closed["end_time"] == "2023-11-14T22:13:20.006Z"
    assert closed["windows"] == 4 and closed["peak_ratio"] == 6.0 and closed["segments"][0]["share"] > 0
    assert len({e["id"] for e in episodes}) == 2  # every record has its own id
    assert not [r for r in sink.acked if r.kind == "event"]  # no per-window events in episodes mode
    states = [r for r in sink.acked if r.kind == "episode_state"]
    assert states and all(r.topic == "st" and r.partition == 0 and r.key == b"pump" for r in states)
    assert registry.get_sample_value("tsad_episodes_total", {"kind": "episode_open"}) == 1
    assert registry.get_sample_value("tsad_episodes_active") == 0
    assert registry.get_sample_value("tsad_anomalies_total", {"source": "pump"}) == 3
    assert source.committed() == {("in", 0): len(INCIDENT)}


def test_both_modes_keep_per_window_events_beside_episodes() -> None:
    source, sink = MemorySource(), MemorySink()
    worker, _ = build(config("both", scores="sc"), source, sink)
    source.add(stream(INCIDENT))
    run(worker)
    assert sum(r.kind == "event" for r in sink.acked) == 3
    assert sum(r.kind == "score" for r in sink.acked) == len(INCIDENT)
    assert [e["type"] for e in episode_records(sink.acked)] == ["episode_open", "episode_close"]


def test_a_restart_mid_episode_neither_reopens_nor_loses_the_close() -> None:
    source, sink = MemorySource(), MemorySink()
    worker, _ = build(config(), source, sink)
    source.add(stream(INCIDENT[:6]))  # the episode opens at 3 and is still open at 5
    run(worker)
    committed = source.committed()[("in", 0)]
    # the worker dies: a new one re-reads from an earlier offset than the state saw (at-least-once replays)
    replay_from = committed - 2
    second_source, second_sink = MemorySource(), MemorySink()
    second_source.add(stream(INCIDENT))
    second_source.positions[("in", 0)] = replay_from
    second, _ = build(config(), second_source, second_sink, state_sink=sink)
    second.on_assigned({("in", 0)})  # as a Kafka rebalance does: the state is read before any window
    run(second)
    all_records = episode_records(sink.acked) + episode_records(second_sink.acked)
    kinds = Counter((e["episode_id"], e["type"]) for e in {e["id"]: e for e in all_records}.values())
    assert kinds == Counter({("pump@0:3", "episode_open"): 1, ("pump@0:3", "episode_close"): 1})


def test_state_behind_an_open_transaction_holds_its_partition_until_settled(monkeypatch) -> None:
    """Exactly-once: an earlier owner killed mid-transaction leaves the state partition's last stable offset behind
    state that later owners committed; reading it then would restore a stale episode. The partition waits."""
    from detector.pipeline.episode_stage import EpisodeStage

    monkeypatch.setattr(EpisodeStage, "RETRY_S", 0.0)
    source, sink = MemorySource(), MemorySink()
    worker, _ = build(config(), source, sink)
    source.add(stream(INCIDENT[:6]))
    run(worker)
    second_source, second_sink = MemorySource(), MemorySink()
    second_source.add(stream(INCIDENT))
    second_source.positions[("in", 0)] = source.committed()[("in", 0)]
    second, _ = build(config(), second_source, second_sink, state_sink=sink)
    reader = second.processor.episodes.reader
    reader.unsettled = {0}
    second.on_assigned({("in", 0)})
    run(second, 3)  # waiting is not a broker failure: step() does not raise
    assert ("in", 0) in second_source.paused and not second_sink.acked  # nothing read before its state
    reader.unsettled = set()
    run(second)
    assert ("in", 0) not in second_source.paused
    kinds = Counter((e["episode_id"], e["type"]) for e in episode_records(sink.acked + second_sink.acked))
    assert kinds == Counter({("pump@0:3", "episode_open"): 1, ("pump@0:3", "episode_close"): 1})


def _waiting_for_state(monkeypatch, exactly_once: bool = False) -> tuple:
    """A worker owning ("in", 1) that is assigned ("in", 0) while ("in", 0)'s episode state cannot be read."""
    from detector.pipeline.episode_stage import EpisodeStage

    monkeypatch.setattr(EpisodeStage, "RETRY_S", 0.0)
    source = MemorySource()
    sink = MemoryTransactionalSink(source=source) if exactly_once else MemorySink()
    source.partitions = {("in", 1)}
    worker, _ = build(config(exactly_once=exactly_once), source, sink)
    reader = worker.processor.episodes.reader
    reader.unsettled = {0}
    source.assign({("in", 0)})
    assert ("in", 0) in source.paused and worker.processor.episodes.pending == {("in", 0)}
    return source, worker, reader


def _record_reads(monkeypatch, reader) -> list[set[int]]:
    """The state partitions each read of the episode-state topic asks for, in order."""
    read: list[set[int]] = []
    original = reader.read

    def recording(topic: str, numbers: set[int]):
        read.append(set(numbers))
        return original(topic, numbers)
    monkeypatch.setattr(reader, "read", recording)
    return read


def test_backpressure_released_leaves_a_partition_waiting_for_its_state_paused(monkeypatch) -> None:
    """A partition whose episode state is not read yet is paused; backpressure ending meanwhile must not resume it
    (its windows would be decided without the state and reopen an episode that is already open)."""
    source, worker, reader = _waiting_for_state(monkeypatch)
    worker.backpressure.update(5000)  # too much in flight: every partition paused
    assert source.paused == {("in", 0), ("in", 1)}
    worker.backpressure.update(0)  # drained
    assert source.paused == {("in", 0)}
    reader.unsettled = set()
    worker.step()  # its state is read: it resumes
    assert source.paused == set() and worker.processor.episodes.pending == set()


def test_state_read_while_backpressure_is_on_resumes_with_the_release(monkeypatch) -> None:
    source, worker, reader = _waiting_for_state(monkeypatch)
    worker.backpressure.update(5000)
    reader.unsettled = set()
    worker._load_pending_state()
    assert worker.processor.episodes.pending == set() and source.paused == {("in", 0), ("in", 1)}
    worker.backpressure.update(0)
    assert source.paused == set()


def test_a_failed_resume_after_the_state_is_read_is_retried(monkeypatch) -> None:
    source, worker, reader = _waiting_for_state(monkeypatch)
    reader.unsettled = set()
    source.fail_next("resume")
    with pytest.raises(BrokerError):
        worker._load_pending_state()
    assert ("in", 0) in source.paused and worker.processor.episodes.pending == {("in", 0)}  # waits again
    worker._load_pending_state()
    assert source.paused == set() and worker.processor.episodes.pending == set()


def test_an_abort_reads_again_only_the_state_of_partitions_served(monkeypatch) -> None:
    """Reading a waiting partition's state too would fail while an earlier owner's transaction holds it, and the
    abort's recovery (retried before every poll) would stall the whole worker until that transaction times out."""
    _source, worker, reader = _waiting_for_state(monkeypatch, exactly_once=True)
    read = _record_reads(monkeypatch, reader)
    worker.commits._abort("injected")  # rewinds every assigned partition and reads their state again
    worker.commits.recover()  # finished: does not raise
    assert read == [{1}]  # ("in", 0) still waits for its own retry


def test_a_failed_backpressure_pause_on_assignment_still_reads_the_state_first(monkeypatch) -> None:
    source, sink = MemorySource(), MemorySink()
    source.partitions = {("in", 1)}
    worker, _ = build(config(), source, sink)
    read = _record_reads(monkeypatch, worker.processor.episodes.reader)
    worker.backpressure.update(5000)
    source.fail_next("pause")
    with pytest.raises(BrokerError):
        source.assign({("in", 0)})  # the pause of a backpressured worker fails inside the assignment
    assert read == [{0}] and worker.processor.episodes.pending == set()  # its state was read first
    worker.backpressure.update(5000)  # the next loop turn pauses what was missed
    assert source.paused == {("in", 0), ("in", 1)}


def test_an_aborted_transaction_rolls_episode_state_back_with_the_offsets() -> None:
    source = MemorySource()
    sink = MemoryTransactionalSink(source=source, auto_ack=False)
    worker, registry = build(config(exactly_once=True), source, sink)
    source.add(stream(INCIDENT[:5]))
    worker.step()  # the episode opens inside a transaction that will fail
    sink.fail(BrokerError("broker away"))
    sink.auto_ack = True
    source.add(stream(INCIDENT[5:], start=5))
    run(worker, 15)
    assert registry.get_sample_value("tsad_transactions_total", {"result": "aborted"}) >= 1
    visible = episode_records(sink.visible)
    assert Counter(e["type"] for e in visible) == Counter({"episode_open": 1, "episode_close": 1})
    assert source.committed() == {("in", 0): len(INCIDENT)}


class _Layout:
    def __init__(self, partitions: dict[str, int]) -> None:
        self.counts = partitions

    def partitions(self, topic: str) -> int | None:
        return self.counts.get(topic)

    def read(self, topic: str, partitions: set[int]) -> list:
        return []

    def close(self) -> None:
        pass


def test_the_state_topic_must_match_the_input(monkeypatch) -> None:
    import pytest

    from detector.config import ConfigError
    from detector.kafka import state_topic

    cfg = Config(topics=TopicsConfig(input="in"))
    assert cfg.state_topic == "in-tsad-episode-state"
    with pytest.raises(ConfigError, match="has 2 partitions, the input 'in' has 4"):
        state_topic.ensure_state_topic(cfg, _Layout({"in": 4, "in-tsad-episode-state": 2}))
    with pytest.raises(ConfigError, match="does not exist"):
        state_topic.ensure_state_topic(cfg, _Layout({}))
    created: list = []
    monkeypatch.setattr(state_topic, "_create", lambda _c, name, n: created.append((name, n)))
    state_topic.ensure_state_topic(cfg, _Layout({"in": 4}))
    assert created == [("in-tsad-episode-state", 4)]


def test_each_consumer_group_keeps_its_own_episode_state_unless_one_is_named() -> None:
    """Two deployments reading one input (say a canary model in its own group) must not restore each other's
    episodes: the default state topic follows the group, as committed offsets do."""
    from detector.config import KafkaConfig, load_config

    prod = load_config(None, env={"TSAD_TOPICS_INPUT": "metrics", "TSAD_KAFKA_GROUP_ID": "tsad-prod"})
    canary = load_config(None, env={"TSAD_TOPICS_INPUT": "metrics", "TSAD_KAFKA_GROUP_ID": "tsad-canary"})
    assert (prod.state_topic, canary.state_topic) == ("metrics-tsad-prod-episode-state",
                                                      "metrics-tsad-canary-episode-state")
    odd = Config(kafka=KafkaConfig(group_id="team a/ml:v2"), topics=TopicsConfig(input="in"))
    assert odd.state_topic == "in-team_a_ml_v2-episode-state"  # only [A-Za-z0-9._-] make a topic name
    named = Config(kafka=KafkaConfig(group_id="g"), topics=TopicsConfig(input="in", episode_state="shared-state"))
    assert named.state_topic == "shared-state"
    with pytest.raises(ConfigError, match="longer than Kafka's 249 characters"):
        load_config(None, env={"TSAD_TOPICS_INPUT": "i" * 200, "TSAD_KAFKA_GROUP_ID": "g" * 40})


def test_the_earlier_default_state_topic_is_not_left_behind_silently(monkeypatch) -> None:
    """A deployment that relied on '<input>-episode-state' must choose: keep it, or start afresh; never a new empty
    topic while its open episodes sit in the old one."""
    from detector.kafka import state_topic

    created: list = []
    monkeypatch.setattr(state_topic, "_create", lambda _c, name, n: created.append((name, n)))
    cfg = Config(topics=TopicsConfig(input="in"))
    with pytest.raises(ConfigError, match=r"'in-episode-state', the earlier default, exists: set "
                                          r"topics.episode_state to 'in-episode-state'.*or to 'in-tsad-episode-state'"):
        state_topic.ensure_state_topic(cfg, _Layout({"in": 4, "in-episode-state": 4}))
    assert created == []
    kept = Config(topics=TopicsConfig(input="in", episode_state="in-episode-state"))
    state_topic.ensure_state_topic(kept, _Layout({"in": 4, "in-episode-state": 4}))
    fresh = Config(topics=TopicsConfig(input="in", episode_state="in-tsad-episode-state"))
    state_topic.ensure_state_topic(fresh, _Layout({"in": 4, "in-episode-state": 4}))
    assert created == [("in-tsad-episode-state", 4)]


def test_an_adaptive_threshold_follows_a_source_within_its_bounds() -> None:
    from detector.config import AdaptiveConfig

    cfg = Config(topics=TopicsConfig(input="in", events="ev", dead_letter="dlq", episode_state="st"),
                 batch=BatchConfig(max_size=50, max_wait_ms=0, max_in_flight=10_000),
                 adaptive=AdaptiveConfig(enabled=True, warmup=100, rate=0.5, lower=0.5, upper=2.0),
                 worker=WorkerConfig(commit_interval_ms=0))
    source, sink = MemorySource(), MemorySink()
    worker, registry = build(cfg, source, sink)
    rng = np.random.default_rng(0)
    quiet = [np.full(W, 0.05 * rng.uniform(0.8, 1.2)) for _ in range(600)]  # scores ~0.05, threshold 0.5
    source.add(stream(quiet))
    run(worker, 20)
    state = worker.processor.episodes.tracker.states["pump"]
    learnt = 1.5 * np.exp(state.adaptive_q)
    assert state.adaptive_n == 600 and learnt < 0.25  # it learnt the source's own, lower level ...
    # ... but is clamped at lower x calibrated = 0.25: a window at 0.3 alarms, one at 0.2 does not
    source.add(stream([np.full(W, 0.3), np.full(W, 0.2)], start=600))
    run(worker, 3)
    windows = [json.loads(r.value) for r in sink.acked if r.kind == "episode"]
    assert [e["type"] for e in windows] == ["episode_open"] and windows[0]["peak_score"] == 0.3
    saved = [r for r in sink.acked if r.kind == "episode_state"]
    assert saved and json.loads(saved[-1].value)["adaptive_n"] >= 100  # learnt state is saved with the episodes'
    assert registry.get_sample_value("tsad_episodes_total", {"kind": "episode_open"}) == 1
