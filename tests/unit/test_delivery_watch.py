"""The watch on a producer gone silent, and the kafka-python sink replacing such a producer (a fake producer and
a fake clock: no broker)."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from kafka.errors import KafkaConnectionError

from detector.config import KafkaConfig
from detector.kafka.delivery_watch import DeliveryWatch
from detector.kafka.kafka_python import KafkaSink
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


def test_silence_is_counted_from_the_last_report_or_the_first_waiting_record() -> None:
    clock = Clock()
    watch = DeliveryWatch(10.0, clock)
    clock.now += 100.0  # idle: nothing waits, so nothing is silent
    token = watch.sent(_record(), lambda r, e: None)
    clock.now += 9.0
    watch.sent(_record(), lambda r, e: None)
    watch.report(token, None)  # progress: the second record's wait starts over
    clock.now += 9.0
    assert not watch.silent()
    clock.now += 2.0
    assert watch.silent()
    watch.snooze()
    assert not watch.silent()


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
        FakeProducer.made.append(self)

    def send(self, topic: str, **kw: Any) -> FakeFuture:
        self.futures.append(FakeFuture())
        return self.futures[-1]

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


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
    deadline = time.monotonic() + 5
    while not old.closed and time.monotonic() < deadline:  # closed on a helper thread
        time.sleep(0.01)
    assert old.closed and not FakeProducer.made[1].closed
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
