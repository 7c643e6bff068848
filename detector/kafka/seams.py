"""The worker's seams: a Source of input messages and a Sink for output records.

Each client backend (`kafka_python`, `confluent`) implements them, and so do the in-memory fakes in
`detector.testing`. Every method raises nothing but `BrokerError` for client or broker trouble: errors are
translated here, at the seam, so the loop handles one error type whatever the client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
    kind: str  # "event" | "score" | "dead_letter" | "episode" | "episode_state"
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers
    ref: InputMessage
    attempts: int = 0
    epoch: int = 0  # transaction epoch it was sent in (exactly-once mode): late callbacks of aborted ones are ignored
    partition: int | None = None  # None: the client's partitioner decides by key


DoneCallback = Callable[[OutputRecord, Exception | None], None]


class BrokerError(Exception):
    """A client or broker failure raised by a Source or Sink; the worker logs it and keeps running."""


@contextmanager
def translated(what: str, *client_errors: type[BaseException]) -> Iterator[None]:
    """Re-raise a client library's errors as BrokerError naming the operation (`what`)."""
    try:
        yield
    except BrokerError:
        raise
    except client_errors as exc:
        raise BrokerError(f"{what}: {type(exc).__name__}: {exc}") from exc


def write_refused(topic: str, error: object) -> BrokerError:
    """The broker refused a record because the worker's principal may not write to `topic` (a missing ACL)."""
    return BrokerError(f"not authorised to write to topic {topic!r} ({error}): grant the worker's principal WRITE "
                       "on it; its windows stay uncommitted until then")


class RebalanceListener(Protocol):
    def on_revoked(self, partitions: set[TopicPartition]) -> None: ...

    def on_assigned(self, partitions: set[TopicPartition]) -> None: ...


class Source(Protocol):
    def poll(self, timeout_s: float, max_records: int, fill: bool = False) -> list[InputMessage]:
        """Messages as soon as any are available (at most `timeout_s` of waiting); with `fill`, keep collecting
        until `max_records` or the timeout, whichever comes first (a batch already waiting for its deadline)."""

    def pause(self, partitions: set[TopicPartition]) -> None:
        """Stop fetching these assigned partitions until `resume`, or until they are given up: a partition
        assigned again (after a revocation or a loss) starts fetching."""

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

    def connect(self, topics: Sequence[str], timeout_s: float) -> None:
        """Connect and fetch the topics' metadata now, so the first records sent do not wait for it (best effort
        within `timeout_s`, never raises: a topic that cannot be reached fails its records later, as usual)."""

    def run_delivery_callbacks(self) -> None:
        """Run the delivery callbacks that are due, on the caller's thread (a no-op for clients that run them on
        their own I/O thread)."""

    def flush(self, timeout_s: float) -> None:
        """Wait (at most `timeout_s`) for outstanding records to be acknowledged; best effort, never raises."""

    def close(self) -> None: ...


class StateUnsettled(BrokerError):
    """A state partition still holds a transaction of an earlier owner that neither committed nor aborted (a worker
    killed mid-transaction, with another transactional id): its last stable offset stops before that transaction,
    so state committed *after* it by later owners is not readable yet. The broker aborts it after
    transaction.timeout.ms; until then the partition's input must wait, or its state would be restored stale."""


def check_settled(topic: str, stable_ends: dict[int, int], ends: dict[int, int]) -> None:
    """Raises StateUnsettled unless every partition's last stable offset has reached its end (high watermark)."""
    open_ = {p: (stable_ends[p], end) for p, end in sorted(ends.items()) if stable_ends.get(p, end) < end}
    if open_:
        raise StateUnsettled(f"state partitions of {topic} with a transaction still open (partition: last stable "
                             f"offset, end): {open_}; waiting for it to commit or time out")


class StateReader(Protocol):
    """Reads compacted state partitions whole, from the beginning to their current end (read_committed when the
    worker runs exactly-once)."""

    def read(self, topic: str, partitions: set[int]) -> list[InputMessage]:
        """Every record of these partitions; exactly-once: raises StateUnsettled while one holds an open
        transaction of an earlier owner."""

    def partitions(self, topic: str) -> int | None:
        """How many partitions `topic` has; None if it does not exist."""

    def close(self) -> None: ...


class TransactionalSink(Sink, Protocol):
    """Exactly-once: records sent since the last commit become visible together with the input offsets."""

    def commit_transaction(self, positions: dict[TopicPartition, int], group_metadata: object) -> None: ...

    def abort_transaction(self) -> None: ...
