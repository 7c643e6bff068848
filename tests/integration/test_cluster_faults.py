"""A small version of benchmarks/cluster_faults.py: on a three-broker cluster, the broker leading every input and
output partition is killed (kill -9) or paused (SIGSTOP beyond the session timeouts) under load, with both clients
and both delivery modes; nothing may be lost, nothing duplicated under exactly-once, and the worker never exits.

The default run (and CI) takes the hardest case, a leader kill -9 under exactly-once, with each client, and a
90-second chaos run (about 6 minutes in all); all eight kill/pause combinations take about 8 minutes and run with
TSAD_CLUSTER_FAULTS=1.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from chaos import Chaos
from cluster_faults import ClusterEnv, kill_leaders, pause_leader, under_load
from test_local_cluster import _start as start_or_skip

from sample_streams.kafka_cluster import LocalKafkaCluster

pytestmark = pytest.mark.kafka
RATE = 50.0
EVERY_FAULT = os.environ.get("TSAD_CLUSTER_FAULTS") == "1"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaCluster]:
    c = start_or_skip(LocalKafkaCluster(brokers=3, work_dir=tmp_path_factory.mktemp("faults-cluster")))
    yield c
    c.stop()


@pytest.mark.parametrize("exactly_once", [False, True], ids=["alo", "eos"])
@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
@pytest.mark.parametrize("scenario", ["kill", "pause"])
def test_leader_faults_lose_nothing(cluster: LocalKafkaCluster, sample_bundle: Path, tmp_path: Path, scenario: str,
                                    client: str, exactly_once: bool) -> None:
    if not EVERY_FAULT and (scenario, exactly_once) != ("kill", True):
        pytest.skip("the default run takes the leader kill under exactly-once; TSAD_CLUSTER_FAULTS=1 runs all eight")
    env = ClusterEnv(cluster, sample_bundle, tmp_path, client=client)
    fault = kill_leaders(1, RATE) if scenario == "kill" else pause_leader(12.0, RATE)
    try:
        result = under_load(env, f"leader {scenario}", fault, exactly_once, RATE)
    finally:
        env.cleanup()
    print(result.row())
    assert result.rec.lost == 0, result.row()
    assert result.exits == 0, result.row()
    if exactly_once:
        assert result.rec.duplicated == 0, result.row()


def test_a_short_chaos_run_loses_and_duplicates_nothing(cluster: LocalKafkaCluster, sample_bundle: Path,
                                                        tmp_path: Path) -> None:
    """benchmarks/chaos.py for 90 s (faults every 10 s, nodes and the output away 8 s), exactly-once with the
    confluent client: two workers, broker kills and pauses, a worker kill, the output refusing writes; reconciled by
    id. The 30-minute run is in docs/reliability.md."""
    args = argparse.Namespace(minutes=1.5, rate=RATE, interval_s=10.0, down_s=8.0, client="confluent",
                              exactly_once=True, seed=1)
    env = ClusterEnv(cluster, sample_bundle, tmp_path, client="confluent", seed=1)
    try:
        code = Chaos(env, args).run()  # prints the reconciliation; 0 = nothing lost or duplicated, no worker exit
    finally:
        env.cleanup()
        env.heal()
    assert code == 0
