"""Micro-batching by size and by latency: a batch is ready when it is full or its oldest window has waited long
enough. The batcher holds at most `max_size` windows; the worker bounds everything else in flight."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from detector.window_format import DecodedWindow


@dataclass(frozen=True)
class InputRef:
    """Where a window came from: its Kafka coordinates and timestamp (ms), and its key."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None


@dataclass
class Batch:
    windows: np.ndarray  # [n, window] float32
    refs: list[InputRef]
    decoded: list[DecodedWindow]

    def __len__(self) -> int:
        return len(self.refs)


class MicroBatcher:
    def __init__(self, window: int, max_size: int, max_wait_s: float, clock: Callable[[], float]) -> None:
        self.window = window
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self.clock = clock
        self._buffer = np.empty((max_size, window), dtype=np.float32)
        self._refs: list[InputRef] = []
        self._decoded: list[DecodedWindow] = []
        self._first_at = 0.0

    def __len__(self) -> int:
        return len(self._refs)

    @property
    def full(self) -> bool:
        return len(self._refs) >= self.max_size

    def add(self, window: DecodedWindow, ref: InputRef) -> None:
        if self.full:
            raise OverflowError("batch is full; take() it first")
        if not self._refs:
            self._first_at = self.clock()
        self._buffer[len(self._refs)] = window.values
        self._refs.append(ref)
        self._decoded.append(window)

    def ready(self) -> bool:
        return self.full or (bool(self._refs) and self.clock() - self._first_at >= self.max_wait_s)

    def time_left(self) -> float:
        """Seconds until the current batch is due (the poll timeout to use); max_wait when empty."""
        if not self._refs:
            return self.max_wait_s
        return max(0.0, self.max_wait_s - (self.clock() - self._first_at))

    def take(self) -> Batch:
        n = len(self._refs)
        batch = Batch(self._buffer[:n].copy(), self._refs, self._decoded)
        self._refs, self._decoded = [], []
        return batch

    def drop_partitions(self, partitions: set[tuple[str, int]]) -> int:
        """Forget windows of revoked partitions (they will be re-read by their new owner); return how many."""
        keep = [i for i, r in enumerate(self._refs) if (r.topic, r.partition) not in partitions]
        dropped = len(self._refs) - len(keep)
        if dropped:
            self._buffer[: len(keep)] = self._buffer[keep]
            self._refs = [self._refs[i] for i in keep]
            self._decoded = [self._decoded[i] for i in keep]
        return dropped
