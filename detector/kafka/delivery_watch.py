"""A watch on a producer's delivery reports, for a producer that holds records and reports nothing.

A producer must report every record it accepts, delivered or failed, within its delivery timeout. kafka-python
3.0.12 was seen not to: after a broker restart its producer held 1,496 records for over 100 s with neither a
delivery nor a failure (delivery_timeout_ms 30 s), so their inputs could never commit. The sink routes every
report through this watch; when a record has waited longer than the client's own timeouts allow (counted from its
send, so other records flowing do not hide it), the at-least-once sink replaces the producer and fails what the
old one held (`fail_all`), and the loop resends those records through the new one; the exactly-once sink fails
them too, which aborts the transaction, and the transaction bracket replaces the producer. A record the old
producer delivers late is then written twice, which at-least-once allows; its late report is dropped here, so no
record is reported twice.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from detector.kafka.seams import DoneCallback, OutputRecord


class DeliveryWatch:
    """Records sent and not yet reported, and how long the producer has been silent about them (thread-safe:
    reports arrive on the client's I/O thread)."""

    def __init__(self, silence_limit_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.silence_limit_s = silence_limit_s
        self.clock = clock
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[OutputRecord, DoneCallback]] = {}
        # (sent at, token) in send order, the loop's thread only; reported tokens are dropped from the front lazily
        self._order: deque[tuple[float, int]] = deque()
        self._next = 0
        self._quiet_until = 0.0

    def sent(self, record: OutputRecord, on_done: DoneCallback) -> int:
        """Register a record before it is handed to the producer; returns the token its report must carry."""
        with self._lock:
            token = self._next
            self._next += 1
            self._waiting[token] = (record, on_done)
        self._order.append((self.clock(), token))
        return token

    def report(self, token: int, error: Exception | None) -> None:
        """The producer's report for one record; a report for a record no longer waiting is dropped."""
        with self._lock:
            entry = self._waiting.pop(token, None)
        if entry is not None:
            entry[1](entry[0], error)

    def is_waiting(self, token: int) -> bool:
        return token in self._waiting

    def forget(self, token: int) -> None:
        """Drop one record without a report (its send raised to the caller)."""
        with self._lock:
            self._waiting.pop(token, None)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def silent(self) -> bool:
        """The oldest waiting record has waited longer than `silence_limit_s` with no report."""
        order, waiting = self._order, self._waiting
        while order and order[0][1] not in waiting:
            order.popleft()
        now = self.clock()
        return bool(order) and now >= self._quiet_until and now - order[0][0] > self.silence_limit_s

    def snooze(self) -> None:
        """Say nothing for another limit (after a replacement that could not be made: try again then)."""
        self._quiet_until = self.clock() + self.silence_limit_s

    def fail_all(self, error: Exception) -> int:
        """Report every waiting record failed with `error`; their producer's later reports are dropped."""
        with self._lock:
            entries = list(self._waiting.values())
            self._waiting.clear()
        self._order.clear()
        for record, on_done in entries:
            on_done(record, error)
        return len(entries)

    def forget_all(self) -> None:
        """Drop every waiting record without a report (their transaction was abandoned: nobody waits for them)."""
        with self._lock:
            self._waiting.clear()
        self._order.clear()
