"""The worker's seams: a Source of input messages and a Sink for output records, with in-memory versions for
unit tests (Kafka implementations are in `kafka_io`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from detector.batching import InputRef

TopicPartition = tuple[str, int]
Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class InputMessage:
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

    def ref(self) -> InputRef:
        return InputRef(self.topic, self.partition, self.offset, self.timestamp_ms, self.key)


@dataclass
class OutputRecord:
    kind: str  # "event" | "score" | "dead_letter"
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers
    ref: InputRef
    attempts: int = 0


DoneCallback = Callable[[OutputRecord, Exception | None], None]


class RebalanceListener(Protocol):
    def on_revoked(self, partitions: set[TopicPartition]) -> None: ...

    def on_assigned(self, partitions: set[TopicPartition]) -> None: ...


class Source(Protocol):
    def poll(self, timeout_s: float, max_records: int) -> list[InputMessage]: ...

    def pause(self, partitions: set[TopicPartition]) -> None: ...

    def resume(self, partitions: set[TopicPartition]) -> None: ...

    def assignment(self) -> set[TopicPartition]: ...

    def commit(self, positions: dict[TopicPartition, int]) -> None: ...

    def lag(self) -> dict[TopicPartition, int]: ...

    def connected(self) -> bool: ...

    def close(self) -> None: ...


class Sink(Protocol):
    def send(self, record: OutputRecord, on_done: DoneCallback) -> None: ...

    def flush(self, timeout_s: float) -> None: ...

    def close(self) -> None: ...


@dataclass
class MemorySource:
    """Serves queued messages per partition; records commits; pause/resume like a consumer."""

    messages: list[InputMessage] = field(default_factory=list)
    partitions: set[TopicPartition] = field(default_factory=set)
    paused: set[TopicPartition] = field(default_factory=set)
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    listener: RebalanceListener | None = None
    closed: bool = False

    def add(self, messages: Sequence[InputMessage]) -> None:
        self.messages.extend(messages)
        self.partitions |= {m.tp for m in messages}

    def poll(self, timeout_s: float, max_records: int) -> list[InputMessage]:
        out: list[InputMessage] = []
        rest: list[InputMessage] = []
        for m in self.messages:
            if len(out) < max_records and m.tp not in self.paused and m.tp in self.partitions:
                out.append(m)
            else:
                rest.append(m)
        self.messages = rest
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

    def lag(self) -> dict[TopicPartition, int]:
        return {tp: sum(1 for m in self.messages if m.tp == tp) for tp in self.partitions}

    def connected(self) -> bool:
        return True

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

    def flush(self, timeout_s: float) -> None:
        if self.auto_ack:
            return

    def close(self) -> None:
        self.closed = True
