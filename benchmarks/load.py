"""Load and observation for long fault runs (benchmarks/cluster_faults.py, benchmarks/chaos.py): a feeder that
produces at a steady rate until stopped, and a monitor that samples the workers' liveness, readiness and outputs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from harness import TrackedProducer, WorkerProcess, wait_for

from sample_streams.generator import WindowRecord


class SteadyFeeder(TrackedProducer):
    """Generated windows at a steady rate from a background thread until `stop()`: load that outlasts the faults."""

    def __init__(self, bootstrap: str, topic: str, rate: float, prefix: str, seed: int = 0, **options: Any) -> None:
        super().__init__(bootstrap, **options)
        self.topic, self.rate, self.prefix, self.seed = topic, rate, prefix, seed
        self._stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _records(self) -> Iterable[WindowRecord]:
        from sample_streams.generator import generate

        for record in generate(999_999, kind="mixed", sources=16, seed=self.seed, prefix=self.prefix):
            if self._stop.is_set():
                return
            self.sent += 1
            yield record

    def _run(self) -> None:
        self.send_all(self.topic, self._records(), self.rate)

    def start(self) -> SteadyFeeder:
        self.thread.start()
        return self

    def stop(self, timeout: float = 240.0) -> None:
        """Stop sending, wait until every send is acknowledged or has failed, close the producer."""
        self._stop.set()
        self.thread.join(timeout)
        self.close()


class Monitor:
    """Samples the workers every `interval_s` from a thread: alive, /readyz, and their acknowledged score records.

    `workers` may be changed while it runs (a worker replaced after a deliberate kill); a worker that dies while in
    the list counts as an unexpected exit."""

    def __init__(self, workers: list[WorkerProcess], interval_s: float = 0.5) -> None:
        self.workers, self.interval_s = workers, interval_s
        self.samples: list[tuple[float, bool, float]] = []  # (time, every worker ready, score records published)
        self.exits: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            current = list(self.workers)
            for w in current:
                if not w.alive and w.name not in self.exits:
                    self.exits.append(w.name)
            ready = all(w.get("/readyz")[0] == 200 for w in current)
            published = sum(w.metric("tsad_records_published_total", kind="score") for w in current)
            self.samples.append((time.monotonic(), ready, published))

    def start(self) -> Monitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def published(self) -> float:
        return self.samples[-1][2] if self.samples else 0.0

    def wait_published(self, more: float, timeout: float) -> float:
        """Wait until `more` score records beyond the current count are acknowledged; returns the seconds waited."""
        began, target = time.monotonic(), self.published() + more
        wait_for(lambda: self.published() >= target, timeout, f"{more:.0f} more outputs")
        return time.monotonic() - began

    def window(self, t0: float, t1: float | None = None) -> list[tuple[float, bool, float]]:
        return [s for s in self.samples if s[0] >= t0 and (t1 is None or s[0] <= t1)]

    def ready_share(self, t0: float, t1: float | None = None) -> float:
        part = self.window(t0, t1)
        return sum(s[1] for s in part) / len(part) if part else 0.0

    def longest(self, t0: float, t1: float | None = None, *, not_ready: bool = False) -> float:
        """The longest stretch without new outputs (or, with `not_ready`, of /readyz failing)."""
        longest, since, last = 0.0, None, None
        for t, ready, published in self.window(t0, t1):
            stalled = (not ready) if not_ready else (last is not None and published <= last)
            if stalled:
                since = t if since is None else since
                longest = max(longest, t - since)
            else:
                since = None
            last = published
        return longest
