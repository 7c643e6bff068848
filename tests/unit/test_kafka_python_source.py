"""KafkaSource's rebalance handling against a scripted stand-in for kafka-python 3.0's consumer: assignments are
served on the caller's thread (resumed, rewound to the committed offsets, then handed to the worker), records
fetched of partitions given up or newly assigned are dropped, and a failed rewind keeps the partitions paused and
unserved until a later poll succeeds. (The real client is covered by tests/contract/test_source_sink.py.)"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.structs import TopicPartition as KafkaTP

from detector.kafka.kafka_python_source import KafkaSource, _Listener
from detector.kafka.seams import BrokerError, TopicPartition

P0, P1 = KafkaTP("in", 0), KafkaTP("in", 1)


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes = b"{}"
    headers: list = field(default_factory=list)
    timestamp: int = 0


@dataclass
class ScriptedConsumer:
    """Each poll runs the next step (a rebalance callback, say) and returns its records."""

    steps: list[tuple[Callable[[], None], list[Record]]] = field(default_factory=list)
    assigned: set[KafkaTP] = field(default_factory=set)
    paused: set[KafkaTP] = field(default_factory=set)
    committed_offsets: dict[KafkaTP, int] = field(default_factory=dict)
    positions: dict[KafkaTP, int] = field(default_factory=dict)
    failing_calls: set[int] = field(default_factory=set)  # which committed() calls raise (1 = the first)
    calls: int = 0
    poll_error: Exception | None = None  # raised by the next poll

    def poll(self, timeout_ms: int, max_records: int) -> dict[KafkaTP, list[Record]]:
        if self.poll_error is not None:
            error, self.poll_error = self.poll_error, None
            raise error
        if not self.steps:
            time.sleep(timeout_ms / 1000)  # nothing more to fetch: wait out the timeout, as a consumer does
            return {}
        action, records = self.steps.pop(0)
        action()
        batches: dict[KafkaTP, list[Record]] = {}
        for r in records:
            batches.setdefault(KafkaTP(r.topic, r.partition), []).append(r)
        return batches

    def assignment(self) -> set[KafkaTP]:
        return set(self.assigned)

    def pause(self, *tps: KafkaTP) -> None:
        self.paused |= set(tps)

    def resume(self, *tps: KafkaTP) -> None:
        self.paused -= set(tps)

    def committed(self, tp: KafkaTP, timeout_ms: int) -> int | None:
        self.calls += 1
        if self.calls in self.failing_calls:
            raise KafkaTimeoutError("no coordinator")
        return self.committed_offsets.get(tp)

    def seek(self, tp: KafkaTP, offset: int) -> None:
        self.positions[tp] = offset

    def seek_to_beginning(self, tp: KafkaTP) -> None:
        self.positions[tp] = 0


@dataclass
class Worker:
    events: list[tuple[str, set[TopicPartition]]] = field(default_factory=list)
    consumer: Any = None

    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        self.events.append(("revoked", partitions))

    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        # what the worker sees when it is told: the partitions already restarted
        assert not (self.consumer.paused & {KafkaTP(*tp) for tp in partitions}), "handed over still paused"
        self.events.append(("assigned", partitions))


def _source(consumer: ScriptedConsumer) -> tuple[KafkaSource, Worker, _Listener]:
    worker = Worker(consumer=consumer)
    source = KafkaSource.__new__(KafkaSource)
    source._listener = _Listener(worker)
    source.consumer = consumer
    return source, worker, source._listener


def _assign(consumer: ScriptedConsumer, listener: _Listener, *tps: KafkaTP) -> Callable[[], None]:
    def run() -> None:
        consumer.assigned = set(tps)
        listener.on_partitions_assigned(set(tps))
    return run


def _revoke(consumer: ScriptedConsumer, listener: _Listener, *tps: KafkaTP) -> Callable[[], None]:
    def run() -> None:
        listener.on_partitions_revoked(set(tps))
    return run


def test_a_partition_given_back_is_resumed_rewound_and_then_handed_to_the_worker() -> None:
    consumer = ScriptedConsumer(assigned={P0}, paused={P0}, committed_offsets={P0: 2}, positions={P0: 4})
    source, worker, listener = _source(consumer)
    stale = [Record("in", 0, 4), Record("in", 0, 5)]  # fetched from the position kept through the rebalance
    consumer.steps = [(lambda: (_revoke(consumer, listener, P0)(), _assign(consumer, listener, P0)()), stale)]
    assert source.poll(0.1, 10) == []
    assert worker.events == [("revoked", {("in", 0)}), ("assigned", {("in", 0)})]
    assert consumer.positions[P0] == 2 and P0 not in consumer.paused


def test_a_failed_rewind_keeps_the_partitions_paused_and_unserved_until_a_later_poll() -> None:
    consumer = ScriptedConsumer(committed_offsets={P0: 3}, failing_calls={2})  # P0's read, then P1's fails
    source, worker, listener = _source(consumer)
    consumer.steps = [(_assign(consumer, listener, P0, P1), [Record("in", 0, 7)]),
                      (lambda: None, [Record("in", 1, 9)])]  # would not be fetched while paused; dropped anyway
    assert source.poll(0.1, 10) == []
    assert worker.events == [] and consumer.paused == {P0, P1} and consumer.positions == {}  # none moved
    assert source.assignment() == set()  # not served yet: readiness and the assigned gauge do not count them
    assert source.poll(0.1, 10) == []
    assert worker.events == [("assigned", {("in", 0), ("in", 1)})]
    assert source.assignment() == {("in", 0), ("in", 1)}
    assert consumer.positions == {P0: 3, P1: 0} and consumer.paused == set()
    consumer.steps = [(lambda: None, [Record("in", 0, 3)])]
    assert [m.offset for m in source.poll(0.1, 10)] == [3]  # served: its records flow again


def test_an_assignment_not_yet_served_ends_with_a_revocation() -> None:
    consumer = ScriptedConsumer(failing_calls={1})
    source, worker, listener = _source(consumer)
    consumer.steps = [(_assign(consumer, listener, P0), []), (_revoke(consumer, listener, P0), [])]
    source.poll(0.1, 10)
    assert listener.assigned == {("in", 0)}  # waiting: its rewind failed
    source.poll(0.1, 10)
    assert worker.events == [("revoked", {("in", 0)})]  # never handed over as assigned
    assert listener.assigned is None


def test_records_fetched_before_a_revocation_in_the_same_poll_are_dropped() -> None:
    consumer = ScriptedConsumer(assigned={P0, P1})
    source, worker, listener = _source(consumer)
    consumer.steps = [(lambda: None, [Record("in", 1, 0), Record("in", 0, 0)]),
                      (lambda: (_revoke(consumer, listener, P0, P1)(), _assign(consumer, listener, P0)()), [])]
    got = source.poll(1.0, 10, fill=True)
    assert got == []  # P1 moved away (its new owner reads it from the committed offset); P0 is read again
    assert worker.events[-1] == ("assigned", {("in", 0)})
    assert consumer.positions == {P0: 0}


def test_records_of_a_poll_that_fails_are_given_back() -> None:
    """A fill poll that raises after fetching returns nothing: the partitions go back to the first record not
    returned, or the next poll would read past windows the worker never saw."""
    consumer = ScriptedConsumer(assigned={P0, P1}, positions={P0: 12, P1: 3})
    source, _worker, _listener = _source(consumer)
    consumer.steps = [(lambda: None, [Record("in", 0, 10), Record("in", 0, 11), Record("in", 1, 2)])]

    def fail_next() -> None:
        consumer.poll_error = KafkaTimeoutError("heartbeat failed")
    consumer.steps.append((fail_next, []))
    with pytest.raises(BrokerError):
        source.poll(5.0, 10, fill=True)
    assert consumer.positions == {P0: 10, P1: 2}
