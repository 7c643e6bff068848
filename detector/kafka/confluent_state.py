"""The episode-state reader on confluent-kafka (librdkafka): an assign-mode consumer that reads compacted state
partitions whole (`detector.kafka.state_topic` says what they hold)."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as KafkaTP

from detector.config import KafkaConfig
from detector.kafka import settings
from detector.kafka.confluent import CLIENT_ERRORS
from detector.kafka.seams import BrokerError, InputMessage, check_settled, translated
from detector.kafka.settings import COMMIT_TIMEOUT_S


class ConfluentStateReader:
    """An assign-mode consumer that reads state partitions from the beginning to their end (made anew after a
    failure by `renewing_state.RenewingStateReader`)."""

    def __init__(self, k: KafkaConfig) -> None:
        neutral = {**settings.connection(k), "group_id": f"{k.group_id}-state-reader",  # librdkafka needs one
                   "enable_auto_commit": False, "auto_offset_reset": "earliest",
                   "isolation_level": "read_committed" if k.exactly_once else "read_uncommitted"}
        config = settings.render(neutral, "confluent")
        with translated("state reader start", *CLIENT_ERRORS):
            self.consumer = Consumer(config)
            # its watermarks are the high ones (the others, read_committed, stop at the last stable offset)
            self.uncommitted = (Consumer({**config, "isolation.level": "read_uncommitted"}) if k.exactly_once
                                else None)

    def partitions(self, topic: str) -> int | None:
        with translated("state topic metadata", *CLIENT_ERRORS):
            meta = self.consumer.list_topics(topic, timeout=COMMIT_TIMEOUT_S).topics.get(topic)
        return None if meta is None or meta.error is not None or not meta.partitions else len(meta.partitions)

    def read(self, topic: str, partitions: set[int]) -> list[InputMessage]:
        if not partitions:
            return []
        out: list[InputMessage] = []
        with translated("state read", *CLIENT_ERRORS):
            ends = {p: self.consumer.get_watermark_offsets(KafkaTP(topic, p), timeout=COMMIT_TIMEOUT_S)[1]
                    for p in partitions}
            if self.uncommitted is not None:
                check_settled(topic, ends, {p: self.uncommitted.get_watermark_offsets(
                    KafkaTP(topic, p), timeout=COMMIT_TIMEOUT_S)[1] for p in partitions})
            wanted = {p for p, end in ends.items() if end > 0}
            if not wanted:
                return out
            self.consumer.assign([KafkaTP(topic, p, -2) for p in sorted(wanted)])  # -2: from the beginning
            deadline = time.monotonic() + COMMIT_TIMEOUT_S * 6
            while True:
                m: Any
                for m in self.consumer.consume(500, 0.2):
                    if m.error() is None:
                        out.append(InputMessage(m.topic(), m.partition(), m.offset(), m.key(), m.value(), [],
                                                m.timestamp()[1]))
                # the position moves past transaction markers too; ends are the last stable offsets (read_committed)
                if all(tp.offset >= ends[tp.partition] for tp in self.consumer.position(
                        [KafkaTP(topic, p) for p in wanted])):
                    break
                if time.monotonic() > deadline:
                    raise BrokerError(f"state read: {topic} not read to its end within {COMMIT_TIMEOUT_S * 6:.0f} s")
            self.consumer.unassign()
        return out

    def close(self) -> None:
        with translated("state reader close", *CLIENT_ERRORS):
            self.consumer.close()
            if self.uncommitted is not None:
                self.uncommitted.close()
