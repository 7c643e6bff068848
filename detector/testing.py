"""In-memory fakes of the Kafka seams for unit tests and benchmarks (never used by the service).

`MemorySource` behaves like a group consumer over per-partition logs (positions, pause/resume, commits, rewind,
revocation); `MemorySink` acknowledges at once or when the test says; `MemoryTransactionalSink` keeps records
invisible until their transaction commits. `fail_next(method, error)` makes one call of a method raise, the way a
real client's failure reaches the loop: as `BrokerError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from detector.kafka.seams import (
    BrokerError,
    DoneCallback,
    InputMessage,
    OutputRecord,
    RebalanceListener,
    StateUnsettled,
    TopicPartition,
)


class _Failures:
    """One-shot failures injected per method name."""

    _failures: dict[str, BrokerError]

    def fail_next(self, method: str, error: BrokerError | None = None) -> None:
        if not hasattr(self, method):
            raise AttributeError(f"{type(self).__name__} has no method {method!r}")
        self._failures[method] = error or BrokerError(f"{method}: injected failure")

    def _check(self, method: str) -> None:
        if self._failures:
            error = self._failures.pop(method, None)
            if error is not None:
                raise error


@dataclass
class MemorySource(_Failures):
    """Per-partition logs with consumer positions, pause/resume, commits and rewind, like a group consumer."""

    logs: dict[TopicPartition, list[InputMessage]] = field(default_factory=dict)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    partitions: set[TopicPartition] = field(default_factory=set)
    paused: set[TopicPartition] = field(default_factory=set)
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    listener: RebalanceListener | None = None
    closed: bool = False
    _failures: dict[str, BrokerError] = field(default_factory=dict)

    def add(self, messages: Sequence[InputMessage]) -> None:
        for m in messages:
            self.logs.setdefault(m.tp, []).append(m)
            self.positions.setdefault(m.tp, 0)
            self.partitions.add(m.tp)

    @property
    def messages(self) -> list[InputMessage]:
        """Messages not yet polled."""
        return [m for tp, log in self.logs.items() for m in log[self.positions[tp]:]]

    def poll(self, timeout_s: float, max_records: int, fill: bool = False) -> list[InputMessage]:
        self._check("poll")
        out: list[InputMessage] = []
        for tp in sorted(self.logs):
            if tp in self.paused or tp not in self.partitions:
                continue
            take = self.logs[tp][self.positions[tp] : self.positions[tp] + max_records - len(out)]
            self.positions[tp] += len(take)
            out.extend(take)
        return out

    def pause(self, partitions: set[TopicPartition]) -> None:
        self._check("pause")
        self.paused |= partitions

    def resume(self, partitions: set[TopicPartition]) -> None:
        self._check("resume")
        self.paused -= partitions

    def assignment(self) -> set[TopicPartition]:
        self._check("assignment")
        return set(self.partitions)

    def commit(self, positions: dict[TopicPartition, int]) -> None:
        self._check("commit")
        self.commits.append(dict(positions))

    def committed(self) -> dict[TopicPartition, int]:
        merged: dict[TopicPartition, int] = {}
        for c in self.commits:
            merged.update(c)
        return merged

    def rewind(self, partitions: set[TopicPartition]) -> None:
        self._check("rewind")
        committed = self.committed()
        for tp in partitions:
            self.positions[tp] = committed.get(tp, 0)

    def lag(self) -> dict[TopicPartition, int]:
        self._check("lag")
        return {tp: len(self.logs.get(tp, [])) - self.positions.get(tp, 0) for tp in self.partitions}

    def connected(self) -> bool:
        return True

    def group_metadata(self) -> object:
        self._check("group_metadata")
        return "memory-group"

    def revoke(self, partitions: set[TopicPartition]) -> None:
        if self.listener is not None:
            self.listener.on_revoked(partitions)
        self.partitions -= partitions
        self.paused -= partitions  # a partition given up loses its pause (the Source contract)

    def assign(self, partitions: set[TopicPartition]) -> None:
        """Give partitions (back) to this member: fetching resumes from the committed offsets."""
        committed = self.committed()
        for tp in partitions:
            self.positions[tp] = committed.get(tp, 0)
        self.partitions |= partitions
        if self.listener is not None:
            self.listener.on_assigned(partitions)

    def close(self) -> None:
        self.closed = True


@dataclass
class MemorySink(_Failures):
    """Keeps sent records; acknowledges at once (`auto_ack`) or when the test calls `ack()`/`fail()`."""

    auto_ack: bool = True
    sent: list[OutputRecord] = field(default_factory=list)
    acked: list[OutputRecord] = field(default_factory=list)
    pending: list[tuple[OutputRecord, DoneCallback]] = field(default_factory=list)
    closed: bool = False
    _failures: dict[str, BrokerError] = field(default_factory=dict)

    def connect(self, topics: Sequence[str], timeout_s: float) -> None:
        """Nothing to connect: records are kept in memory."""

    def send(self, record: OutputRecord, on_done: DoneCallback) -> None:
        self.sent.append(record)
        failure = self._failures.pop("send", None)
        if failure is not None:  # reported through the callback, as a client reports a failed send
            on_done(record, failure)
            return
        if self.auto_ack:
            self.acked.append(record)
            on_done(record, None)
        else:
            self.pending.append((record, on_done))

    def ack(self, n: int | None = None) -> None:
        take = self.pending if n is None else self.pending[:n]
        self.pending = [] if n is None else self.pending[n:]
        for record, on_done in take:
            self.acked.append(record)
            on_done(record, None)

    def fail(self, error: Exception) -> None:
        take, self.pending = self.pending, []
        for record, on_done in take:
            on_done(record, error)

    def run_delivery_callbacks(self) -> None:
        """Nothing to run: acknowledgements are immediate (auto_ack) or driven by the test."""

    def flush(self, timeout_s: float) -> None:
        """Nothing to wait for: acknowledgements are immediate (auto_ack) or driven by the test."""

    def close(self) -> None:
        self.closed = True


@dataclass
class MemoryTransactionalSink(MemorySink):
    """Transactional fake: acknowledged records stay invisible until commit_transaction; abort discards them."""

    visible: list[OutputRecord] = field(default_factory=list)
    source: MemorySource | None = None  # where transactional offset commits land, as in a consumer group
    aborts: int = 0
    _open: list[OutputRecord] = field(default_factory=list)

    def send(self, record: OutputRecord, on_done: DoneCallback) -> None:
        self._open.append(record)
        super().send(record, on_done)

    def commit_transaction(self, positions: dict[TopicPartition, int], group_metadata: object) -> None:
        self._check("commit_transaction")
        self.visible.extend(self._open)
        self._open = []
        if self.source is not None and positions:
            self.source.commit(positions)

    def abort_transaction(self) -> None:
        self._open = []
        self.aborts += 1
        self._check("abort_transaction")


@dataclass
class MemoryStateReader:
    """Reads what a memory sink published (for a transactional sink: what its transactions made visible)."""

    sink: MemorySink
    partition_count: int = 1
    unsettled: set[int] = field(default_factory=set)  # partitions holding an earlier owner's open transaction

    def read(self, topic: str, partitions: set[int]) -> list[InputMessage]:
        if partitions & self.unsettled:
            raise StateUnsettled(f"state partitions {sorted(partitions & self.unsettled)} of {topic}: open transaction")
        published = self.sink.visible if isinstance(self.sink, MemoryTransactionalSink) else self.sink.acked
        return [InputMessage(r.topic, r.partition or 0, i, r.key, r.value, [], 0) for i, r in enumerate(published)
                if r.topic == topic and (r.partition or 0) in partitions]

    def partitions(self, topic: str) -> int | None:
        return self.partition_count

    def close(self) -> None:
        """Nothing to close."""
