"""Kafka implementations of the worker's Source and Sink (kafka-python), and the client security options."""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KafkaTP

from detector.config import KafkaConfig
from detector.io import DoneCallback, InputMessage, OutputRecord, RebalanceListener, TopicPartition
from detector.transactions import TransactionBracket, transactional_id

log = logging.getLogger("tsad.kafka")
COMMIT_TIMEOUT_MS = 5000


def client_options(k: KafkaConfig) -> dict[str, Any]:
    """Connection and security settings shared by the consumer and the producer."""
    opts: dict[str, Any] = {"bootstrap_servers": k.bootstrap_servers.split(","), "client_id": k.client_id,
                            "security_protocol": k.security_protocol}
    if k.security_protocol.startswith("SASL"):
        opts.update(sasl_mechanism=k.sasl_mechanism, sasl_plain_username=k.sasl_username,
                    sasl_plain_password=k.sasl_password)
    if k.security_protocol.endswith("SSL"):
        opts.update({key: value for key, value in (("ssl_cafile", k.ssl_cafile), ("ssl_certfile", k.ssl_certfile),
                                                   ("ssl_keyfile", k.ssl_keyfile), ("ssl_password", k.ssl_password))
                     if value})
    return opts


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
                 **overrides: Any) -> None:
        options = {
            **client_options(k),
            "group_id": k.group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "max_poll_records": max_poll_records,
            "fetch_max_wait_ms": 100,
            "session_timeout_ms": k.session_timeout_ms,
            "max_poll_interval_ms": k.max_poll_interval_ms,
            "heartbeat_interval_ms": max(1000, k.session_timeout_ms // 3),
            # exactly-once: never read outputs of aborted transactions upstream either
            "isolation_level": "read_committed" if k.exactly_once else "read_uncommitted",
            **overrides,
        }
        self.consumer = KafkaConsumer(**options)
        self.consumer.subscribe([topic], listener=_Listener(listener))

    def poll(self, timeout_s: float, max_records: int, fill: bool = False) -> list[InputMessage]:
        deadline = time.monotonic() + timeout_s
        out: list[InputMessage] = []
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
        self.consumer.pause(*(KafkaTP(t, p) for t, p in partitions))

    def resume(self, partitions: set[TopicPartition]) -> None:
        self.consumer.resume(*(KafkaTP(t, p) for t, p in partitions))

    def assignment(self) -> set[TopicPartition]:
        return {(tp.topic, tp.partition) for tp in self.consumer.assignment()}

    def commit(self, positions: dict[TopicPartition, int]) -> None:
        # Bounded: without a timeout kafka-python waits for a coordinator for as long as the broker is away,
        # which would freeze the loop (and health reporting); a timed-out commit is retried at the next interval.
        self.consumer.commit({KafkaTP(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in positions.items()},
                             timeout_ms=COMMIT_TIMEOUT_MS)

    def lag(self) -> dict[TopicPartition, int]:
        """Messages between the consumer's position and the partition end, from the last fetch's high-water."""
        out = {}
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
        return self.consumer.group_metadata()

    def rewind(self, partitions: set[TopicPartition]) -> None:
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
        self.consumer.close(autocommit=False)


class KafkaSink:
    """A producer with acks=all; completion callbacks run on the producer's I/O thread.

    A topic whose metadata cannot be fetched (deleted, not yet created, broker away) blocks `send` for up to
    `max_block_ms`; after one such failure the topic is treated as unavailable for `UNAVAILABLE_BACKOFF_S`, and
    sends to it fail at once, so the worker loop keeps turning (and backpressure pauses the input) instead of
    blocking once per record.
    """

    UNAVAILABLE_BACKOFF_S = 2.0

    def __init__(self, k: KafkaConfig, **overrides: Any) -> None:
        options = {
            **client_options(k),
            "acks": "all",
            "linger_ms": k.linger_ms,
            "batch_size": 256 * 1024,
            "compression_type": None,
            "max_block_ms": 5_000,
            "retries": 5,
            **overrides,
        }
        self.producer = KafkaProducer(**options)
        self._unavailable_until: dict[str, float] = {}

    def send(self, record: OutputRecord, on_done: DoneCallback) -> None:
        blocked = self._unavailable_until.get(record.topic)
        if blocked is not None and time.monotonic() < blocked:
            on_done(record, KafkaTimeoutError(f"topic {record.topic} unavailable (backing off)"))
            return
        try:
            future = self.producer.send(record.topic, value=record.value, key=record.key,
                                        headers=record.headers or None)
        except KafkaError as exc:  # e.g. metadata unavailable within max_block_ms: report as a failed send
            if isinstance(exc, KafkaTimeoutError):
                self._unavailable_until[record.topic] = time.monotonic() + self.UNAVAILABLE_BACKOFF_S
            on_done(record, exc)
            return
        future.add_callback(lambda _md: on_done(record, None))
        future.add_errback(lambda exc: on_done(record, exc))

    def serve(self) -> None:
        """Nothing to do: kafka-python runs completion callbacks on its I/O thread."""

    def flush(self, timeout_s: float) -> None:
        try:
            self.producer.flush(timeout=timeout_s)
        except KafkaError as exc:
            log.warning("producer flush did not complete: %s", exc)

    def close(self) -> None:
        self.producer.close(timeout=5)


class TransactionalKafkaSink(TransactionBracket, KafkaSink):
    """Exactly-once: a transactional producer; outputs and the input offsets commit in one transaction."""

    def __init__(self, k: KafkaConfig, **overrides: Any) -> None:
        super().__init__(k, transactional_id=transactional_id(k), enable_idempotence=True, **overrides)
        self.producer.init_transactions()  # fences an earlier producer with this id and aborts its open transaction

    def _begin(self) -> None:
        self.producer.begin_transaction()

    def _send_offsets(self, positions: dict[TopicPartition, int], group_metadata: object) -> None:
        offsets = {KafkaTP(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in positions.items()}
        self.producer.send_offsets_to_transaction(offsets, group_metadata)

    def _commit(self) -> None:
        self.producer.commit_transaction()

    def _abort(self) -> None:
        self.producer.abort_transaction()
