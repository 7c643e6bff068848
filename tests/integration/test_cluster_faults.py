"""A small version of benchmarks/cluster_faults.py: on a three-broker cluster, the broker leading every input and
output partition is killed (kill -9) or paused (SIGSTOP beyond the session timeouts) under load, with both clients
and both delivery modes; nothing may be lost, nothing duplicated under exactly-once, and the worker never exits.

About 8 minutes on a 2-core machine, so it runs only with TSAD_CLUSTER_FAULTS=1 (the default test run keeps the
single-broker fault tests, tests/integration/test_faults.py, and the cluster's own failover tests,
tests/integration/test_local_cluster.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_faults import ClusterEnv, kill_leaders, pause_leader, under_load

from sample_streams.kafka_cluster import LocalKafkaCluster
from sample_streams.local_kafka import KafkaLauncherError

pytestmark = [pytest.mark.kafka, pytest.mark.skipif(os.environ.get("TSAD_CLUSTER_FAULTS") != "1",
                                                    reason="about 8 minutes: set TSAD_CLUSTER_FAULTS=1")]
RATE = 50.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaCluster]:
    c = LocalKafkaCluster(brokers=3, work_dir=tmp_path_factory.mktemp("faults-cluster"))
    try:
        c.start()
    except KafkaLauncherError as exc:
        c.cleanup()
        pytest.fail(f"the local Kafka cluster could not start: {exc}")
    yield c
    c.stop()


@pytest.mark.parametrize("exactly_once", [False, True], ids=["alo", "eos"])
@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
@pytest.mark.parametrize("scenario", ["kill", "pause"])
def test_leader_faults_lose_nothing(cluster: LocalKafkaCluster, sample_bundle: Path, tmp_path: Path, scenario: str,
                                    client: str, exactly_once: bool) -> None:
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
