from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from detector.ops.health import Health
from detector.ops.http_server import make_server, serve_in_background
from detector.ops.metrics import WorkerMetrics


class Clock:
    t = 100.0

    def __call__(self) -> float:
        return self.t


def _get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture
def served():
    registry, clock = CollectorRegistry(), Clock()
    metrics = WorkerMetrics(registry)
    health = Health(max_loop_age_s=30, clock=clock)
    server = make_server("127.0.0.1", 0, registry, health)
    serve_in_background(server)
    yield server.server_address[1], metrics, health, clock
    server.shutdown()
    server.server_close()


def test_metrics_endpoint_serves_the_registry(served) -> None:
    port, metrics, _, _ = served
    metrics.scored.inc(7)
    status, body = _get(port, "/metrics")
    assert status == 200 and "tsad_windows_scored_total 7.0" in body


def test_readiness_needs_model_broker_and_partitions(served) -> None:
    port, _, health, clock = served
    status, body = _get(port, "/readyz")
    assert status == 503 and "model not loaded" in body and "no partitions assigned" in body
    health.model_ready, health.broker_connected, health.assigned_partitions = True, True, 2
    assert _get(port, "/readyz") == (200, "ready\n")
    health.broker_connected = False
    assert _get(port, "/readyz")[0] == 503
    health.broker_connected = True
    health.loop_ran()
    clock.t += 11  # a loop stalled past ready_max_loop_age_s (10 s) is not ready, though still alive
    status, body = _get(port, "/readyz")
    assert status == 503 and "main loop stalled for 11 s" in body
    assert _get(port, "/healthz")[0] == 200
    health.loop_ran()
    health.output_wait_s = 16.0  # the loop turns, but no output has been acknowledged for 16 s
    status, body = _get(port, "/readyz")
    assert status == 503 and "no output acknowledged for 16 s" in body


def test_liveness_follows_the_main_loop(served) -> None:
    port, _, health, clock = served
    assert _get(port, "/healthz")[0] == 200  # starting
    health.loop_ran()
    clock.t += 29
    assert _get(port, "/healthz")[0] == 200
    clock.t += 2
    status, body = _get(port, "/healthz")
    assert status == 503 and "31 s ago" in body


def test_only_documented_paths_and_get(served) -> None:
    port = served[0]
    assert _get(port, "/")[0] == 404
    assert _get(port, "/metrics/../etc/passwd")[0] == 404
    assert _get(port, "/metrics", method="POST")[0] == 405
    assert _get(port, "/readyz", method="DELETE")[0] == 405
