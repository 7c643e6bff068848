"""The one place that decides what happens to bad input and failed I/O, and logs it as topic[partition]@offset.

Bad input is never fatal: it becomes a dead-letter record carrying the original bytes and headers plus the reason.
A failed output send is retried (at-least-once) or aborts its transaction (exactly-once); either way the
input offset stays uncommitted until its outputs are safe. Log lines are rate
limited so a poison flood cannot drown the logs; counts are always exact in the metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from detector.kafka.seams import InputMessage, OutputRecord
from detector.ops.metrics import WorkerMetrics
from detector.wire.invalid import InvalidWindow

log = logging.getLogger("tsad.errors")


class ErrorPolicy:
    def __init__(self, dead_letter_topic: str, metrics: WorkerMetrics, clock: Callable[[], float] = time.monotonic,
                 max_logs_per_s: float = 5.0) -> None:
        self.dead_letter_topic = dead_letter_topic
        self.metrics = metrics
        self.clock = clock
        self.max_logs_per_s = max_logs_per_s
        self._tokens = max_logs_per_s
        self._last = clock()
        self._suppressed = 0

    def _log(self, level: int, text: str, *args: object) -> None:
        now = self.clock()
        self._tokens = min(self.max_logs_per_s, self._tokens + (now - self._last) * self.max_logs_per_s)
        self._last = now
        if self._tokens < 1:
            self._suppressed += 1
            return
        self._tokens -= 1
        if self._suppressed:
            text += f" ({self._suppressed} similar lines suppressed)"
            self._suppressed = 0
        log.log(level, text, *args)

    def invalid_input(self, message: InputMessage, error: InvalidWindow, row: int = -1,
                      value: bytes | None = None) -> OutputRecord:
        """The dead letter of a refused message — or of one refused `row` of a batched message, whose `value` is
        then that row alone."""
        self.metrics.invalid.labels(reason=error.reason).inc()
        where = f" row {row}" if row >= 0 else ""
        self._log(logging.WARNING, "%s[%d]@%d%s: invalid window (%s): %s", message.topic, message.partition,
                  message.offset, where, error.reason, error.detail)
        headers = [
            *message.headers,
            ("tsad-error-reason", error.reason.encode()),
            ("tsad-error-detail", error.detail[:500].encode()),
            ("tsad-source-topic", message.topic.encode()),
            ("tsad-source-partition", str(message.partition).encode()),
            ("tsad-source-offset", str(message.offset).encode()),
            *([("tsad-source-row", str(row).encode())] if row >= 0 else []),
        ]
        return OutputRecord("dead_letter", self.dead_letter_topic, message.key,
                            value if value is not None else message.value or b"", headers, message)

    def publish_failed(self, record: OutputRecord, error: Exception) -> None:
        self.metrics.publish_failures.labels(kind=record.kind).inc()
        ref = record.ref
        self._log(logging.WARNING, "%s[%d]@%d: %s send to %s failed (attempt %d): %s", ref.topic,
                  ref.partition, ref.offset, record.kind, record.topic, record.attempts, error)

    def commit_failed(self, error: Exception) -> None:
        self.metrics.commit_failures.inc()
        self._log(logging.WARNING, "offset commit failed, will retry: %s", error)

    def broker_failed(self, error: Exception) -> None:
        """A client or broker failure that interrupted a loop turn; the loop waits a moment and carries on."""
        self._log(logging.WARNING, "kafka error in the main loop, retrying: %s", error)
