"""Backpressure: pause every assigned partition while too many windows are in flight (consumed, outputs not yet
safe), resume once half of them have drained. Nothing is ever queued without bound: a paused partition is simply
not fetched.

The paused state changes only after the client accepted the call, so a pause or resume that fails (BrokerError)
is tried again at the next loop turn; partitions assigned while paused are paused too. Partitions that another
stage holds paused (`held`: the episode state of newly assigned partitions not read yet) stay paused on release.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from detector.kafka.seams import Source, TopicPartition
from detector.ops.metrics import WorkerMetrics

log = logging.getLogger("tsad.worker")


class Backpressure:
    def __init__(self, source: Source, limit: int, metrics: WorkerMetrics,
                 held: Callable[[], set[TopicPartition]] = set) -> None:
        self.source, self.limit, self.metrics, self.held = source, limit, metrics, held
        self.paused: set[TopicPartition] = set()
        self.active = False

    def update(self, in_flight: int) -> None:
        self.metrics.in_flight.set(in_flight)
        if not self.active and in_flight >= self.limit:
            self._pause(self.source.assignment())
            self.active = True
            log.info("backpressure: %d windows in flight, paused %d partitions", in_flight, len(self.paused))
        elif self.active and in_flight <= self.limit // 2:
            self.source.resume(self.source.assignment() - self.held())
            self.active = False
            self.paused = set()
            self.metrics.paused_partitions.set(0)
            log.info("backpressure released: %d windows in flight", in_flight)
        elif self.active:
            missed = self.source.assignment() - self.paused  # e.g. a pause in a rebalance callback that failed
            if missed:
                self._pause(missed)

    def assigned(self, partitions: set[TopicPartition]) -> None:
        """Partitions just assigned start paused while backpressure is on."""
        if self.active and partitions:
            self._pause(partitions)

    def _pause(self, partitions: set[TopicPartition]) -> None:
        self.source.pause(partitions)
        self.paused |= partitions
        self.metrics.paused_partitions.set(len(self.paused))

    def revoked(self, partitions: set[TopicPartition]) -> None:
        self.paused -= partitions
        if self.active:
            self.metrics.paused_partitions.set(len(self.paused))
