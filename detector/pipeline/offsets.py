"""At-least-once bookkeeping: which consumed offsets are safe to commit.

Each consumed message opens an entry holding one "processing" token plus one token per output it produced; the
entry closes when it has been processed (scored or dead-lettered) and every output is acknowledged by the broker.
A partition's committable position is its oldest open offset (or one past the last consumed when none is open),
so a commit never moves past a window whose outputs are not yet safe.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from detector.kafka.seams import TopicPartition


class OffsetTracker:
    def __init__(self) -> None:
        self._open: dict[TopicPartition, OrderedDict[int, list[int]]] = {}
        self._next: dict[TopicPartition, int] = {}
        self._count = 0

    @property
    def in_flight(self) -> int:
        """Messages consumed whose outputs are not all safe yet."""
        return self._count

    def begin(self, tp: TopicPartition, offset: int, timestamp_ms: int) -> None:
        entries = self._open.setdefault(tp, OrderedDict())
        if offset in entries:
            return  # re-delivered before it closed: it is already tracked
        entries[offset] = [1, timestamp_ms]  # [tokens, input timestamp]
        self._count += 1
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def begin_many(self, messages: Iterable[tuple[str, int, int, Any, Any, Any, int]]) -> None:
        """`begin` for every message of a poll (anything shaped like InputMessage)."""
        for topic, partition, offset, _key, _value, _headers, timestamp_ms in messages:
            self.begin((topic, partition), offset, timestamp_ms)

    def add_outputs(self, tp: TopicPartition, offset: int, n: int = 1) -> None:
        self._open[tp][offset][0] += n

    def settle(self, tp: TopicPartition, offset: int, windows: int, outputs: int) -> int | None:
        """`windows` windows of one message are processed and produced `outputs` records in all: their processing
        tokens become that many output tokens. Returns the input timestamp (ms) if the entry closed, else None."""
        if outputs != windows - 1:
            entries = self._open.get(tp)
            if entries is not None and offset in entries:
                entries[offset][0] += outputs - windows + 1
        return self.release(tp, offset)

    def release(self, tp: TopicPartition, offset: int) -> int | None:
        """Drop one token (processing done, or one output acknowledged); return the input timestamp (ms) if the
        entry closed, else None. Unknown entries (a revoked partition) are ignored."""
        entries = self._open.get(tp)
        if entries is None or offset not in entries:
            return None
        entry = entries[offset]
        entry[0] -= 1
        if entry[0] > 0:
            return None
        del entries[offset]
        self._count -= 1
        return entry[1]

    def is_open(self, tp: TopicPartition, offset: int) -> bool:
        entries = self._open.get(tp)
        return entries is not None and offset in entries

    def committable(self) -> dict[TopicPartition, int]:
        """The position to commit for every partition seen (the next offset a restart should read)."""
        out = {}
        for tp, nxt in self._next.items():
            entries = self._open.get(tp)
            out[tp] = next(iter(entries)) if entries else nxt
        return out

    def forget(self, partitions: set[TopicPartition]) -> int:
        """Drop revoked partitions; their open windows will be re-read by the new owner. Returns how many."""
        dropped = 0
        for tp in partitions:
            dropped += len(self._open.pop(tp, ()))
            self._next.pop(tp, None)
        self._count -= dropped
        return dropped
