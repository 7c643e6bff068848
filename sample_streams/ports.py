"""Free TCP ports for the local brokers, workers and Prometheus that the demo, tests and benchmarks start."""

from __future__ import annotations

import os
import random
import socket


class NoFreePort(RuntimeError):
    """Every port of this test process's range is taken."""


_HANDED_OUT: set[int] = set()
PORTS_PER_TEST_PROCESS = 1000
FIRST_TEST_PORT = 20_000  # below Linux's ephemeral range (32768-60999), where outgoing connections take theirs


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port free now and not handed out before by this process (a stopped broker keeps its ports).

    Under pytest-xdist (`PYTEST_XDIST_WORKER=gwN`, inherited by the processes a test starts) each test process takes
    ports from its own range below the ephemeral range: a port chosen here is bound by a broker or worker seconds
    later, and in that gap another test process, or an outgoing connection, must not be given the same one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        first = FIRST_TEST_PORT + int(worker[2:]) * PORTS_PER_TEST_PROCESS
        candidates = [p for p in range(first, first + PORTS_PER_TEST_PROCESS) if p not in _HANDED_OUT]
        random.shuffle(candidates)  # processes a test starts (the demo) draw from the same range
        for port in candidates:
            if _bindable(port):
                _HANDED_OUT.add(port)
                return port
        raise NoFreePort(f"no free port left in {first}-{first + PORTS_PER_TEST_PROCESS - 1} ({worker})")
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
