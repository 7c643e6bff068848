"""The watch on a producer gone silent, and the kafka-python sink replacing such a producer (a fake producer and
a fake clock: no broker)."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import pytest
from kafka.errors import KafkaConnectionError

from detector.config import KafkaConfig
from detector.kafka.delivery_watch import DeliveryWatch
from detector.kafka.kafka_python import KafkaSink, TransactionalKafkaSink
from detector.kafka.seams import BrokerError, InputMessage, OutputRecord

REF = InputMessage("in", 0, 7, None, b"{}", [], 0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _record(i: int = 0) -> OutputRecord:
    return OutputRecord("score", "scores", None, b"%d" % i, [], REF)


def test_watch_reports_once_and_fails_only_what_waits() -> None:
    clock, reports = Clock(), []
    watch = DeliveryWatch(50.0, clock)
    done = lambda record, error: reports.append((record.value, error))  # noqa: E731
    a, b = watch.sent(_record(1), done), watch.sent(_record(2), done)
    watch.report(a, None)
    assert reports == [(b"1", None)] and watch.waiting == 1
    clock.now += 50.0
    assert not watch.silent()  # not beyond the limit yet
    clock.now += 0.1
    assert watch.silent()
    error = BrokerError("silent")
    assert watch.fail_all(error) == 1
    assert reports[1] == (b"2", error) and not watch.silent()
    watch.report(b, None)  # the old producer's late report
    watch.report(a, None)  # a report made twice
    assert len(reports) == 2 and watch.waiting == 0


def test_a_stuck_record_is_found_while_others_keep_flowing() -> None:
    clock = Clock()
    watch = DeliveryWatch(10.0, clock)
    clock.now += 100.0  # idle: nothing waits, so nothing is silent
    assert not watch.silent()
    watch.sent(_record(0), lambda r, e: None)  # never reported
    for i in range(1, 5):
        token = watch.sent(_record(i), lambda r, e: None)
        clock.now += 3.0
        watch.report(token, None)  # other records are delivered all along
        assert watch.silent() == (clock.now - 200.0 > 10.0)
    assert watch.silent() and watch.waiting == 1
    watch.snooze()
    assert not watch.silent()
    clock.now += 10.1
    assert watch.silent()


class FakeFuture:
    def __init__(self) -> None:
        self.callbacks: list[Any] = []
        self.errbacks: list[Any] = []

    def add_callback(self, f: Any) -> None:
        self.callbacks.append(f)

    def add_errback(self, f: Any) -> None:
        self.errbacks.append(f)


class FakeProducer:
    """A producer that accepts records and reports nothing until told to."""

    made: ClassVar[list[FakeProducer]] = []

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.futures: list[FakeFuture] = []
        self.closed = False
        self.calls: list[str] = []
        FakeProducer.made.append(self)

    def send(self, topic: str, **kw: Any) -> FakeFuture:
        self.futures.append(FakeFuture())
        return self.futures[-1]

    def close(self, timeout: float | None = None) -> None:
        self.closed = True

    def init_transactions(self) -> None:
        self.calls.append("init")

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def abort_transaction(self) -> None:
        self.calls.append("abort")


def test_sink_replaces_a_silent_producer_and_fails_what_it_held() -> None:
    FakeProducer.made.clear()
    clock, reports = Clock(), []
    sink = KafkaSink(KafkaConfig(), producer_factory=FakeProducer, clock=clock)
    assert sink.watch.silence_limit_s == 50.0  # delivery timeout 30 s + request timeout 20 s
    done = lambda record, error: reports.append((record.value, error))  # noqa: E731
    for i in range(3):
        sink.send(_record(i), done)
    old = FakeProducer.made[0]
    old.futures[0].callbacks[0](None)  # one delivered
    clock.now += 49.0
    sink.run_delivery_callbacks()
    assert len(FakeProducer.made) == 1 and len(reports) == 1
    clock.now += 2.0
    sink.run_delivery_callbacks()
    assert len(FakeProducer.made) == 2 and sink.producer is FakeProducer.made[1]
    assert [value for value, _ in reports] == [b"0", b"1", b"2"]
    assert all(isinstance(error, BrokerError) and "replaced" in str(error) for _, error in reports[1:])
    old.futures[1].callbacks[0](None)  # the old producer delivers late: not reported again
    old.futures[2].errbacks[0](RuntimeError("late failure"))
    assert len(reports) == 3
    _wait_closed(old)  # closed on a helper thread
    assert not FakeProducer.made[1].closed
    sink.send(_record(9), done)  # the resend goes to the new producer
    FakeProducer.made[1].futures[0].callbacks[0](None)
    assert reports[-1] == (b"9", None)


def test_a_replacement_that_cannot_be_made_is_tried_again_a_limit_later() -> None:
    clock, reports = Clock(), []
    made: list[FakeProducer | None] = []

    def factory(**config: Any) -> FakeProducer:
        if len(made) == 1:  # the first (start-up) producer works, the next fails once
            made.append(None)
            raise KafkaConnectionError("no broker")
        producer = FakeProducer(**config)
        made.append(producer)
        return producer

    sink = KafkaSink(KafkaConfig(), producer_factory=factory, clock=clock)
    sink.send(_record(), lambda r, e: reports.append(e))
    clock.now += 51.0
    sink.run_delivery_callbacks()  # the new producer cannot be made: the record keeps waiting
    assert reports == [] and sink.producer is made[0]
    clock.now += 49.0
    sink.run_delivery_callbacks()
    assert reports == []
    clock.now += 2.0
    sink.run_delivery_callbacks()
    assert len(reports) == 1 and sink.producer is made[2]


def test_exactly_once_a_silent_producer_fails_its_records_and_is_replaced_at_the_abort() -> None:
    FakeProducer.made.clear()
    clock, reports = Clock(), []
    sink = TransactionalKafkaSink(KafkaConfig(exactly_once=True), producer_factory=FakeProducer, clock=clock)
    sink.send(_record(1), lambda record, error: reports.append(error))
    clock.now += 51.0
    sink.run_delivery_callbacks()
    assert len(reports) == 1 and isinstance(reports[0], BrokerError) and "transaction aborts" in str(reports[0])
    sink.send(_record(2), lambda record, error: reports.append(error))  # refused until the producer is replaced
    assert len(reports) == 2 and "being replaced" in str(reports[1])
    sink.abort_transaction()  # what the commit strategy does after a failed send
    assert len(FakeProducer.made) == 2 and sink.producer is FakeProducer.made[1]
    assert FakeProducer.made[0].calls == ["init", "begin"]  # no abort call on the silent one: it is fenced
    assert FakeProducer.made[1].calls == ["init"]
    _wait_closed(FakeProducer.made[0])  # retired on a helper thread


def _wait_closed(producer: FakeProducer) -> None:
    deadline = time.monotonic() + 5
    while not producer.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert producer.closed


class RaisingProducer(FakeProducer):
    def send(self, topic: str, **kw: Any) -> FakeFuture:
        raise ValueError("key and value both None")


def test_a_send_that_raises_to_the_caller_is_not_watched() -> None:
    clock, reports = Clock(), []
    sink = KafkaSink(KafkaConfig(), producer_factory=RaisingProducer, clock=clock)
    with pytest.raises(ValueError):
        sink.send(_record(), lambda record, error: reports.append(error))
    assert sink.watch.waiting == 0
    clock.now += 100.0
    assert not sink.watch.silent() and reports == []


def test_a_replaced_producers_late_failure_does_not_back_the_topic_off() -> None:
    from kafka.errors import KafkaTimeoutError

    FakeProducer.made.clear()
    clock, reports = Clock(), []
    sink = KafkaSink(KafkaConfig(), producer_factory=FakeProducer, clock=clock)
    sink.send(_record(1), lambda record, error: reports.append(error))
    clock.now += 51.0
    sink.run_delivery_callbacks()  # replaced; the record failed once
    FakeProducer.made[0].futures[0].errbacks[0](KafkaTimeoutError("late"))
    sink.send(_record(2), lambda record, error: reports.append(error))
    assert len(reports) == 1 and len(FakeProducer.made[1].futures) == 1  # the resend went out, not backed off
