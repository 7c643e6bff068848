"""Delivery of output records: send, collect the broker's acknowledgements, keep failed sends for a retry.

Acknowledgements arrive on the client's I/O thread (kafka-python) or from `Sink.run_delivery_callbacks` on the
loop's own thread (librdkafka); either way they are queued and handled on the loop's thread, where all bookkeeping
lives. What a failed send leads to is the commit strategy's decision (`resend_due` for at-least-once; an aborted
transaction for exactly-once). Records of an abandoned epoch (an aborted transaction) are ignored when their late
callbacks arrive.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from detector.kafka.seams import OutputRecord, Sink
from detector.ops.metrics import Latencies, WorkerMetrics
from detector.pipeline.error_policy import ErrorPolicy
from detector.pipeline.offsets import OffsetTracker

RETRY_BACKOFF_S = 0.5
KINDS = ("event", "score", "dead_letter", "episode", "episode_state", "shadow", "model")


class Delivery:
    def __init__(self, sink: Sink, tracker: OffsetTracker, policy: ErrorPolicy, metrics: WorkerMetrics,
                 latencies: Latencies, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.sink, self.tracker, self.policy, self.latencies = sink, tracker, policy, latencies
        self.clock, self.wall = clock, wall
        # acknowledgements, appended from any thread (deque appends and pops are atomic)
        self._acks: deque[tuple[OutputRecord, Exception | None, float]] = deque()
        self._failed: deque[tuple[float, OutputRecord]] = deque()  # (when it may be resent, record)
        self._published = {kind: metrics.published.labels(kind=kind) for kind in KINDS}
        self.epoch = 0
        self.sent = 0  # every send, ever (a commit strategy compares it to see whether anything was sent since)
        self.outstanding = 0  # sent in this epoch, neither acknowledged nor failed yet
        self._progress = clock()  # the last acknowledgement, or when records began to wait for one

    @property
    def has_failed(self) -> bool:
        """A send of this epoch failed and was not resent yet."""
        return bool(self._failed)

    def emit(self, record: OutputRecord) -> None:
        """Send a record its input did not count on when it was processed (a dead letter)."""
        self.tracker.add_outputs((record.ref.topic, record.ref.partition), record.ref.offset)
        self.send(record)

    def stalled_for(self) -> float:
        """Seconds that records have been waiting without any acknowledgement arriving (0 when none wait)."""
        return 0.0 if not (self.outstanding or self._failed) else self.clock() - self._progress

    def send(self, record: OutputRecord) -> None:
        if not (self.outstanding or self._failed):
            self._progress = self.clock()
        record.attempts += 1
        record.epoch = self.epoch
        self.sent += 1
        self.outstanding += 1
        self.sink.send(record, self._on_done)

    def _on_done(self, record: OutputRecord, error: Exception | None) -> None:  # any thread
        self._acks.append((record, error, self.wall()))

    def collect(self) -> None:
        """Handle every acknowledgement that has arrived: release the inputs whose outputs are all safe."""
        self.sink.run_delivery_callbacks()
        acks = self._acks
        if not acks:
            return
        published = dict.fromkeys(KINDS, 0)
        while acks:
            record, error, at = acks.popleft()
            if record.epoch != self.epoch:
                continue  # belongs to an aborted transaction: its window is being re-read
            self.outstanding -= 1
            if error is not None:
                self.policy.publish_failed(record, error)
                self._failed.append((self.clock() + RETRY_BACKOFF_S, record))
                continue
            published[record.kind] += 1
            self._progress = self.clock()
            ref = record.ref
            self.latencies.closed(at, self.tracker.release((ref.topic, ref.partition), ref.offset))
        for kind, n in published.items():
            if n:
                self._published[kind].inc(n)
        self.latencies.observe()

    def resend_due(self) -> None:
        """Send again the failed records whose backoff has passed and whose input is still ours."""
        now = self.clock()
        for _ in range(len(self._failed)):
            due, record = self._failed[0]
            if due > now:
                break
            self._failed.popleft()
            if self.tracker.is_open((record.ref.topic, record.ref.partition), record.ref.offset):
                self.send(record)

    def flush(self, timeout_s: float) -> None:
        """Wait (at most `timeout_s`) for the client to deliver what it holds, then collect the acknowledgements."""
        self.sink.flush(timeout_s)
        self.collect()

    def abandon(self) -> None:
        """Forget everything sent so far (an aborted transaction): late callbacks of this epoch are ignored."""
        self.epoch += 1
        self.outstanding = 0
        self._failed.clear()
