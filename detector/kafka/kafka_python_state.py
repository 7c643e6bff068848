"""The episode-state reader on kafka-python: an assign-mode consumer that reads compacted state partitions whole
(`detector.kafka.state_topic` says what they hold)."""

from __future__ import annotations

import time

from kafka import KafkaConsumer
from kafka.structs import TopicPartition as KafkaTP

from detector.config import KafkaConfig
from detector.kafka import settings
from detector.kafka.kafka_python import CLIENT_ERRORS
from detector.kafka.seams import BrokerError, InputMessage, check_settled, translated


class KafkaStateReader:
    """An assign-mode consumer (no group) that reads state partitions from the beginning to their end."""

    def __init__(self, k: KafkaConfig) -> None:
        neutral = {**settings.connection(k), "enable_auto_commit": False, "auto_offset_reset": "earliest",
                   "isolation_level": "read_committed" if k.exactly_once else "read_uncommitted"}
        with translated("state reader start", *CLIENT_ERRORS):
            self.consumer = KafkaConsumer(**settings.render(neutral, "kafka-python"))
            # read_committed end offsets are last stable offsets; the high watermarks come from an uncommitted view
            self.uncommitted = KafkaConsumer(**settings.render(
                {**neutral, "isolation_level": "read_uncommitted"}, "kafka-python")) if k.exactly_once else None

    def partitions(self, topic: str) -> int | None:
        with translated("state topic metadata", *CLIENT_ERRORS):
            found = self.consumer.partitions_for_topic(topic)
        return None if not found else len(found)

    def read(self, topic: str, partitions: set[int]) -> list[InputMessage]:
        if not partitions:
            return []
        out: list[InputMessage] = []
        with translated("state read", *CLIENT_ERRORS):
            tps = [KafkaTP(topic, p) for p in sorted(partitions)]
            self.consumer.assign(tps)
            self.consumer.seek_to_beginning(*tps)
            wait_ms = int(settings.COMMIT_TIMEOUT_S * 1000)  # not the 30 s default: the loop waits on this
            ends = self.consumer.end_offsets(tps, timeout_ms=wait_ms)  # read_committed: the last stable offset
            if self.uncommitted is not None:
                check_settled(topic, {tp.partition: e for tp, e in ends.items()},
                              {tp.partition: e for tp, e in self.uncommitted.end_offsets(tps, wait_ms).items()})
            deadline = time.monotonic() + settings.COMMIT_TIMEOUT_S * 6
            while any(self.consumer.position(tp) < end for tp, end in ends.items()):
                if time.monotonic() > deadline:
                    raise BrokerError(f"state read: {topic} not read to its end within "
                                      f"{settings.COMMIT_TIMEOUT_S * 6:.0f} s")
                for records in self.consumer.poll(timeout_ms=200).values():
                    out += [InputMessage(r.topic, r.partition, r.offset, r.key, r.value, [], r.timestamp)
                            for r in records]
            self.consumer.unsubscribe()
        return out

    def close(self) -> None:
        with translated("state reader close", *CLIENT_ERRORS):
            self.consumer.close(autocommit=False)
            if self.uncommitted is not None:
                self.uncommitted.close(autocommit=False)
