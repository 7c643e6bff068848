"""Reading topics back for assertions (a plain consumer without a group)."""

from __future__ import annotations

import time
from collections.abc import Callable

from kafka import KafkaConsumer


def read_until(bootstrap: str, topic: str, done: Callable[[list], bool], timeout: float = 60.0,
               **options: object) -> list:
    """Records of `topic` from the beginning until `done(records)` or `timeout` seconds."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=500, **options)
    out: list = []
    deadline = time.monotonic() + timeout
    try:
        while not done(out) and time.monotonic() < deadline:
            out.extend(consumer)
    finally:
        consumer.close()
    return out


def read_topic(bootstrap: str, topic: str, n: int, timeout: float = 60.0, **options: object) -> list:
    """Everything in `topic` from the beginning: stops at `n` records or after `timeout` seconds."""
    return read_until(bootstrap, topic, lambda out: len(out) >= n, timeout, **options)


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in consumer.partitions_for_topic(topic)}
    finally:
        consumer.close(autocommit=False)


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return {tp.partition: off for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()
