"""free_port: under pytest-xdist each test process draws from its own range, never hands a port out twice and skips
ports that something already holds."""

from __future__ import annotations

import socket

import pytest

from sample_streams import ports as port_module
from sample_streams.ports import NoFreePort, free_port


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(port_module, "_HANDED_OUT", set())


def test_each_xdist_process_takes_distinct_ports_from_its_own_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    ports = [free_port() for _ in range(50)]
    first = port_module.FIRST_TEST_PORT + 3 * port_module.PORTS_PER_TEST_PROCESS
    assert all(first <= p < first + port_module.PORTS_PER_TEST_PROCESS for p in ports)
    assert len(set(ports)) == 50
    assert max(ports) < 32768  # below the kernel's ephemeral range


def test_a_port_already_held_is_skipped_and_an_exhausted_range_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held_port = held.getsockname()[1]
        monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
        monkeypatch.setattr(port_module, "FIRST_TEST_PORT", held_port)
        monkeypatch.setattr(port_module, "PORTS_PER_TEST_PROCESS", 2)
        # held_port is taken; held_port + 1 may be taken by something else on this machine, then nothing is free
        try:
            port = free_port()
        except NoFreePort:
            pytest.skip(f"port {held_port + 1} is in use here too")
        assert port == held_port + 1
        with pytest.raises(NoFreePort, match="no free port left"):
            free_port()  # the other one was handed out already


def test_without_xdist_no_port_is_handed_out_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == 200
