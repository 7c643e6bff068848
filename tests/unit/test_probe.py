"""The reachability probe answers at once, from a helper thread's latest check, and gives up on a check that hangs."""

from __future__ import annotations

import threading
import time

from detector.kafka.probe import ReachabilityProbe


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_answers_come_from_the_latest_finished_check() -> None:
    answers = iter([True, False, True])
    probe = ReachabilityProbe(lambda: next(answers, True), deadline_s=2.0, clock=Clock())
    assert probe.reachable()  # nothing answered yet: assumed reachable (start-up)
    wait_until(lambda: probe._pending is not None and probe._pending.done())
    assert probe.reachable()  # first check: True; the second starts
    wait_until(lambda: probe._pending is not None and probe._pending.done())
    assert not probe.reachable()  # second check: False
    wait_until(lambda: probe._pending is not None and probe._pending.done())
    assert probe.reachable()
    probe.close()


def test_a_check_that_hangs_past_the_deadline_means_not_reachable() -> None:
    release = threading.Event()
    clock = Clock()
    probe = ReachabilityProbe(lambda: release.wait(10) and True, deadline_s=2.0, clock=clock)
    assert probe.reachable()
    clock.t = 1.5
    assert probe.reachable()  # still within the deadline: the last answer stands
    clock.t = 2.5
    assert not probe.reachable()  # unanswered for 2.5 s: not reachable, without waiting for it
    release.set()  # the check answers at last (True) and the next one starts
    wait_until(lambda: probe._pending is not None and probe._pending.done())
    assert probe.reachable()
    release.set()
    probe.close()
