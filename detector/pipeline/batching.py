"""Micro-batching by size and by latency: a batch is ready when it is full or its oldest window has waited long
enough. The batcher holds at most `max_size` windows; the worker bounds everything else in flight.

Windows arrive many at a time (every valid window of one poll) and are kept in columns: one float32 matrix plus a
list per field, so no per-window object is made on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from detector.kafka.seams import InputMessage


@dataclass
class Batch:
    windows: np.ndarray  # [n, window] float32
    messages: Sequence[InputMessage]  # where each window came from
    ids: Sequence[str | None]  # window ids (from the payload or the tsad-id header)
    sources: Sequence[str | None]  # source named in the payload (else the Kafka key is used)
    ts: Sequence[float | None]  # event time named in the payload, epoch seconds (else the Kafka timestamp)
    rows: Sequence[int] = ()  # row of each window within a batched message (-1: the message is that one window)

    def __len__(self) -> int:
        return len(self.messages)


class MicroBatcher:
    def __init__(self, window: int, max_size: int, max_wait_s: float, clock: Callable[[], float]) -> None:
        self.window = window
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self.clock = clock
        # Two buffers taken in turn: a taken batch is a view of one while the next fills the other, so `take` copies
        # nothing (a fresh 36 MB copy per 65,536-window batch cost more than decoding it). A batch stays valid until
        # the second `take` after it; the loop processes each batch before it takes the next.
        self._buffers = [np.empty((max_size, window), dtype=np.float32) for _ in range(2)]
        self._buffer = self._buffers[0]
        self._messages: list[InputMessage] = []
        self._ids: list[str | None] = []
        self._sources: list[str | None] = []
        self._ts: list[float | None] = []
        self._rows: list[int] = []
        self._first_at = 0.0

    def __len__(self) -> int:
        return len(self._messages)

    @property
    def full(self) -> bool:
        return len(self._messages) >= self.max_size

    def add(self, windows: np.ndarray, messages: Sequence[InputMessage], ids: Sequence[str | None],
            sources: Sequence[str | None], ts: Sequence[float | None], rows: Sequence[int] | None = None) -> int:
        """Append as many of the given windows as fit; return how many were taken (the caller keeps the rest)."""
        n = len(self._messages)
        take = min(len(messages), self.max_size - n)
        if take <= 0:
            return 0
        if n == 0:
            self._first_at = self.clock()
        self._buffer[n : n + take] = windows[:take]
        self._messages.extend(messages[:take])
        self._ids.extend(ids[:take])
        self._sources.extend(sources[:take])
        self._ts.extend(ts[:take])
        self._rows.extend(rows[:take] if rows is not None else [-1] * take)
        return take

    def ready(self) -> bool:
        return self.full or (bool(self._messages) and self.clock() - self._first_at >= self.max_wait_s)

    def time_left(self) -> float:
        """Seconds until the current batch is due (the poll timeout to use); max_wait when empty."""
        if not self._messages:
            return self.max_wait_s
        return max(0.0, self.max_wait_s - (self.clock() - self._first_at))

    def take(self) -> Batch:
        n = len(self._messages)
        batch = Batch(self._buffer[:n], self._messages, self._ids, self._sources, self._ts, self._rows)
        self._buffer = self._buffers[1] if self._buffer is self._buffers[0] else self._buffers[0]
        self._messages, self._ids, self._sources, self._ts, self._rows = [], [], [], [], []
        return batch

    def drop_partitions(self, partitions: set[tuple[str, int]]) -> int:
        """Forget windows of revoked partitions (they will be re-read by their new owner); return how many."""
        keep = [i for i, m in enumerate(self._messages) if (m.topic, m.partition) not in partitions]
        dropped = len(self._messages) - len(keep)
        if dropped:
            self._buffer[: len(keep)] = self._buffer[keep]
            self._messages = [self._messages[i] for i in keep]
            self._ids = [self._ids[i] for i in keep]
            self._sources = [self._sources[i] for i in keep]
            self._ts = [self._ts[i] for i in keep]
            self._rows = [self._rows[i] for i in keep]
        return dropped
