"""The kafka-python backend (the default client) of the worker's Sink; its Source is in `kafka_python_source`.

Every client error leaves as `BrokerError`. kafka-python also signals misuse it considers impossible (e.g. pausing
a partition a rebalance has just taken away) with `AssertionError`, and a blocking call made on its I/O thread with
`RuntimeError`, so those are translated too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAuthorizationFailedError
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KafkaTP

from detector.config import KafkaConfig
from detector.kafka import settings
from detector.kafka.delivery_watch import DeliveryWatch
from detector.kafka.seams import (
    BrokerError,
    DoneCallback,
    OutputRecord,
    TopicPartition,
    translated,
    write_refused,
)
from detector.kafka.transactions import TransactionBracket

log = logging.getLogger("tsad.kafka")
# RuntimeError: a blocking call on the client's I/O thread (inside a rebalance callback), or a closed client
CLIENT_ERRORS = (KafkaError, AssertionError, RuntimeError)
COMMIT_TIMEOUT_MS = int(settings.COMMIT_TIMEOUT_S * 1000)


def kafka_offsets(positions: dict[TopicPartition, int]) -> dict[KafkaTP, OffsetAndMetadata]:
    return {KafkaTP(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in positions.items()}


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
        self.producer.send_offsets_to_transaction(kafka_offsets(positions), group_metadata)

    def _commit(self) -> None:
        self.producer.commit_transaction()

    def _abort(self) -> None:
        self.producer.abort_transaction()
