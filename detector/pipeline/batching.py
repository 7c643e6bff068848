"""Micro-batching by size and by latency: a batch is ready when it is full or its oldest window has waited long
enough. The batcher holds at most `max_size` windows; the worker bounds everything else in flight.

Windows arrive many at a time (every valid window of one poll) and are kept in columns: one float32 matrix plus,
per field, the parts given to `add` (lists for per-window messages; for batched messages the lazy columns of
wire/columns.py), joined when the batch is taken, so no per-window object is made on the hot path.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from detector.kafka.seams import InputMessage
from detector.wire.columns import RowBlocks, concat, copy_rows


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
    def __init__(self, window: int, max_size: int, max_wait_s: float, clock: Callable[[], float],
                 pinned: bool = False, copy_threads: int = 1) -> None:
        self.window = window
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self.clock = clock
        # Two buffers taken in turn: a taken batch is a view of one while the next fills the other, so `take` copies
        # nothing (a fresh 36 MB copy per 65,536-window batch cost more than decoding it). A batch stays valid until
        # the second `take` after it; the loop processes each batch before it takes the next.
        # With `pinned` (a model on CUDA) they are page-locked, so the scorer copies a batch to the device directly.
        self._buffers = [_matrix(max_size, window, pinned) for _ in range(2)]
        # numpy's copy is one core's memcpy; into pinned memory, with `copy_threads` > 1 (model.threads, the size of
        # torch's pool), torch copies large blocks on its threads
        self._copy = _threaded_copy() if pinned and copy_threads > 1 else None
        self._buffer = self._buffers[0]
        self._n = 0
        self._messages: list[Sequence[InputMessage]] = []  # the parts given to `add`, per field
        self._ids: list[Sequence[str | None]] = []
        self._sources: list[Sequence[str | None]] = []
        self._ts: list[Sequence[float | None]] = []
        self._rows: list[Sequence[int]] = []
        self._first_at = 0.0

    def __len__(self) -> int:
        return self._n

    @property
    def full(self) -> bool:
        return self._n >= self.max_size

    def add(self, windows: np.ndarray | RowBlocks, messages: Sequence[InputMessage], ids: Sequence[str | None],
            sources: Sequence[str | None], ts: Sequence[float | None], rows: Sequence[int] | None = None) -> int:
        """Append as many of the given windows as fit; return how many were taken (the caller keeps the rest)."""
        n = self._n
        take = min(len(messages), self.max_size - n)
        if take <= 0:
            return 0
        if n == 0:
            self._first_at = self.clock()
        copy_rows(self._buffer[n : n + take], windows[:take], self._copy)
        self._n += take
        whole = take == len(messages)
        self._messages.append(messages if whole else messages[:take])
        self._ids.append(ids if whole else ids[:take])
        self._sources.append(sources if whole else sources[:take])
        self._ts.append(ts if whole else ts[:take])
        self._rows.append([-1] * take if rows is None else rows if whole else rows[:take])
        return take

    def ready(self) -> bool:
        return self.full or (self._n > 0 and self.clock() - self._first_at >= self.max_wait_s)

    def time_left(self) -> float:
        """Seconds until the current batch is due (the poll timeout to use); max_wait when empty."""
        if not self._n:
            return self.max_wait_s
        return max(0.0, self.max_wait_s - (self.clock() - self._first_at))

    def take(self) -> Batch:
        batch = Batch(self._buffer[: self._n], concat(self._messages), concat(self._ids), concat(self._sources),
                      concat(self._ts), concat(self._rows))
        self._buffer = self._buffers[1] if self._buffer is self._buffers[0] else self._buffers[0]
        self._n = 0
        self._messages, self._ids, self._sources, self._ts, self._rows = [], [], [], [], []
        return batch

    def drop_partitions(self, partitions: set[tuple[str, int]]) -> int:
        """Forget windows of revoked partitions (they will be re-read by their new owner); return how many."""
        messages = list(concat(self._messages))
        keep = [i for i, m in enumerate(messages) if (m.topic, m.partition) not in partitions]
        dropped = len(messages) - len(keep)
        if dropped:
            self._buffer[: len(keep)] = self._buffer[keep]
            ids, sources, ts, rows = concat(self._ids), concat(self._sources), concat(self._ts), concat(self._rows)
            self._messages = [[messages[i] for i in keep]]
            self._ids, self._sources = [[ids[i] for i in keep]], [[sources[i] for i in keep]]
            self._ts, self._rows = [[ts[i] for i in keep]], [[rows[i] for i in keep]]
            self._n = len(keep)
        return dropped


def _matrix(rows: int, width: int, pinned: bool) -> np.ndarray:
    if not pinned:
        return np.empty((rows, width), dtype=np.float32)
    import torch  # only a CUDA worker pins memory

    return torch.empty((rows, width), dtype=torch.float32, pin_memory=True).numpy()


THREADED_COPY_MIN = 32_768  # values: below torch's grain size its copy runs on one thread anyway, at a higher cost


def _threaded_copy() -> Callable[[np.ndarray, np.ndarray], None]:
    """out[:] = rows, large blocks by torch on its intra-op threads (3x numpy's one core on a 16-core host)."""
    import torch  # only a CUDA worker copies this way

    # `rows` is often a read-only view of a Kafka message; torch warns once about wrapping it, but it is only read.
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning,
                            module=r"detector\.pipeline\.batching")

    def copy(out: np.ndarray, rows: np.ndarray) -> None:
        if rows.size < THREADED_COPY_MIN:
            out[:] = rows
        else:
            torch.from_numpy(out).copy_(torch.from_numpy(rows))

    return copy
