"""Replay a stream of windows into a Kafka topic at a steady rate (or as fast as possible), keyed by source."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from detector.wire.batch import encode_batch
from detector.wire.windows import encode_f32, encode_json
from sample_streams.generator import WindowRecord


class Producer(Protocol):
    def send(self, topic: str, value: bytes, key: bytes | None = None, headers: Any = None) -> Any: ...

    def flush(self, timeout: float | None = None) -> None: ...


@dataclass
class ReplayStats:
    sent: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def encode(record: WindowRecord, fmt: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The message value and headers for one record in `fmt` ('json' or 'f32')."""
    if fmt == "json":
        return encode_json(record.values, id=record.id, source=record.source, ts=record.ts, label=record.label,
                           decimals=None, channels=record.channels), []
    if fmt == "f32":
        headers = [("tsad-id", record.id.encode()), ("tsad-ts", repr(record.ts).encode()),
                   ("tsad-label", str(record.label).encode())]
        return encode_f32(record.values), headers
    raise ValueError(f"unknown format {fmt!r}; choose json, f32 or batch")


def messages(records: Iterable[WindowRecord], fmt: str, batch_size: int = 500
             ) -> Iterator[tuple[bytes, bytes | None, list[tuple[str, bytes]], int]]:
    """(value, key, headers, windows) per Kafka message: one window each, or with fmt 'batch' up to `batch_size`
    windows of one source per message (one source keeps one key, hence one partition)."""
    if fmt != "batch":
        for record in records:
            value, headers = encode(record, fmt)
            yield value, record.source.encode() or None, headers, 1
        return
    pending: dict[str, list[WindowRecord]] = {}
    for record in records:
        group = pending.setdefault(record.source, [])
        group.append(record)
        if len(group) >= batch_size:
            yield _batch(pending.pop(record.source))
    for group in pending.values():
        yield _batch(group)


def _batch(group: list[WindowRecord]) -> tuple[bytes, bytes | None, list[tuple[str, bytes]], int]:
    value = encode_batch(np.asarray([r.values for r in group], np.float32), [r.id for r in group],
                         [r.source for r in group], [r.ts for r in group])
    return value, group[0].source.encode() or None, [], len(group)


def replay(records: Iterable[WindowRecord], producer: Producer, topic: str, fmt: str = "json",
           rate: float = 0.0, limit: int | None = None, progress: Callable[[int, float], None] | None = None,
           clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
           batch_size: int = 500) -> ReplayStats:
    """Send records; with `rate` > 0 (windows per second), window i leaves at start + i / rate (no bursts after a
    stall beyond one). With fmt 'batch', `batch_size` windows of a source travel in one message."""
    start = clock()
    last_report = start
    sent = 0
    for value, key, headers, windows in messages(records, fmt, batch_size):
        if limit is not None and sent >= limit:
            break
        if rate > 0:
            due = start + sent / rate
            now = clock()
            if due > now:
                sleep(due - now)
        producer.send(topic, value=value, key=key, headers=headers or None)
        sent += windows
        now = clock()
        if progress is not None and now - last_report >= 1.0:
            progress(sent, now - start)
            last_report = now
    producer.flush()
    return ReplayStats(sent, clock() - start)


def print_progress(sent: int, elapsed: float) -> None:
    print(f"\rreplayed {sent} windows in {elapsed:.0f} s ({sent / max(elapsed, 1e-9):.0f}/s)", end="",
          file=sys.stderr, flush=True)
