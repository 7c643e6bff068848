"""The optional confluent-kafka (librdkafka) implementations of the worker's Source and Sink.

Chosen with `kafka.client: confluent`; kafka-python (`kafka_io`) stays the default. librdkafka does its fetching,
batching and CRC work in C threads, so the Python cost per record is a fraction of kafka-python's
(docs/performance.md has both measured side by side).

Two differences from kafka-python shape this module:
- delivery reports and rebalance callbacks run on the thread that calls `poll`/`consume`; the worker calls
  `Sink.serve()` from its loop, so completions arrive on the loop's own thread;
- a synchronous offset commit has no timeout and waits for as long as the group coordinator is away, so commits run
  on a helper thread without holding up the loop (one outstanding at a time, in order; a failure is reported at the
  next commit, which then carries the same or newer offsets). Before partitions are given up in a rebalance, and on
  close, the outstanding commit is awaited for at most `COMMIT_TIMEOUT_S`. The broker-reachability probe is a
  metadata request, so it too runs off the loop, and `connected()` returns the latest answer.
"""

from __future__ import annotations

import concurrent.futures
import logging
from functools import partial
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka import TopicPartition as KafkaTP

from detector.config import KafkaConfig
from detector.io import BrokerError, DoneCallback, InputMessage, OutputRecord, RebalanceListener, TopicPartition
from detector.transactions import TransactionBracket, transactional_id

log = logging.getLogger("tsad.kafka")
COMMIT_TIMEOUT_S = 5.0
METADATA_TIMEOUT_S = 0.5


class DeliveryError(Exception):
    """A record the broker did not acknowledge (librdkafka's error, e.g. message timed out, topic unknown)."""


def client_options(k: KafkaConfig) -> dict[str, Any]:
    """librdkafka connection and security settings shared by the consumer and the producer."""
    opts: dict[str, Any] = {"bootstrap.servers": k.bootstrap_servers, "client.id": k.client_id,
                            "security.protocol": k.security_protocol.lower()}
    if k.security_protocol.startswith("SASL"):
        opts.update({"sasl.mechanism": k.sasl_mechanism, "sasl.username": k.sasl_username,
                     "sasl.password": k.sasl_password})
    if k.security_protocol.endswith("SSL"):
        opts.update({key: value for key, value in (("ssl.ca.location", k.ssl_cafile),
                                                   ("ssl.certificate.location", k.ssl_certfile),
                                                   ("ssl.key.location", k.ssl_keyfile),
                                                   ("ssl.key.password", k.ssl_password)) if value})
    return opts


def _pairs(partitions: list[KafkaTP]) -> set[TopicPartition]:
    return {(tp.topic, tp.partition) for tp in partitions}


class ConfluentSource:
    """A consumer-group member on one topic with manual, bounded commits."""

    def __init__(self, k: KafkaConfig, topic: str, listener: RebalanceListener, **overrides: Any) -> None:
        options = {
            **client_options(k),
            "group.id": k.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
            "session.timeout.ms": k.session_timeout_ms,
            "max.poll.interval.ms": k.max_poll_interval_ms,
            "heartbeat.interval.ms": max(1000, k.session_timeout_ms // 3),
            "isolation.level": "read_committed" if k.exactly_once else "read_uncommitted",
            **overrides,
        }
        self.topic = topic
        self.listener = listener
        self.consumer = Consumer(options)
        self.consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._committer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tsad-commit")
        self._pending_commit: concurrent.futures.Future[Any] | None = None
        self._prober = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tsad-probe")
        self._probe: concurrent.futures.Future[bool] | None = None
        self._connected = True

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        consumer.assign(partitions)  # assign first, so the worker can pause them (backpressure) straight away
        self.listener.on_assigned(_pairs(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        self.listener.on_revoked(_pairs(partitions))  # the worker commits what is safe ...
        self._await_commit()  # ... and that commit must land while the partitions are still ours
        consumer.unassign()

    def poll(self, timeout_s: float, max_records: int, fill: bool = False) -> list[InputMessage]:
        try:
            if fill:  # consume(n, timeout) returns at n messages or at the timeout
                messages = self.consumer.consume(max_records, timeout_s)
            else:  # wait for the first message only, then take what is already queued
                first = self.consumer.poll(timeout_s)
                if first is None:
                    return []
                messages = [first, *self.consumer.consume(max_records - 1, 0)] if max_records > 1 else [first]
        except KafkaException as exc:
            raise BrokerError(str(exc)) from exc
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
        self.consumer.pause([KafkaTP(t, p) for t, p in partitions])

    def resume(self, partitions: set[TopicPartition]) -> None:
        self.consumer.resume([KafkaTP(t, p) for t, p in partitions])

    def assignment(self) -> set[TopicPartition]:
        return _pairs(self.consumer.assignment())

    def commit(self, positions: dict[TopicPartition, int]) -> None:
        previous = self._pending_commit
        if previous is not None and not previous.done():
            raise BrokerError("the previous offset commit is still waiting for the group coordinator")
        offsets = [KafkaTP(t, p, o) for (t, p), o in positions.items()]
        self._pending_commit = self._committer.submit(self._commit_sync, offsets)
        if previous is not None and previous.exception() is not None:
            raise BrokerError(f"an earlier offset commit failed: {previous.exception()}")

    def _await_commit(self) -> None:
        if self._pending_commit is None:
            return
        try:
            self._pending_commit.result(timeout=COMMIT_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            log.warning("offset commit not acknowledged within %.0f s", COMMIT_TIMEOUT_S)
        except BrokerError as exc:
            log.warning("%s", exc)

    def _commit_sync(self, offsets: list[KafkaTP]) -> None:
        try:
            result = self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise BrokerError(f"offset commit failed: {exc}") from exc
        failed = [f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in result or [] if tp.error is not None]
        if failed:
            raise BrokerError(f"offset commit failed for {', '.join(failed)}")

    def lag(self) -> dict[TopicPartition, int]:
        """Messages between the consumer's position and the high-water mark seen by the last fetch."""
        out: dict[TopicPartition, int] = {}
        assigned = self.consumer.assignment()
        try:
            positions = self.consumer.position(assigned)
        except KafkaException:
            return out
        for tp in positions:
            try:
                _low, high = self.consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high >= 0 and tp.offset >= 0:
                out[(tp.topic, tp.partition)] = max(0, high - tp.offset)
        return out

    def group_metadata(self) -> object:
        return self.consumer.consumer_group_metadata()

    def rewind(self, partitions: set[TopicPartition]) -> None:
        committed = self.consumer.committed([KafkaTP(t, p) for t, p in partitions], timeout=COMMIT_TIMEOUT_S)
        for tp in committed:
            # OFFSET_INVALID (-1001): nothing committed yet, start from the beginning as auto.offset.reset does
            self.consumer.seek(KafkaTP(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else -2))

    def connected(self) -> bool:
        """The latest probe's answer; starts the next probe (a metadata request) off the loop's thread."""
        if self._probe is None or self._probe.done():
            if self._probe is not None:
                self._connected = self._probe.result()
            self._probe = self._prober.submit(self._metadata_reachable)
        return self._connected

    def _metadata_reachable(self) -> bool:
        try:
            self.consumer.list_topics(self.topic, timeout=METADATA_TIMEOUT_S)
        except (KafkaException, RuntimeError):  # RuntimeError: the consumer was closed meanwhile
            return False
        return True

    def close(self) -> None:
        self._await_commit()
        self._committer.shutdown(wait=False, cancel_futures=True)
        self._prober.shutdown(wait=True, cancel_futures=True)
        self.consumer.close()


class ConfluentSink:
    """A producer with acks=all. Delivery reports are served by `serve()`/`flush()` on the caller's thread."""

    def __init__(self, k: KafkaConfig, **overrides: Any) -> None:
        options = {
            **client_options(k),
            "acks": "all",
            "linger.ms": k.linger_ms,
            "batch.size": 1024 * 1024,
            "compression.type": "none",
            # a record not acknowledged by then is reported failed; the worker retries it (the input stays open)
            "message.timeout.ms": 30_000,
            **overrides,
        }
        self.producer = Producer(options)

    def send(self, record: OutputRecord, on_done: DoneCallback) -> None:
        report = partial(_delivered, record, on_done)
        headers: Any = record.headers or None
        try:
            self.producer.produce(record.topic, record.value, record.key, headers=headers, on_delivery=report)
        except BufferError:  # the local queue is full: serve delivery reports to make room, then try once more
            self.producer.poll(0.1)
            try:
                self.producer.produce(record.topic, record.value, record.key, headers=headers, on_delivery=report)
            except (BufferError, KafkaException) as exc:
                on_done(record, exc)
        except KafkaException as exc:
            on_done(record, exc)

    def serve(self) -> None:
        self.producer.poll(0)

    def flush(self, timeout_s: float) -> None:
        left = self.producer.flush(timeout_s)
        if left:
            log.warning("producer flush did not complete: %d records not yet acknowledged", left)

    def close(self) -> None:
        self.flush(5.0)


def _delivered(record: OutputRecord, on_done: DoneCallback, error: Any, _message: Any) -> None:
    on_done(record, None if error is None else DeliveryError(str(error)))


class TransactionalConfluentSink(TransactionBracket, ConfluentSink):
    """Exactly-once: a transactional producer; outputs and the input offsets commit in one transaction."""

    def __init__(self, k: KafkaConfig, **overrides: Any) -> None:
        super().__init__(k, **{"transactional.id": transactional_id(k), "enable.idempotence": True, **overrides})
        self.producer.init_transactions(30.0)  # fences an earlier producer with this id, aborts its transaction

    def _begin(self) -> None:
        self.producer.begin_transaction()

    def _send_offsets(self, positions: dict[TopicPartition, int], group_metadata: object) -> None:
        offsets = [KafkaTP(t, p, o) for (t, p), o in positions.items()]
        self.producer.send_offsets_to_transaction(offsets, group_metadata, COMMIT_TIMEOUT_S)

    def _commit(self) -> None:
        self.producer.commit_transaction(COMMIT_TIMEOUT_S)

    def _abort(self) -> None:
        self.producer.abort_transaction(COMMIT_TIMEOUT_S)
