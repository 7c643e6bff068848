"""One suite of Source/Sink checks, run over every implementation of the seams: the in-memory fakes the unit tests
rely on, and both client backends against the real broker. A fake that passed where a client failed (or the other
way round) would make the unit tests prove the wrong thing."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backends import KafkaBackend, MemoryBackend, poll_until

from detector.kafka.seams import BrokerError, InputMessage, OutputRecord, TopicPartition


@pytest.fixture(params=["memory", "kafka-python", "confluent"])
def backend(request):
    if request.param == "memory":
        b = MemoryBackend()
    else:
        kafka = request.getfixturevalue("kafka")
        b = KafkaBackend(request.param, kafka.bootstrap, request.getfixturevalue("new_topic"))
    yield b
    b.close()


def _values(messages: list[InputMessage]) -> list[bytes]:
    return [m.value or b"" for m in messages]


def _commit_and_wait(backend, source, tp: TopicPartition, offset: int) -> None:
    """Commit and poll until the commit landed (the librdkafka backend commits asynchronously)."""
    source.commit({tp: offset})
    deadline = time.monotonic() + 10
    while backend.committed_offset(source, tp) != offset:
        assert time.monotonic() < deadline, "the commit never landed"
        source.poll(0.1, 1)


def _started(backend, n: int = 10, exactly_once: bool = False):
    """A source on a fresh topic holding n messages, all consumed once (so partitions are assigned)."""
    topic = backend.topic("contract")
    source = backend.source(topic, exactly_once=exactly_once)
    backend.produce(topic, [b"m%d" % i for i in range(n)])
    got = poll_until(source, n)
    assert _values(got) == [b"m%d" % i for i in range(n)]
    return topic, source


def test_poll_never_returns_more_than_asked_and_keeps_order(backend) -> None:
    topic = backend.topic("limits")
    source = backend.source(topic)
    backend.produce(topic, [b"m%d" % i for i in range(25)])
    got = poll_until(source, 25, max_records=4)  # asserts every poll returned at most 4
    assert _values(got) == [b"m%d" % i for i in range(25)]
    assert [m.offset for m in got] == list(range(25))
    assert source.poll(0.5, 10) == []  # nothing is delivered twice


def test_pause_holds_back_and_resume_releases(backend) -> None:
    topic, source = _started(backend, 3)
    assigned = source.assignment()
    assert assigned == {(topic, 0)}
    source.pause(assigned)
    backend.produce(topic, [b"late-1", b"late-2"])
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert source.poll(0.2, 10) == [], "a paused partition was fetched"
    source.resume(assigned)
    assert _values(poll_until(source, 2)) == [b"late-1", b"late-2"]


def test_a_partition_assigned_again_starts_afresh_from_its_committed_offset(backend) -> None:
    """Given up and assigned again, even to the same member, a partition is read from its committed offset and is
    not paused: the worker leaves a revoked partition's unfinished windows to the next owner and drops its pause.
    (librdkafka kept a pause through a loss and a new assignment, and a worker paused by backpressure in a broker
    outage never fetched again; kafka-python 3.0 kept both pause and position through an eager rebalance.)"""
    topic, source = _started(backend, 4)
    _commit_and_wait(backend, source, (topic, 0), 2)
    source.pause(source.assignment())
    got = _values(backend.rebalance(source))
    assert source.assignment() == {(topic, 0)}
    backend.produce(topic, [b"after"])
    deadline = time.monotonic() + 30
    while b"after" not in got:
        assert time.monotonic() < deadline, f"the partition assigned again was not fetched (got {got})"
        got += _values(source.poll(0.2, 10))
    assert got == [b"m2", b"m3", b"after"]


def test_a_commit_inside_a_revocation_lands_or_fails_as_a_broker_error(backend) -> None:
    """The worker commits what is safe when partitions are revoked. librdkafka commits synchronously there;
    kafka-python 3.0 runs the callback on its I/O thread, where a blocking commit raises RuntimeError: it must
    leave as BrokerError (which the worker's commit policy absorbs), never escape the callback as anything else."""
    topic, source = _started(backend, 4)
    outcome: list[str] = []

    def commit_three(partitions: set[TopicPartition]) -> None:
        try:
            source.commit({(topic, 0): 3})
            outcome.append("committed")
        except BrokerError as exc:
            outcome.append(f"refused: {exc}")

    backend.on_revoke(source, commit_three)
    backend.rebalance(source)
    assert outcome, "no revocation was seen"
    if backend.name == "kafka-python":
        assert outcome[0].startswith("refused: offset commit: RuntimeError"), outcome
    else:
        assert outcome[0] == "committed"
        assert backend.committed_offset(source, (topic, 0)) == 3


def test_rewind_returns_to_the_committed_offset(backend) -> None:
    topic, source = _started(backend, 10)
    _commit_and_wait(backend, source, (topic, 0), 4)
    source.rewind(source.assignment())
    again = poll_until(source, 6)
    assert [m.offset for m in again] == list(range(4, 10))


def test_a_refused_commit_of_the_librdkafka_source_surfaces_at_the_next_commit(kafka, new_topic) -> None:
    """librdkafka commits asynchronously (its consumer serves one call at a time, so a blocking commit would hold up
    the loop's polls); the broker's refusal comes back through on_commit and is raised by the next commit."""
    backend = KafkaBackend("confluent", kafka.bootstrap, new_topic)
    try:
        topic, source = _started(backend, 2)
        source.commit({(topic, 7): 1})  # the topic has one partition: the broker refuses this one
        deadline = time.monotonic() + 10
        with pytest.raises(BrokerError, match="an earlier offset commit failed"):
            while time.monotonic() < deadline:
                source.poll(0.2, 1)  # serves the commit's result
                source.commit({(topic, 0): 1})
        source.commit({(topic, 0): 2})  # reported once
        while backend.committed_offset(source, (topic, 0)) != 2:
            assert time.monotonic() < deadline + 10, "the commit never landed"
            source.poll(0.1, 1)
    finally:
        backend.close()


def test_sink_acknowledges_every_record(backend) -> None:
    topic, _source = _started(backend, 1)
    sink = backend.sink()
    out_topic = backend.topic("out")
    done: list[tuple[OutputRecord, Exception | None]] = []
    ref = InputMessage(topic, 0, 0, None, b"", [], 0)
    for i in range(20):
        sink.send(OutputRecord("score", out_topic, b"k", b"r%d" % i, [], ref), lambda r, e: done.append((r, e)))
    deadline = time.monotonic() + 20
    while len(done) < 20 and time.monotonic() < deadline:
        sink.flush(1.0)
        sink.run_delivery_callbacks()
    assert len(done) == 20 and all(error is None for _, error in done)


@pytest.mark.parametrize("transactional", [False, True])
def test_connect_is_bounded_never_raises_and_leaves_a_sink_that_sends(backend, transactional: bool) -> None:
    """Sink.connect (at start-up, so the first records do not wait for metadata): within its time limit even for a
    topic that does not exist (kafka-python's partitions_for would wait max_block_ms for it), never raising."""
    topic, source = _started(backend, 1, exactly_once=transactional)
    sink = backend.sink(transactional=transactional, source=source if transactional else None)
    out_topic = backend.topic("connected")
    began = time.monotonic()
    sink.connect([out_topic, f"{out_topic}-missing"], 1.0)
    assert time.monotonic() - began < 1.0 + 1.5  # unbounded, kafka-python would wait max_block_ms (5 s) here
    if backend.name == "kafka-python":  # its metadata cache is visible: the existing topic's partitions are known
        assert sink.producer._metadata.partitions_for_topic(out_topic) == {0}  # type: ignore[attr-defined]
    done: list[Exception | None] = []
    ref = InputMessage(topic, 0, 0, None, b"", [], 0)
    sink.send(OutputRecord("score", out_topic, b"k", b"v", [], ref), lambda _r, e: done.append(e))
    sink.flush(10)
    sink.run_delivery_callbacks()
    assert done == [None]
    if transactional:
        sink.commit_transaction({(topic, 0): 1}, source.group_metadata())
        assert backend.committed_outputs(out_topic, 1, timeout=10) == [b"v"]


def test_transactional_records_are_visible_only_with_their_commit(backend) -> None:
    topic, source = _started(backend, 3, exactly_once=True)
    sink = backend.sink(transactional=True, source=source)
    out_topic = backend.topic("txn")
    ref = InputMessage(topic, 0, 0, None, b"", [], 0)
    acked: list[Exception | None] = []
    for i in range(3):
        sink.send(OutputRecord("score", out_topic, b"k", b"c%d" % i, [], ref), lambda _r, e: acked.append(e))
    sink.flush(10)
    sink.run_delivery_callbacks()
    assert acked == [None, None, None]
    assert backend.committed_outputs(out_topic, 0, timeout=2) == []  # acknowledged, not yet visible
    sink.commit_transaction({(topic, 0): 3}, source.group_metadata())
    assert sorted(backend.committed_outputs(out_topic, 3, timeout=10)) == [b"c0", b"c1", b"c2"]
    assert backend.committed_offset(source, (topic, 0)) == 3  # the offsets committed with the outputs
    for i in range(2):
        sink.send(OutputRecord("score", out_topic, b"k", b"a%d" % i, [], ref), lambda _r, e: acked.append(e))
    sink.flush(10)
    sink.abort_transaction()
    assert sorted(backend.committed_outputs(out_topic, 3, timeout=3)) == [b"c0", b"c1", b"c2"]


@pytest.mark.parametrize("method", ["poll", "pause", "resume", "assignment", "commit", "rewind", "group_metadata",
                                    "lag"])
def test_source_client_errors_leave_as_broker_error(backend, method: str) -> None:
    topic, source = _started(backend, 2)
    args = {"poll": (1.0, 10), "pause": ({(topic, 0)},), "resume": ({(topic, 0)},), "assignment": (),
            "commit": ({(topic, 0): 1},), "rewind": ({(topic, 0)},), "group_metadata": (), "lag": ()}[method]
    backend.break_source(source, method)
    call = getattr(source, method)
    with pytest.raises(BrokerError):
        call(*args)
    call(*args)  # the failure was one-off: the source works again


def test_transaction_client_errors_leave_as_broker_error(backend) -> None:
    topic, source = _started(backend, 1, exactly_once=True)
    sink = backend.sink(transactional=True, source=source)
    ref = InputMessage(topic, 0, 0, None, b"", [], 0)
    sink.send(OutputRecord("score", backend.topic("t"), b"k", b"x", [], ref), lambda _r, _e: None)
    sink.flush(10)
    backend.break_sink(sink, "commit_transaction")
    with pytest.raises(BrokerError):
        sink.commit_transaction({(topic, 0): 1}, source.group_metadata())


def test_a_refused_abort_leaves_a_sink_that_commits_the_next_transaction(backend) -> None:
    """The Kafka sinks replace a producer whose abort is refused (a new one with the same transactional id fences
    it); the fake refuses once and aborts when asked again. Either way the next transaction commits."""
    topic, source = _started(backend, 1, exactly_once=True)
    sink = backend.sink(transactional=True, source=source)
    out = backend.topic("t")
    ref = InputMessage(topic, 0, 0, None, b"", [], 0)
    sink.send(OutputRecord("score", out, b"k", b"x", [], ref), lambda _r, _e: None)
    sink.flush(10)
    backend.break_sink(sink, "abort_transaction")
    try:
        sink.abort_transaction()
    except BrokerError:
        sink.abort_transaction()
    sink.send(OutputRecord("score", out, b"k", b"y", [], ref), lambda _r, _e: None)
    sink.flush(10)
    sink.commit_transaction({(topic, 0): 1}, source.group_metadata())
    assert backend.committed_outputs(out, 1, timeout=10) == [b"y"]


def test_failed_sends_and_flushes_are_reported_not_raised(backend) -> None:
    topic, _source = _started(backend, 1)
    sink = backend.sink()
    ref = InputMessage(topic, 0, 0, None, b"", [], 0)
    reported: list[Exception | None] = []
    backend.break_sink(sink, "send")
    sink.send(OutputRecord("score", backend.topic("s"), b"k", b"x", [], ref), lambda _r, e: reported.append(e))
    sink.run_delivery_callbacks()
    assert len(reported) == 1 and isinstance(reported[0], BrokerError)
    if backend.name != "memory":
        backend.break_sink(sink, "flush")
    sink.flush(1.0)  # a failing flush logs; it never raises
