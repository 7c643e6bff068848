"""Columns of per-window fields that make no Python object per window until one is asked for.

A batched message of 4,096 windows names one Kafka message, and may carry id, source and time columns. Turning
those into 4,096-long Python lists cost more than scoring the windows (docs/performance.md §6), so a batch holds
them as these sequences instead: a value repeated for a run of windows (`Repeated`), an Arrow string column
(`ArrowStrings`), float64 times with NaN for "none" (`Times`), and a concatenation of such parts (`Chained`).
Each is a read-only `Sequence`: code that asks for window i gets the same Python value a list would give, and
the hot path reads them whole (`message_runs`, `to_arrow`) without per-window work.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate, chain, repeat
from typing import Any, TypeVar, overload

import numpy as np
import pyarrow as pa

T = TypeVar("T")


class Column(Sequence[T]):
    """A read-only per-window column; subclasses give `_at(i)` (0 <= i < len) and `_slice(start, stop)`."""

    def __init__(self, length: int) -> None:
        self._len = length

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, i: int) -> T: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[T]: ...

    def __getitem__(self, i: int | slice) -> T | Sequence[T]:
        if isinstance(i, slice):
            start, stop, step = i.indices(self._len)
            if step != 1:
                return list(self)[i]
            return self._slice(start, max(start, stop))
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(i)
        return self._at(i)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self)!r})"

    def _at(self, i: int) -> T:
        raise NotImplementedError

    def _slice(self, start: int, stop: int) -> Sequence[T]:
        raise NotImplementedError


class Repeated(Column[T]):
    """values[k] repeated counts[k] times: the message (or position) of each window of batched messages."""

    def __init__(self, values: Sequence[T], counts: Sequence[int]) -> None:
        self.values, self.counts = list(values), [int(c) for c in counts]
        self._ends = list(accumulate(self.counts))
        super().__init__(self._ends[-1] if self._ends else 0)

    def _at(self, i: int) -> T:
        return self.values[bisect_right(self._ends, i)]

    def _slice(self, start: int, stop: int) -> Sequence[T]:
        if start == stop:
            return Repeated([], [])
        first, last = bisect_right(self._ends, start), bisect_right(self._ends, stop - 1)
        if first == last:
            return Repeated([self.values[first]], [stop - start])
        counts = self.counts[first : last + 1]
        counts[0] = self._ends[first] - start
        counts[-1] = stop - (self._ends[last] - self.counts[last])
        return Repeated(self.values[first : last + 1], counts)

    def __iter__(self) -> Iterator[T]:
        return chain.from_iterable(map(repeat, self.values, self.counts))


class ArrowStrings(Column["str | None"]):
    """An Arrow string column of a batched message, read one value at a time only when asked."""

    def __init__(self, array: pa.Array) -> None:
        self.array = array
        super().__init__(len(array))

    def _at(self, i: int) -> str | None:
        return self.array[i].as_py()

    def _slice(self, start: int, stop: int) -> Sequence[str | None]:
        return ArrowStrings(self.array.slice(start, stop - start))

    def __iter__(self) -> Iterator[str | None]:
        return iter(self.array.to_pylist())


class Times(Column["float | None"]):
    """Event times in epoch seconds, NaN meaning "none named" (the Kafka timestamp is used)."""

    def __init__(self, seconds: np.ndarray) -> None:
        self.seconds = np.asarray(seconds, dtype=np.float64)
        super().__init__(len(self.seconds))

    def _at(self, i: int) -> float | None:
        t = float(self.seconds[i])
        return None if t != t else t

    def _slice(self, start: int, stop: int) -> Sequence[float | None]:
        return Times(self.seconds[start:stop])

    def __iter__(self) -> Iterator[float | None]:
        return (None if t != t else t for t in self.seconds.tolist())


class Chained(Column[T]):
    """Several columns one after another (the parts of a micro-batch, one per poll or message)."""

    def __init__(self, parts: Sequence[Sequence[T]]) -> None:
        self.parts = [p for p in parts if len(p)]
        self._starts = np.cumsum([0, *(len(p) for p in self.parts)], dtype=np.int64).tolist()
        super().__init__(self._starts[-1])

    def _at(self, i: int) -> T:
        k = bisect_right(self._starts, i) - 1
        return self.parts[k][i - self._starts[k]]

    def _slice(self, start: int, stop: int) -> Sequence[T]:
        out = []
        for part, begin in zip(self.parts, self._starts, strict=False):
            lo, hi = max(start - begin, 0), min(stop - begin, len(part))
            if lo < hi:
                out.append(part[lo:hi])
        return concat(out)

    def __iter__(self) -> Iterator[T]:
        return chain.from_iterable(self.parts)


class RowBlocks:
    """Matrices of windows [k_i, width] one after another, read as one [sum k_i, width] matrix without being joined:
    a poll of batched messages is copied once, into the micro-batch (`copy_into`), not first into a matrix of its
    own (a 147 MB concatenation per poll of 64 messages of 4,096 windows cost more than decoding them)."""

    def __init__(self, blocks: Sequence[np.ndarray], width: int) -> None:
        self.blocks = [b for b in blocks if len(b)]
        self.width = width
        self._starts = list(accumulate((len(b) for b in self.blocks), initial=0))

    def __len__(self) -> int:
        return self._starts[-1]

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), self.width

    @overload
    def __getitem__(self, i: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, i: slice) -> RowBlocks: ...

    def __getitem__(self, i: int | slice) -> np.ndarray | RowBlocks:
        if not isinstance(i, slice):
            i = i + len(self) if i < 0 else i
            if not 0 <= i < len(self):
                raise IndexError(i)
            k = bisect_right(self._starts, i) - 1
            return self.blocks[k][i - self._starts[k]]
        start, stop, step = i.indices(len(self))
        if step != 1:
            raise ValueError("row blocks are sliced with step 1 only")
        out = []
        for block, begin in zip(self.blocks, self._starts, strict=False):
            lo, hi = max(start - begin, 0), min(stop - begin, len(block))
            if lo < hi:
                out.append(block[lo:hi])
        return RowBlocks(out, self.width)

    def copy_into(self, out: np.ndarray, assign: Callable[[np.ndarray, np.ndarray], None] | None = None) -> None:
        """Write the rows into `out` ([len(self), width]), block by block with `assign(part, block)`."""
        for block, begin in zip(self.blocks, self._starts, strict=False):
            if assign is None:
                out[begin : begin + len(block)] = block
            else:
                assign(out[begin : begin + len(block)], block)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.empty((len(self), self.width), dtype=np.float32)
        self.copy_into(out)
        return out if dtype is None else out.astype(dtype)


def copy_rows(out: np.ndarray, rows: np.ndarray | RowBlocks,
              assign: Callable[[np.ndarray, np.ndarray], None] | None = None) -> None:
    """out[:] = rows, for a matrix or row blocks alike (with `assign(part, block)` when given)."""
    if isinstance(rows, RowBlocks):
        rows.copy_into(out, assign)
    elif assign is None:
        out[:] = rows
    else:
        assign(out, rows)


def concat(parts: Sequence[Sequence[T]]) -> Sequence[T]:
    """One column of the parts: a plain list when every part is one (the per-window path stays lists)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return []
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(p, list) for p in parts):
        return list(chain.from_iterable(parts))
    flat: list[Sequence[T]] = []
    for p in parts:
        flat += p.parts if isinstance(p, Chained) else [p]
    return Chained(flat)


def message_runs(messages: Sequence[T]) -> tuple[list[T], list[int]]:
    """The messages of a batch as (message, how many consecutive windows) runs, without a per-window step where
    the column already knows its runs."""
    if isinstance(messages, Repeated):
        return list(messages.values), list(messages.counts)
    if isinstance(messages, Chained):
        values: list[T] = []
        counts: list[int] = []
        for part in messages.parts:
            v, c = message_runs(part)
            if values and v and v[0] is values[-1]:
                counts[-1] += c[0]
                v, c = v[1:], c[1:]
            values += v
            counts += c
        return values, counts
    values, counts = [], []
    for m in messages:
        if values and m is values[-1]:
            counts[-1] += 1
        else:
            values.append(m)
            counts.append(1)
    return values, counts


def messages_at(messages: Sequence[T], positions: np.ndarray) -> tuple[list[T], np.ndarray]:
    """The messages of the windows at `positions`, as distinct messages and, per position, which one: from the
    column's runs where it knows them (batched input: one message for many windows), else one per position (a
    plain list is read only where asked)."""
    if isinstance(messages, (Repeated, Chained)):
        runs, counts = message_runs(messages)
        return runs, np.repeat(np.arange(len(runs)), counts)[positions]
    return [messages[i] for i in positions.tolist()], np.arange(len(positions))


def pick(column: Sequence[T], positions: list[int]) -> list[T]:
    """column[i] for each position (ascending), read column-wise: a few windows of a large batch (its anomalies)
    cost a take per part, not a lookup and a Python object per window of the batch."""
    if isinstance(column, ArrowStrings):
        return column.array.take(pa.array(positions, pa.int64())).to_pylist()
    if isinstance(column, Times):
        return list(Times(column.seconds[positions]))  # type: ignore[arg-type]
    if isinstance(column, Repeated):
        ends = column._ends
        return [column.values[bisect_right(ends, i)] for i in positions]
    if isinstance(column, Chained):
        out: list[T] = []
        starts, k, group = column._starts, 0, list[int]()
        for i in positions:
            while i >= starts[k + 1]:
                if group:
                    out += pick(column.parts[k], group)
                    group = []
                k += 1
            group.append(i - starts[k])
        if group:
            out += pick(column.parts[k], group)
        return out
    return [column[i] for i in positions]


def as_array(column: Sequence[Any], dtype: type = np.float64) -> np.ndarray:
    """The column as one numpy array, None as NaN (times), read part by part: a `Times` column is its seconds, a
    run is repeated, a range is counted; only a plain list is read window by window."""
    if isinstance(column, Times):
        return column.seconds.astype(dtype, copy=False)
    if isinstance(column, Chained):
        return np.concatenate([as_array(p, dtype) for p in column.parts]) if column.parts else np.empty(0, dtype)
    if isinstance(column, Repeated):
        return np.repeat(np.array([np.nan if v is None else v for v in column.values], dtype), column.counts)
    if isinstance(column, range):
        return np.arange(column.start, column.stop, column.step, dtype=dtype)
    return np.array([np.nan if v is None else v for v in column], dtype)


def to_arrow(column: Sequence[Any], kind: pa.DataType) -> pa.Array:
    """The column as one Arrow array of `kind` (zero-copy for Arrow parts; nulls for runs of None)."""
    if isinstance(column, ArrowStrings):
        return column.array.cast(kind) if column.array.type != kind else column.array
    if isinstance(column, Repeated) and all(v is None for v in column.values):
        return pa.nulls(len(column), kind)
    if isinstance(column, Chained):
        return pa.concat_arrays([to_arrow(p, kind) for p in column.parts]) if column.parts else pa.array([], kind)
    if isinstance(column, range):
        return pa.array(np.arange(column.start, column.stop, column.step), kind)
    return pa.array(list(column), kind)
