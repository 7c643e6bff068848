"""The worker's seams: a Source of input messages and a Sink for output records, with in-memory versions for
unit tests (Kafka implementations are in `kafka_io`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

TopicPartition = tuple[str, int]
Headers = list[tuple[str, bytes]]


class InputMessage(NamedTuple):
    """One consumed message; also the reference an output record keeps to its input (a tuple: cheap to make)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int

    @property
    def tp(self) -> TopicPartition:
        return (self.topic, self.partition)


@dataclass(slots=True)
class OutputRecord:
    kind: str  # "event" | "score" | "dead_letter"
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers
    ref: InputMessage
    attempts: int = 0
    epoch: int = 0  # transaction epoch it was sent in (exactly-once mode): late callbacks of aborted ones are ignored


DoneCallback = Callable[[OutputRecord, Exception | None], None]


class BrokerError(Exception):
    """A transient client or broker failure raised by a Source or Sink; the worker logs it and keeps running."""


class RebalanceListener(Protocol):
    def on_revoked(self, partitions: set[TopicPartition]) -> None: ...

    def on_assigned(self, partitions: set[TopicPartition]) -> None: ...


class Source(Protocol):
    def poll(self, timeout_s: float, max_records: int, fill: bool = False) -> list[InputMessage]:
        """Messages as soon as any are available (at most `timeout_s` of waiting); with `fill`, keep collecting
        until `max_records` or the timeout, whichever comes first (a batch already waiting for its deadline)."""

    def pause(self, partitions: set[TopicPartition]) -> None: ...

    def resume(self, partitions: set[TopicPartition]) -> None: ...

    def assignment(self) -> set[TopicPartition]: ...

    def commit(self, positions: dict[TopicPartition, int]) -> None: ...

    def lag(self) -> dict[TopicPartition, int]: ...

    def connected(self) -> bool: ...

    def group_metadata(self) -> object: ...

    def rewind(self, partitions: set[TopicPartition]) -> None:
        """Seek back to the committed offsets (after an aborted transaction)."""

    def close(self) -> None: ...


class Sink(Protocol):
    def send(self, record: OutputRecord, on_done: DoneCallback) -> None: ...

    def serve(self) -> None:
        """Run the delivery callbacks that are due, on the caller's thread (a no-op for clients that run them on
        their own I/O thread)."""

    def flush(self, timeout_s: float) -> None: ...

    def close(self) -> None: ...


class TransactionalSink(Sink, Protocol):
    """Exactly-once: records sent since the last commit become visible together with the input offsets."""

    def commit_transaction(self, positions: dict[TopicPartition, int], group_metadata: object) -> None: ...

    def abort_transaction(self) -> None: ...


@dataclass
class MemorySource:
    """Per-partition logs with consumer positions, pause/resume, commits and rewind, like a group consumer."""

    logs: dict[TopicPartition, list[InputMessage]] = field(default_factory=dict)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    partitions: set[TopicPartition] = field(default_factory=set)
    paused: set[TopicPartition] = field(default_factory=set)
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    listener: RebalanceListener | None = None
    closed: bool = False

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
        out: list[InputMessage] = []
        for tp in sorted(self.logs):
            if tp in self.paused or tp not in self.partitions:
                continue
            take = self.logs[tp][self.positions[tp] : self.positions[tp] + max_records - len(out)]
            self.positions[tp] += len(take)
            out.extend(take)
        return out

    def pause(self, partitions: set[TopicPartition]) -> None:
        self.paused |= partitions

    def resume(self, partitions: set[TopicPartition]) -> None:
        self.paused -= partitions

    def assignment(self) -> set[TopicPartition]:
        return set(self.partitions)

    def commit(self, positions: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(positions))

    def committed(self) -> dict[TopicPartition, int]:
        merged: dict[TopicPartition, int] = {}
        for c in self.commits:
            merged.update(c)
        return merged

    def rewind(self, partitions: set[TopicPartition]) -> None:
        committed = self.committed()
        for tp in partitions:
            self.positions[tp] = committed.get(tp, 0)

    def lag(self) -> dict[TopicPartition, int]:
        return {tp: len(self.logs.get(tp, [])) - self.positions.get(tp, 0) for tp in self.partitions}

    def connected(self) -> bool:
        return True

    def group_metadata(self) -> object:
        return "memory-group"

    def revoke(self, partitions: set[TopicPartition]) -> None:
        if self.listener is not None:
            self.listener.on_revoked(partitions)
        self.partitions -= partitions

    def close(self) -> None:
        self.closed = True


@dataclass
class MemorySink:
    """Keeps sent records; acknowledges at once (`auto_ack`) or when the test calls `ack()`/`fail()`."""

    auto_ack: bool = True
    sent: list[OutputRecord] = field(default_factory=list)
    acked: list[OutputRecord] = field(default_factory=list)
    pending: list[tuple[OutputRecord, DoneCallback]] = field(default_factory=list)
    closed: bool = False

    def send(self, record: OutputRecord, on_done: DoneCallback) -> None:
        self.sent.append(record)
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

    def serve(self) -> None:
        """Nothing to serve: acknowledgements are immediate (auto_ack) or driven by the test."""

    def flush(self, timeout_s: float) -> None:
        """Nothing to wait for: acknowledgements are immediate (auto_ack) or driven by the test."""

    def close(self) -> None:
        self.closed = True


@dataclass
class MemoryTransactionalSink(MemorySink):
    """Transactional fake: acknowledged records stay invisible until commit_transaction; abort discards them."""

    visible: list[OutputRecord] = field(default_factory=list)
    source: MemorySource | None = None  # where transactional offset commits land, as in a consumer group
    fail_next_commit: Exception | None = None
    aborts: int = 0
    _open: list[OutputRecord] = field(default_factory=list)

    def send(self, record: OutputRecord, on_done: DoneCallback) -> None:
        self._open.append(record)
        super().send(record, on_done)

    def commit_transaction(self, positions: dict[TopicPartition, int], group_metadata: object) -> None:
        if self.fail_next_commit is not None:
            error, self.fail_next_commit = self.fail_next_commit, None
            raise error
        self.visible.extend(self._open)
        self._open = []
        if self.source is not None and positions:
            self.source.commit(positions)

    def abort_transaction(self) -> None:
        self._open = []
        self.aborts += 1
