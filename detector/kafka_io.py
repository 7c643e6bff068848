"""Kafka implementations of the worker's Source and Sink (kafka-python), and the client security options."""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KafkaTP

from detector.config import KafkaConfig
from detector.io import DoneCallback, InputMessage, OutputRecord, RebalanceListener, TopicPartition

log = logging.getLogger("tsad.kafka")


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
            **overrides,
        }
        self.consumer = KafkaConsumer(**options)
        self.consumer.subscribe([topic], listener=_Listener(listener))

    def poll(self, timeout_s: float, max_records: int) -> list[InputMessage]:
        batches = self.consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        out = []
        for records in batches.values():
            for r in records:
                out.append(InputMessage(r.topic, r.partition, r.offset, r.key, r.value, list(r.headers or []),
                                        r.timestamp))
        return out

    def pause(self, partitions: set[TopicPartition]) -> None:
        self.consumer.pause(*(KafkaTP(t, p) for t, p in partitions))

    def resume(self, partitions: set[TopicPartition]) -> None:
        self.consumer.resume(*(KafkaTP(t, p) for t, p in partitions))

    def assignment(self) -> set[TopicPartition]:
        return {(tp.topic, tp.partition) for tp in self.consumer.assignment()}

    def commit(self, positions: dict[TopicPartition, int]) -> None:
        self.consumer.commit({KafkaTP(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in positions.items()})

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
    """A producer with acks=all; completion callbacks run on the producer's I/O thread."""

    def __init__(self, k: KafkaConfig, **overrides: Any) -> None:
        options = {
            **client_options(k),
            "acks": "all",
            "linger_ms": 5,
            "batch_size": 256 * 1024,
            "compression_type": None,
            "max_block_ms": 10_000,
            "retries": 5,
            **overrides,
        }
        self.producer = KafkaProducer(**options)

    def send(self, record: OutputRecord, on_done: DoneCallback) -> None:
        try:
            future = self.producer.send(record.topic, value=record.value, key=record.key,
                                        headers=record.headers or None)
        except KafkaError as exc:  # e.g. metadata unavailable within max_block_ms: report as a failed send
            on_done(record, exc)
            return
        future.add_callback(lambda _md: on_done(record, None))
        future.add_errback(lambda exc: on_done(record, exc))

    def flush(self, timeout_s: float) -> None:
        try:
            self.producer.flush(timeout=timeout_s)
        except KafkaError as exc:
            log.warning("producer flush did not complete: %s", exc)

    def close(self) -> None:
        self.producer.close(timeout=5)
