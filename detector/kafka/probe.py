"""A reachability check that never blocks its caller: the check runs on a helper thread, the caller reads the answer.

A check that has not answered within `deadline_s` counts as "not reachable" without waiting for it: librdkafka's
metadata request can outlive its own timeout by many seconds when the broker disappears under it, and readiness
must not say "reachable" all that time.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable


class ReachabilityProbe:
    def __init__(self, check: Callable[[], bool], deadline_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.check, self.deadline_s, self.clock = check, deadline_s, clock
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tsad-probe")
        self._pending: concurrent.futures.Future[bool] | None = None
        self._started = 0.0
        self._answer = True

    def reachable(self) -> bool:
        """The latest answer; starts the next check when none is running."""
        if self._pending is not None and self._pending.done():
            self._answer = self._pending.result()
            self._pending = None
        if self._pending is None:
            self._started = self.clock()
            self._pending = self._executor.submit(self.check)
        elif self.clock() - self._started > self.deadline_s:
            self._answer = False
        return self._answer

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
