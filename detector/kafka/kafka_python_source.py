"""The kafka-python backend's Source: a consumer-group member on the input topic with manual commits.

kafka-python 3.0 runs rebalance callbacks on its I/O thread, where a blocking consumer call raises RuntimeError (it
would wait on that same thread); see `_Listener` for how the worker's rebalance handling is served around that.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from kafka import KafkaConsumer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import TopicPartition as KafkaTP

from detector.config import KafkaConfig
from detector.kafka import settings
from detector.kafka.kafka_python import CLIENT_ERRORS, COMMIT_TIMEOUT_MS, kafka_offsets
from detector.kafka.seams import BrokerError, InputMessage, RebalanceListener, TopicPartition, translated

log = logging.getLogger("tsad.kafka")


class _Listener(ConsumerRebalanceListener):
    """kafka-python 3.0 calls a listener on its I/O thread, where no blocking consumer call may be made (commit,
    committed, ...: they raise RuntimeError). A revocation (or a loss, which kafka-python reports as one) is passed
    on at once: its commit is refused cleanly (see CLIENT_ERRORS) and the next owner re-reads from the last interval
    commit. An assignment is kept for the caller's thread, which `KafkaSource.poll` serves before it returns."""

    def __init__(self, target: RebalanceListener) -> None:
        self.target = target
        self.assigned: set[TopicPartition] | None = None  # the whole new assignment (eager), not yet served
        self.revoked: set[TopicPartition] = set()  # given up since the caller last looked

    def on_partitions_revoked(self, revoked: Any) -> None:
        partitions = {(tp.topic, tp.partition) for tp in revoked}
        self.assigned = None  # an assignment not yet served is over too
        self.revoked |= partitions
        self.target.on_revoked(partitions)

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.assigned = {(tp.topic, tp.partition) for tp in assigned}


class KafkaSource:
    """A consumer-group member on one topic with manual commits."""

    def __init__(self, k: KafkaConfig, topic: str, listener: RebalanceListener, max_poll_records: int,
                 fetch_bytes: int = settings.FETCH_BYTES) -> None:
        options = settings.render(settings.consumer(k, max_poll_records, fetch_bytes), "kafka-python")
        self._listener = _Listener(listener)
        with translated("consumer start", *CLIENT_ERRORS):
            self.consumer = KafkaConsumer(**options)
            self.consumer.subscribe([topic], listener=self._listener)

    def _serve_rebalance(self, out: list[InputMessage]) -> list[InputMessage]:
        """Drop what was fetched of partitions given up or newly assigned, then start the new assignment afresh
        (unpaused, from the committed offsets) and tell the worker. kafka-python 3.0 keeps a partition's position
        and pause through an eager rebalance that gives it back to the same member (Java's consumer drops both);
        the worker left that partition's unfinished windows to 'the next owner', so this member must read them
        again. Dropping is safe: the new owner, this member included, reads from the committed offset. If the
        committed offsets cannot be read, the partitions stay paused and unserved until a later poll can."""
        listener = self._listener
        gone = listener.revoked | (listener.assigned or set())
        listener.revoked = set()
        if gone:
            out = [m for m in out if m.tp not in gone]
        if listener.assigned is None:
            return out
        partitions = listener.assigned & self._owned()
        try:
            self.resume(partitions)
            self.rewind(partitions)
        except BrokerError as exc:
            log.warning("assigned partitions %s not yet restarted from their committed offsets (retried at the "
                        "next poll): %s", sorted(partitions), exc)
            with contextlib.suppress(BrokerError):
                self.pause(partitions)
            return out
        listener.assigned = None
        listener.target.on_assigned(partitions)
        return out

    def poll(self, timeout_s: float, max_records: int, fill: bool = False) -> list[InputMessage]:
        deadline = time.monotonic() + timeout_s
        out: list[InputMessage] = []
        with translated("poll", *CLIENT_ERRORS):
            while True:
                left = deadline - time.monotonic()
                try:
                    batches = self.consumer.poll(timeout_ms=max(0, int(left * 1000)),
                                                 max_records=max_records - len(out))
                except Exception:
                    self._give_back(out)
                    raise
                for records in batches.values():
                    for r in records:
                        out.append(InputMessage(r.topic, r.partition, r.offset, r.key, r.value,
                                                list(r.headers or []), r.timestamp))
                out = self._serve_rebalance(out)
                if not fill or len(out) >= max_records or time.monotonic() >= deadline:
                    return out

    def _give_back(self, out: list[InputMessage]) -> None:
        """Records a failing poll will not return: seek their partitions back to them (no network), or the next
        poll would read past windows the worker never saw, and its commits would skip them."""
        first: dict[TopicPartition, int] = {}
        for m in out:
            first[m.tp] = min(m.offset, first.get(m.tp, m.offset))
        for (topic, partition), offset in first.items():
            with contextlib.suppress(*CLIENT_ERRORS, ValueError):  # ValueError: no longer assigned
                self.consumer.seek(KafkaTP(topic, partition), offset)

    def pause(self, partitions: set[TopicPartition]) -> None:
        with translated("pause", *CLIENT_ERRORS):
            self.consumer.pause(*(KafkaTP(t, p) for t, p in partitions))

    def resume(self, partitions: set[TopicPartition]) -> None:
        with translated("resume", *CLIENT_ERRORS):
            self.consumer.resume(*(KafkaTP(t, p) for t, p in partitions))

    def _owned(self) -> set[TopicPartition]:
        with translated("assignment", *CLIENT_ERRORS):
            return {(tp.topic, tp.partition) for tp in self.consumer.assignment()}

    def assignment(self) -> set[TopicPartition]:
        """The partitions served: an assignment still waiting for its committed offsets is not (nothing of it is
        read yet), so readiness and `tsad_assigned_partitions` do not count it."""
        return self._owned() - (self._listener.assigned or set())

    def commit(self, positions: dict[TopicPartition, int]) -> None:
        # Bounded: without a timeout kafka-python waits for a coordinator for as long as the broker is away,
        # which would freeze the loop (and health reporting); a timed-out commit is retried at the next interval.
        with translated("offset commit", *CLIENT_ERRORS):
            self.consumer.commit(kafka_offsets(positions), timeout_ms=COMMIT_TIMEOUT_MS)

    def lag(self) -> dict[TopicPartition, int]:
        """Messages between the consumer's position and the partition end, from the last fetch's high-water."""
        out = {}
        served = self.assignment()
        with translated("lag", *CLIENT_ERRORS):
            for tp in (KafkaTP(t, p) for t, p in served):
                high = self.consumer.highwater(tp)
                if high is None:
                    continue
                try:
                    position = self.consumer.position(tp, timeout_ms=1000)
                except KafkaError:
                    continue
                if position is not None:  # None until a partition sought to its beginning has looked it up
                    out[(tp.topic, tp.partition)] = max(0, high - position)
        return out

    def group_metadata(self) -> object:
        with translated("group metadata", *CLIENT_ERRORS):
            return self.consumer.group_metadata()

    def rewind(self, partitions: set[TopicPartition]) -> None:
        """Every committed offset is read before any partition moves, so a failure moves none of them."""
        with translated("rewind", *CLIENT_ERRORS):
            targets = [KafkaTP(t, p) for t, p in sorted(partitions)]
            committed = [self.consumer.committed(tp, timeout_ms=COMMIT_TIMEOUT_MS) for tp in targets]
            for tp, offset in zip(targets, committed, strict=True):
                if offset is None:
                    self.consumer.seek_to_beginning(tp)
                else:
                    self.consumer.seek(tp, offset)

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
