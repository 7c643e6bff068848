"""Fault injection against the real broker and real worker processes (small counts here; benchmarks/faults.py
runs the larger version and prints the table for docs/reliability.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_scenarios import (
    FaultEnv,
    broker_outage,
    corrupt_bundle,
    kill9,
    outage_while_paused,
    output_unavailable,
    two_workers_one_killed,
)

pytestmark = pytest.mark.kafka


@pytest.fixture
def env(kafka, sample_bundle, tmp_path: Path):
    e = FaultEnv(kafka, sample_bundle, tmp_path, seed=7)
    yield e
    e.cleanup()


@pytest.fixture(params=["kafka-python", "confluent"])
def client_env(request, kafka, sample_bundle, tmp_path: Path):
    """The same scenario on each Kafka client backend."""
    e = FaultEnv(kafka, sample_bundle, tmp_path, seed=7, client=request.param)
    yield e
    e.cleanup()


def test_kill9_at_least_once_loses_nothing(env) -> None:
    r = kill9(env, kills=3, windows=1500)
    print("\n" + r.row())
    assert r.windows_in == 1500 and r.lost == 0


def test_kill9_exactly_once_loses_and_duplicates_nothing(env) -> None:
    r = kill9(env, kills=3, windows=1500, exactly_once=True)
    print("\n" + r.row())
    assert r.windows_in == 1500 and r.lost == 0 and r.duplicated == 0 and r.outputs == 1500


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_kill9_with_the_confluent_client(kafka, sample_bundle, tmp_path: Path, exactly_once: bool) -> None:
    env = FaultEnv(kafka, sample_bundle, tmp_path, seed=8, client="confluent")
    try:
        r = kill9(env, kills=3, windows=1500, exactly_once=exactly_once)
    finally:
        env.cleanup()
    print("\n" + r.row())
    assert r.windows_in == 1500 and r.lost == 0
    if exactly_once:
        assert r.duplicated == 0 and r.outputs == 1500


def test_broker_outage_worker_survives_and_loses_nothing(client_env) -> None:
    r = broker_outage(client_env, outage_s=11, windows=2000, rate=200)
    print("\n" + r.row())
    assert r.lost == 0 and r.windows_in > 0, r.notes
    # readiness follows the broker within a few status refreshes (0.5 s here), whatever the client is doing
    assert r.readiness_lag_s is not None and r.readiness_lag_s < 5.0, r.notes


def test_broker_outage_while_paused_resumes_and_loses_nothing(client_env) -> None:
    """Backpressure has paused the input when the broker goes away for longer than the group session: the
    partitions are lost and assigned again, and must be fetched again (librdkafka kept their pause for good)."""
    r = outage_while_paused(client_env, outage_s=11)  # well past the 6 s session: the loss is certain
    print("\n" + r.row())
    assert r.windows_in > 0 and r.lost == 0, r.notes
    if client_env.client == "confluent":  # librdkafka expires the session itself: the loss this test is about
        assert r.revocations, r.notes     # (kafka-python's member may survive it: seen both ways)


def test_two_workers_one_killed_loses_nothing(client_env) -> None:
    r = two_workers_one_killed(client_env, windows=2000, rate=300)
    print("\n" + r.row())
    assert r.windows_in == 2000 and r.lost == 0


def test_unavailable_output_pauses_input_and_loses_nothing(client_env) -> None:
    r = output_unavailable(client_env, outage_s=6, windows=2000, max_in_flight=256)
    print("\n" + r.row())
    assert r.windows_in == 2000 and r.lost == 0


def test_corrupted_bundle_refuses_to_start_and_commits_nothing(env) -> None:
    r = corrupt_bundle(env)
    assert r.outputs == 0


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_kill9_mid_incident_keeps_one_episode_and_its_close(kafka, sample_bundle, tmp_path: Path, client: str,
                                                           exactly_once: bool) -> None:
    from episode_faults import kill_mid_incident

    env = FaultEnv(kafka, sample_bundle, tmp_path, seed=21, client=client)
    try:
        r = kill_mid_incident(env, exactly_once, kills=2)
    finally:
        env.cleanup()
    print("\n" + r.row())
    assert r.episodes_for_incidents == r.incidents  # one episode per incident ...
    assert r.second_episodes == 0 and r.missing_closes == 0  # ... never two, and every close arrived
    if exactly_once:
        assert r.repeated_records == 0  # read_committed: exactly one open and one close per episode
