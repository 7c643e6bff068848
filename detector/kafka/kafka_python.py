"""The kafka-python backend (the default client) of the worker's Source and Sink.

Every client error leaves as `BrokerError`. kafka-python also signals misuse it considers impossible (e.g. pausing
a partition a rebalance has just taken away) with `AssertionError`, so that is translated too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAuthorizationFailedError
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KafkaTP

from detector.config import KafkaConfig
from detector.kafka import settings
from detector.kafka.delivery_watch import DeliveryWatch
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
from detector.kafka.transactions import TransactionBracket

log = logging.getLogger("tsad.kafka")
CLIENT_ERRORS = (KafkaError, AssertionError)
COMMIT_TIMEOUT_MS = int(settings.COMMIT_TIMEOUT_S * 1000)


def _offsets(positions: dict[TopicPartition, int]) -> dict[KafkaTP, OffsetAndMetadata]:
    return {KafkaTP(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in positions.items()}


class _Listener(ConsumerRebalanceListener):
    def __init__(self, target: RebalanceListener) -> None:
        self.target = target

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.target.on_revoked({(tp.topic, tp.partition) for tp in revoked})

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.target.on_assigned({(tp.topic, tp.partition) for tp in assigned})


class KafkaSource:
    """A consumer-group member on one topic with manual commits."""

    def __init__(self, k: KafkaConfig, topic: str, listener: RebalanceListener, max_poll_records: int,
                 fetch_bytes: int = settings.FETCH_BYTES) -> None:
        options = settings.render(settings.consumer(k, max_poll_records, fetch_bytes), "kafka-python")
        with translated("consumer start", *CLIENT_ERRORS):
            self.consumer = KafkaConsumer(**options)
            self.consumer.subscribe([topic], listener=_Listener(listener))

    def poll(self, timeout_s: float, max_records: int, fill: bool = False) -> list[InputMessage]:
        deadline = time.monotonic() + timeout_s
        out: list[InputMessage] = []
        with translated("poll", *CLIENT_ERRORS):
            while True:
                left = deadline - time.monotonic()
                batches = self.consumer.poll(timeout_ms=max(0, int(left * 1000)), max_records=max_records - len(out))
                for records in batches.values():
                    for r in records:
                        out.append(InputMessage(r.topic, r.partition, r.offset, r.key, r.value,
                                                list(r.headers or []), r.timestamp))
                if not fill or len(out) >= max_records or time.monotonic() >= deadline:
                    return out

    def pause(self, partitions: set[TopicPartition]) -> None:
        with translated("pause", *CLIENT_ERRORS):
            self.consumer.pause(*(KafkaTP(t, p) for t, p in partitions))

    def resume(self, partitions: set[TopicPartition]) -> None:
        with translated("resume", *CLIENT_ERRORS):
            self.consumer.resume(*(KafkaTP(t, p) for t, p in partitions))

    def assignment(self) -> set[TopicPartition]:
        with translated("assignment", *CLIENT_ERRORS):
            return {(tp.topic, tp.partition) for tp in self.consumer.assignment()}

    def commit(self, positions: dict[TopicPartition, int]) -> None:
        # Bounded: without a timeout kafka-python waits for a coordinator for as long as the broker is away,
        # which would freeze the loop (and health reporting); a timed-out commit is retried at the next interval.
        with translated("offset commit", *CLIENT_ERRORS):
            self.consumer.commit(_offsets(positions), timeout_ms=COMMIT_TIMEOUT_MS)

    def lag(self) -> dict[TopicPartition, int]:
        """Messages between the consumer's position and the partition end, from the last fetch's high-water."""
        out = {}
        with translated("lag", *CLIENT_ERRORS):
            for tp in self.consumer.assignment():
                high = self.consumer.highwater(tp)
                if high is None:
                    continue
                try:
                    out[(tp.topic, tp.partition)] = max(0, high - self.consumer.position(tp, timeout_ms=1000))
                except KafkaError:
                    continue
        return out

    def group_metadata(self) -> object:
        with translated("group metadata", *CLIENT_ERRORS):
            return self.consumer.group_metadata()

    def rewind(self, partitions: set[TopicPartition]) -> None:
        with translated("rewind", *CLIENT_ERRORS):
            for topic, partition in partitions:
                tp = KafkaTP(topic, partition)
                committed = self.consumer.committed(tp, timeout_ms=COMMIT_TIMEOUT_MS)
                if committed is None:
                    self.consumer.seek_to_beginning(tp)
                else:
                    self.consumer.seek(tp, committed)

    def connected(self) -> bool:
        client = self.consumer._client
        try:
            # kafka-python 3 names it node_id, 2.x nodeId
            return any(client.connected(getattr(b, "node_id", getattr(b, "nodeId", None)))
                       for b in client.cluster.brokers())
        except Exception:  # diagnostics only: a broken client object is "not connected"
            return False

    def close(self) -> None:
        with translated("consumer close", *CLIENT_ERRORS):
            self.consumer.close(autocommit=False)


class KafkaSink:
    """A producer with acks=all; completion callbacks run on the producer's I/O thread.

    A topic whose metadata cannot be fetched (deleted, not yet created, broker away, or not authorised) blocks
    `send` for up to `max_block_ms`; after one such failure the topic is treated as unavailable for
    `UNAVAILABLE_BACKOFF_S`, and sends to it fail at once, so the worker loop keeps turning (and backpressure pauses
    the input) instead of blocking once per record.
    """

    UNAVAILABLE_BACKOFF_S = 2.0

    def __init__(self, k: KafkaConfig, producer_factory: Callable[..., Any] = KafkaProducer,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = settings.render(settings.producer(k), "kafka-python")
        self.producer_factory = producer_factory
        with translated("producer start", *CLIENT_ERRORS):
            self.producer = producer_factory(**self.config)
        self._unavailable: dict[str, tuple[float, BrokerError]] = {}  # topic -> (backed off until, why)
        # every record is reported by then: failed at the delivery timeout, or its request timed out after it
        limit_ms = self.config.get("delivery_timeout_ms", 120_000) + self.config.get("request_timeout_ms", 30_000)
        self.watch = DeliveryWatch(limit_ms / 1000, clock)

    def connect(self, topics: Sequence[str], timeout_s: float) -> None:
        """kafka-python's `send` blocks the loop until a topic's metadata arrives: fetch it now, on a helper thread
        (`partitions_for` may wait up to max_block_ms for a topic that does not exist) joined for `timeout_s`."""

        def fetch() -> None:
            for topic in topics:
                try:
                    self.producer.partitions_for(topic)
                except Exception as exc:
                    log.warning("metadata of output topic %s not fetched at start-up: %s", topic, exc)

        helper = threading.Thread(target=fetch, name="tsad-producer-metadata", daemon=True)
        helper.start()
        helper.join(timeout_s)

    def send(self, record: OutputRecord, on_done: DoneCallback) -> None:
        blocked = self._unavailable.get(record.topic)
        if blocked is not None and time.monotonic() < blocked[0]:
            on_done(record, BrokerError(f"topic {record.topic} unavailable (backing off): {blocked[1]}"))
            return
        token = self.watch.sent(record, on_done)  # before the send: its report can come back at once
        try:
            future = self.producer.send(record.topic, value=record.value, key=record.key,
                                        headers=record.headers or None, partition=record.partition)
        except CLIENT_ERRORS as exc:  # e.g. metadata unavailable within max_block_ms: report as a failed send
            self.watch.report(token, self._failed("send", record.topic, exc))
            return
        except BaseException:
            self.watch.forget(token)
            raise
        future.add_callback(lambda _md: self.watch.report(token, None))
        future.add_errback(lambda exc: self._delivery_failed(token, record.topic, exc))

    def _delivery_failed(self, token: int, topic: str, exc: BaseException) -> None:
        if self.watch.is_waiting(token):  # not a replaced producer's late report (it must not back the topic off)
            self.watch.report(token, self._failed("delivery", topic, exc))

    def _failed(self, what: str, topic: str, exc: BaseException) -> BrokerError:
        """The error a failed send reports; a topic without metadata (or without WRITE) is backed off."""
        error = (write_refused(topic, type(exc).__name__) if isinstance(exc, TopicAuthorizationFailedError)
                 else BrokerError(f"{what}: {type(exc).__name__}: {exc}"))
        if isinstance(exc, (KafkaTimeoutError, TopicAuthorizationFailedError)):
            self._unavailable[topic] = (time.monotonic() + self.UNAVAILABLE_BACKOFF_S, error)
        return error

    def run_delivery_callbacks(self) -> None:
        """kafka-python reports on its own I/O thread; here, only the check for a producer gone silent."""
        if self.watch.silent():
            self._replace_silent_producer()

    def _silence(self) -> str:
        return (f"a record has had no delivery report for {self.watch.silence_limit_s:.0f} s, beyond the producer's "
                f"own timeouts ({self.watch.waiting} records waiting)")

    def _replace_silent_producer(self) -> None:
        """A new producer takes the silent one's place, and the records it held are failed (the loop resends them).
        Made on the loop's thread: kafka-python may spend its api-version probe (a few seconds) on it."""
        why = self._silence()
        try:
            new = self.producer_factory(**self.config)
        except CLIENT_ERRORS as exc:
            log.warning("%s; a new producer could not be made (%s: %s), trying again later", why, type(exc).__name__,
                        exc)
            self.watch.snooze()
            return
        old, self.producer = self.producer, new
        failed = self.watch.fail_all(BrokerError(f"{why}: producer replaced"))
        log.warning("%s: replaced it; %d records will be resent", why, failed)
        _retire_in_background(old)

    def flush(self, timeout_s: float) -> None:
        try:
            self.producer.flush(timeout=timeout_s)
        except CLIENT_ERRORS as exc:
            log.warning("producer flush did not complete: %s", exc)

    def close(self) -> None:
        with translated("producer close", *CLIENT_ERRORS):
            self.producer.close(timeout=5)


def _retire_in_background(producer: Any) -> None:
    """Force-close a replaced producer on a helper thread (stopping its sender can take seconds)."""
    threading.Thread(target=_force_close, args=(producer,), name="tsad-retire-producer", daemon=True).start()


def _force_close(producer: Any) -> None:
    """Close a producer that holds records it will not report: `close(timeout=0)` would first wait on them (and
    raise), so its sender is stopped first (kafka-python's own force-close path, which fails what it holds)."""
    try:
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()
            sender.join(10)
        producer.close(timeout=0)
    except Exception as exc:  # a retired producer must not take a thread's error anywhere
        log.warning("a replaced producer did not close (%s: %s); its connections may linger", type(exc).__name__,
                    exc)


class TransactionalKafkaSink(TransactionBracket, KafkaSink):
    """Exactly-once: a transactional producer; outputs and the input offsets commit in one transaction.

    A silent producer is marked wedged and what it held fails, which aborts the transaction; the bracket then
    replaces the producer (same transactional id, fencing the old one). A commit waits for every report first, so
    the bracket's own watchdog never sees such a producer.
    """

    def __init__(self, k: KafkaConfig, producer_factory: Callable[..., Any] = KafkaProducer,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(k, producer_factory, clock)
        with translated("init transactions", *CLIENT_ERRORS):
            self.producer.init_transactions()  # fences an earlier producer with this id, aborts its transaction

    client_errors = CLIENT_ERRORS

    def run_delivery_callbacks(self) -> None:
        if self.watch.silent() and self._wedged is None:
            self._wedged = self._silence()
            failed = self.watch.fail_all(BrokerError(f"{self._wedged}: the transaction aborts"))
            log.warning("%s: %d records failed; the transaction aborts and the producer is replaced", self._wedged,
                        failed)

    def _new_producer(self) -> Any:
        producer = self.producer_factory(**self.config)
        try:
            producer.init_transactions()
        except BaseException:
            producer.close(timeout=0)
            raise
        return producer

    def _retire(self, producer: object) -> None:
        self.watch.forget_all()  # the abandoned transaction's records: their late reports are dropped
        _retire_in_background(producer)

    def _begin(self) -> None:
        self.producer.begin_transaction()

    def _send_offsets(self, positions: dict[TopicPartition, int], group_metadata: object) -> None:
        self.producer.send_offsets_to_transaction(_offsets(positions), group_metadata)

    def _commit(self) -> None:
        self.producer.commit_transaction()

    def _abort(self) -> None:
        self.producer.abort_transaction()
