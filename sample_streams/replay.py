"""Replay a stream of windows into a Kafka topic at a steady rate (or as fast as possible), keyed by source."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

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
    raise ValueError(f"unknown format {fmt!r}; choose json or f32")


def replay(records: Iterable[WindowRecord], producer: Producer, topic: str, fmt: str = "json",
           rate: float = 0.0, limit: int | None = None, progress: Callable[[int, float], None] | None = None,
           clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> ReplayStats:
    """Send records; with `rate` > 0, message i leaves at start + i / rate (no bursts after a stall beyond one)."""
    start = clock()
    last_report = start
    sent = 0
    for record in records:
        if limit is not None and sent >= limit:
            break
        if rate > 0:
            due = start + sent / rate
            now = clock()
            if due > now:
                sleep(due - now)
        value, headers = encode(record, fmt)
        producer.send(topic, value=value, key=record.source.encode() or None, headers=headers or None)
        sent += 1
        now = clock()
        if progress is not None and now - last_report >= 1.0:
            progress(sent, now - start)
            last_report = now
    producer.flush()
    return ReplayStats(sent, clock() - start)


def print_progress(sent: int, elapsed: float) -> None:
    print(f"\rreplayed {sent} windows in {elapsed:.0f} s ({sent / max(elapsed, 1e-9):.0f}/s)", end="",
          file=sys.stderr, flush=True)
