"""Every few seconds: is the broker reachable, how many partitions are ours, how far behind are we (lag)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from detector.kafka.seams import Source, TopicPartition
from detector.ops.health import Health
from detector.ops.metrics import WorkerMetrics


class ConsumerStatus:
    def __init__(self, source: Source, metrics: WorkerMetrics, health: Health, interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source, self.metrics, self.health = source, metrics, health
        self.interval_s = interval_s
        self.clock = clock
        self._last = -float("inf")

    def refresh(self, force: bool = False) -> None:
        """Read the source's status into health and metrics, at most once per interval unless forced."""
        now = self.clock()
        if not force and now - self._last < self.interval_s:
            return
        self._last = now
        self.health.broker_connected = self.source.connected()
        self.assigned(len(self.source.assignment()))
        self.metrics.ready.set(1 if self.health.ready()[0] else 0)
        for (topic, partition), lag in self.source.lag().items():
            self.metrics.lag.labels(topic=topic, partition=str(partition)).set(lag)

    def assigned(self, count: int) -> None:
        self.health.assigned_partitions = count
        self.metrics.assigned_partitions.set(count)

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Drop the lag series of partitions given up in a rebalance."""
        for topic, partition in partitions:
            with contextlib.suppress(KeyError):
                self.metrics.lag.remove(topic, str(partition))
