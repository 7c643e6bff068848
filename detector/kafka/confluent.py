"""The optional confluent-kafka (librdkafka) implementations of the worker's Source and Sink.

Chosen with `kafka.client: confluent`; kafka-python (`kafka_python`) stays the default. librdkafka does its fetching,
batching and CRC work in C threads, so the Python cost per record is a fraction of kafka-python's
(docs/performance.md has both measured side by side).

Three differences from kafka-python shape this module:
- delivery reports, offset-commit results and rebalance callbacks run on the thread that calls `poll`/`consume`;
  the worker calls `Sink.serve()` from its loop, so completions arrive on the loop's own thread;
- a Consumer serves one call at a time (confluent-kafka >= 2.16 gates every call on a handle: a call from a second
  thread waits until the first returns), so nothing here calls the consumer off the loop's thread: a helper thread's
  synchronous commit, waiting for an absent group coordinator, would hold up every poll. Offsets are committed
  asynchronously and their results come back through `on_commit` during a later poll; a failure is reported at the
  next commit, which then carries the same or newer offsets. Inside a revocation, the commit is synchronous (the
  documented pattern: it must land while the partitions are still ours); partitions that were *lost* (the session
  expired, e.g. the broker went away) are not committed at all, their generation is gone;
- the broker-reachability probe is a metadata request on a small admin client of its own, on a helper thread
  (kafka/probe.py), and `connected()` returns the latest answer without waiting.

Every client error leaves as `BrokerError`: librdkafka's `KafkaException`, and the `RuntimeError` a closed client
raises.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition as KafkaTP
from confluent_kafka.admin import AdminClient

from detector.config import KafkaConfig
from detector.kafka import settings
from detector.kafka.probe import ReachabilityProbe
from detector.kafka.seams import (
    BrokerError,
    DoneCallback,
    InputMessage,
    OutputRecord,
    RebalanceListener,
    TopicPartition,
    translated,
    write_refused,
)
from detector.kafka.settings import COMMIT_TIMEOUT_S
from detector.kafka.transactions import TransactionBracket

log = logging.getLogger("tsad.kafka")
CLIENT_ERRORS = (KafkaException, RuntimeError)
METADATA_TIMEOUT_S = 0.5
PROBE_DEADLINE_S = 2.0  # a metadata probe unanswered this long: the broker counts as not reachable


def _pairs(partitions: list[KafkaTP]) -> set[TopicPartition]:
    return {(tp.topic, tp.partition) for tp in partitions}


class ConfluentSource:
    """A consumer-group member on one topic with manual, bounded commits."""

    def __init__(self, k: KafkaConfig, topic: str, listener: RebalanceListener, max_poll_records: int,
                 fetch_bytes: int = settings.FETCH_BYTES) -> None:
        self.topic = topic
        self.listener = listener
        # inside a rebalance callback: "revoked" (commits are synchronous) or "lost" (nothing can be committed)
        self._handing_over: str | None = None
        self._revoked_now: set[TopicPartition] = set()  # partitions given up during the current poll
        self._commit_failure: str | None = None
        with translated("consumer start", *CLIENT_ERRORS):
            self.consumer = Consumer({**settings.render(settings.consumer(k, max_poll_records, fetch_bytes),
                                                        "confluent"), "on_commit": self._on_commit})
            self.consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                    on_lost=self._on_lost)
            self._admin = AdminClient(settings.render(settings.connection(k), "confluent"))
        self._probe = ReachabilityProbe(self._metadata_reachable, PROBE_DEADLINE_S)

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        consumer.assign(partitions)  # assign first, so the worker can pause them (backpressure) straight away
        # librdkafka keeps a partition's pause through unassign and a later assign (measured: paused, lost in a
        # broker outage, assigned again, it fetched nothing until resumed); the Source contract, and kafka-python,
        # start a newly assigned partition fetching, and the worker pauses it again if it must.
        consumer.resume(partitions)
        self.listener.on_assigned(_pairs(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        self._hand_over(consumer, partitions, "revoked")  # the worker commits what is safe, synchronously

    def _on_lost(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        log.warning("partitions lost (the group session expired): %s; their offsets stay as last committed",
                    sorted(_pairs(partitions)))
        self._hand_over(consumer, partitions, "lost")  # outputs are still flushed; offsets cannot be committed

    def _hand_over(self, consumer: Consumer, partitions: list[KafkaTP], how: str) -> None:
        self._revoked_now |= _pairs(partitions)
        self._handing_over = how
        try:
            self.listener.on_revoked(_pairs(partitions))
        finally:
            self._handing_over = None
        consumer.unassign()

    def poll(self, timeout_s: float, max_records: int, fill: bool = False) -> list[InputMessage]:
        with translated("poll", *CLIENT_ERRORS):
            if fill:  # consume(n, timeout) returns at n messages or at the timeout
                messages = self.consumer.consume(max_records, timeout_s)
            else:  # wait for the first message only, then take what is already queued
                first = self.consumer.poll(timeout_s)
                if first is None:
                    return []
                self._revoked_now = set()
                rest = self.consumer.consume(max_records - 1, 0) if max_records > 1 else []
                # a revocation inside consume() makes `first` a message of a partition the worker has given up
                # (librdkafka drops the older messages of a revoked partition itself)
                messages = rest if (first.topic(), first.partition()) in self._revoked_now else [first, *rest]
        out = []
        m: Any  # confluent's stubs make every field optional; a consumed message has them all
        for m in messages:
            error = m.error()
            if error is not None:  # informational (broker down, partition EOF): librdkafka recovers by itself
                if error.fatal():
                    raise BrokerError(f"fatal consumer error: {error}")
                log.debug("consumer: %s", error)
                continue
            out.append(InputMessage(m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.headers() or [],
                                    m.timestamp()[1]))
        return out

    def pause(self, partitions: set[TopicPartition]) -> None:
        with translated("pause", *CLIENT_ERRORS):
            self.consumer.pause([KafkaTP(t, p) for t, p in partitions])

    def resume(self, partitions: set[TopicPartition]) -> None:
        with translated("resume", *CLIENT_ERRORS):
            self.consumer.resume([KafkaTP(t, p) for t, p in partitions])

    def assignment(self) -> set[TopicPartition]:
        with translated("assignment", *CLIENT_ERRORS):
            return _pairs(self.consumer.assignment())

    def commit(self, positions: dict[TopicPartition, int]) -> None:
        if self._handing_over == "lost":
            raise BrokerError("partitions lost (the group session expired): their offsets cannot be committed")
        offsets = [KafkaTP(t, p, o) for (t, p), o in positions.items()]
        if self._handing_over == "revoked":
            with translated("offset commit", *CLIENT_ERRORS):
                result = self.consumer.commit(offsets=offsets, asynchronous=False)
            _raise_failed(result)
            return
        failure, self._commit_failure = self._commit_failure, None
        with translated("offset commit", *CLIENT_ERRORS):
            self.consumer.commit(offsets=offsets, asynchronous=True)
        if failure is not None:
            raise BrokerError(f"an earlier offset commit failed: {failure}")

    def _on_commit(self, error: KafkaError | None, partitions: list[KafkaTP]) -> None:
        """An asynchronous commit's result (served by poll on the loop's thread)."""
        failed = _failures(partitions)
        if error is not None or failed:
            self._commit_failure = str(error) if error is not None else failed

    def lag(self) -> dict[TopicPartition, int]:
        """Messages between the consumer's position and the high-water mark seen by the last fetch."""
        out: dict[TopicPartition, int] = {}
        with translated("lag", *CLIENT_ERRORS):
            positions = self.consumer.position(self.consumer.assignment())
        for tp in positions:
            try:
                _low, high = self.consumer.get_watermark_offsets(tp, cached=True)
            except CLIENT_ERRORS:
                continue
            if high >= 0 and tp.offset >= 0:
                out[(tp.topic, tp.partition)] = max(0, high - tp.offset)
        return out

    def group_metadata(self) -> object:
        with translated("group metadata", *CLIENT_ERRORS):
            return self.consumer.consumer_group_metadata()

    def rewind(self, partitions: set[TopicPartition]) -> None:
        with translated("rewind", *CLIENT_ERRORS):
            committed = self.consumer.committed([KafkaTP(t, p) for t, p in partitions], timeout=COMMIT_TIMEOUT_S)
            for tp in committed:
                # OFFSET_INVALID (-1001): nothing committed yet, start from the beginning as auto.offset.reset does
                self.consumer.seek(KafkaTP(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else -2))

    def connected(self) -> bool:
        """The latest probe's answer; starts the next probe (a metadata request) off the loop's thread."""
        return self._probe.reachable()

    def _metadata_reachable(self) -> bool:
        try:
            self._admin.list_topics(self.topic, timeout=METADATA_TIMEOUT_S)
        except CLIENT_ERRORS:
            return False
        return True

    def close(self) -> None:
        """librdkafka's close revokes the assignment (on_revoke: a final synchronous commit) and waits for the
        outstanding asynchronous commits."""
        self._probe.close()
        with translated("consumer close", *CLIENT_ERRORS):
            self.consumer.close()


def _failures(partitions: list[KafkaTP] | None) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in partitions or [] if tp.error is not None)


def _raise_failed(result: list[KafkaTP] | None) -> None:
    failed = _failures(result)
    if failed:
        raise BrokerError(f"offset commit failed for {failed}")


class ConfluentSink:
    """A producer with acks=all. Delivery reports are served by `serve()`/`flush()` on the caller's thread."""

    def __init__(self, k: KafkaConfig) -> None:
        self.config = settings.render(settings.producer(k), "confluent")
        with translated("producer start", *CLIENT_ERRORS):
            self.producer = Producer(self.config)

    def connect(self, topics: Sequence[str], timeout_s: float) -> None:
        """librdkafka holds a new topic's first records until its metadata arrives (a fresh producer's first record
        took 9-187 ms to be acknowledged here, the records after it 2-9 ms): ask for it before the first record."""
        deadline = time.monotonic() + timeout_s
        for topic in topics:
            try:
                self.producer.list_topics(topic, timeout=max(0.1, deadline - time.monotonic()))
            except CLIENT_ERRORS as exc:
                log.warning("metadata of output topic %s not fetched at start-up: %s", topic, exc)

    def send(self, record: OutputRecord, on_done: DoneCallback) -> None:
        report = partial(_delivered, record, on_done)
        extra: dict[str, Any] = {"headers": record.headers or None, "on_delivery": report}
        if record.partition is not None:
            extra["partition"] = record.partition
        try:
            self.producer.produce(record.topic, record.value, record.key, **extra)
        except BufferError:  # the local queue is full: serve delivery reports to make room, then try once more
            self.producer.poll(0.1)
            try:
                self.producer.produce(record.topic, record.value, record.key, **extra)
            except (BufferError, *CLIENT_ERRORS) as exc:
                on_done(record, _send_failed(record, exc))
        except CLIENT_ERRORS as exc:
            on_done(record, _send_failed(record, exc))

    def run_delivery_callbacks(self) -> None:
        with translated("delivery callbacks", *CLIENT_ERRORS):
            self.producer.poll(0)

    def flush(self, timeout_s: float) -> None:
        """Best effort, like kafka-python's: records left unacknowledged stay outstanding for the caller to see."""
        try:
            left = self.producer.flush(timeout_s)
        except CLIENT_ERRORS as exc:
            log.warning("producer flush did not complete: %s", exc)
            return
        if left:
            log.warning("producer flush did not complete: %d records not yet acknowledged", left)

    def close(self) -> None:
        self.flush(5.0)


def _send_failed(record: OutputRecord, exc: BaseException) -> BrokerError:
    code = exc.args[0].code() if isinstance(exc, KafkaException) and exc.args else None
    if code == KafkaError.TOPIC_AUTHORIZATION_FAILED:  # librdkafka remembers the topic's error: refused at once
        return write_refused(record.topic, "TOPIC_AUTHORIZATION_FAILED")
    return BrokerError(f"send: {type(exc).__name__}: {exc}")


def _delivered(record: OutputRecord, on_done: DoneCallback, error: Any, _message: Any) -> None:
    if error is None:
        on_done(record, None)
    elif error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
        on_done(record, write_refused(record.topic, error.name()))
    else:
        on_done(record, BrokerError(f"delivery: {error}"))


class TransactionalConfluentSink(TransactionBracket, ConfluentSink):
    """Exactly-once: a transactional producer; outputs and the input offsets commit in one transaction."""

    client_errors = CLIENT_ERRORS

    def __init__(self, k: KafkaConfig) -> None:
        super().__init__(k)
        with translated("init transactions", *CLIENT_ERRORS):
            self.producer.init_transactions(30.0)  # fences an earlier producer with this id, aborts its transaction

    def _new_producer(self) -> Producer:
        producer = Producer(self.config)
        producer.init_transactions(self.call_timeout_s / 2)  # inside the watchdog's deadline
        return producer  # the old one is dropped with its delivery reports: that epoch was abandoned

    def _begin(self) -> None:
        self.producer.begin_transaction()

    def _send_offsets(self, positions: dict[TopicPartition, int], group_metadata: object) -> None:
        offsets = [KafkaTP(t, p, o) for (t, p), o in positions.items()]
        self.producer.send_offsets_to_transaction(offsets, group_metadata, COMMIT_TIMEOUT_S)

    def _commit(self) -> None:
        self.producer.commit_transaction(COMMIT_TIMEOUT_S)

    def _abort(self) -> None:
        self.producer.abort_transaction(COMMIT_TIMEOUT_S)
