"""Liveness and readiness, as the HTTP endpoints report them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Health:
    max_loop_age_s: float = 30.0
    clock: Callable[[], float] = field(default=time.monotonic)
    # Not ready when the loop has stalled this long (e.g. blocked on a broker that is away), well before liveness
    # gives up on it.
    ready_max_loop_age_s: float = 10.0
    # Not ready when outputs have waited this long without one acknowledgement: the loop turns, but nothing it
    # scores becomes safe (the output side lost its partition leaders, its topic, or its transaction coordinator).
    ready_max_output_wait_s: float = 15.0
    output_wait_s: float = 0.0
    model_ready: bool = False
    broker_connected: bool = False
    assigned_partitions: int = 0
    stopping: bool = False
    last_loop: float | None = None

    def loop_ran(self) -> None:
        self.last_loop = self.clock()

    def live(self) -> tuple[bool, str]:
        """Alive while the main loop keeps turning (or before it first ran, during start-up)."""
        if self.last_loop is None:
            return True, "starting"
        age = self.clock() - self.last_loop
        if age > self.max_loop_age_s:
            return False, f"main loop last ran {age:.0f} s ago (limit {self.max_loop_age_s:.0f} s)"
        return True, f"main loop ran {age:.1f} s ago"

    def ready(self) -> tuple[bool, str]:
        problems = []
        if not self.model_ready:
            problems.append("model not loaded and warmed")
        if not self.broker_connected:
            problems.append("broker not reachable")
        if self.assigned_partitions == 0:
            problems.append("no partitions assigned")
        if self.stopping:
            problems.append("shutting down")
        if self.last_loop is not None and self.clock() - self.last_loop > self.ready_max_loop_age_s:
            problems.append(f"main loop stalled for {self.clock() - self.last_loop:.0f} s")
        if self.output_wait_s > self.ready_max_output_wait_s:
            problems.append(f"no output acknowledged for {self.output_wait_s:.0f} s")
        return (not problems, "; ".join(problems) or "ready")
