"""The real worker (`python -m detector serve`) on a SASL_SSL broker (SCRAM-SHA-512, TLS with a throw-away CA,
StandardAuthorizer ACLs) with both clients: end to end with the minimal ACL set, a wrong password, a plaintext
client, and an output topic it may not write to."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_faults import ClusterEnv
from harness import TrackedProducer, WorkerProcess, committed_offsets, end_offsets, wait_for
from test_local_cluster import _start as start_or_skip

from sample_streams.generator import generate
from sample_streams.kafka_cluster import LocalKafkaCluster
from sample_streams.kafka_security import SaslSsl

pytestmark = pytest.mark.kafka
USER, PASSWORD = "tsad", f"tsad-pw-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaCluster]:
    """One SASL_SSL broker (the same security as the three-node tests in test_local_cluster.py, one node for CPU)."""
    cluster = LocalKafkaCluster(brokers=1, work_dir=tmp_path_factory.mktemp("secured"),
                                security=SaslSsl(users={USER: PASSWORD}))
    yield start_or_skip(cluster)
    cluster.stop()


def _env(cluster: LocalKafkaCluster, bundle: Path, tmp: Path, client: str) -> ClusterEnv:
    return ClusterEnv(cluster, bundle, tmp, client=client, user=USER)


def _grant(cluster: LocalKafkaCluster, topics: dict[str, str | None], group: str, *, write_scores: bool = True) -> None:
    """The worker's minimal ACL set (docs/reliability.md): READ on the input, its group and the episode-state topic;
    WRITE on every output and the state topic; its transactional id (`<group>-<client_id>`)."""
    state = str(topics["episode_state"])  # ClusterEnv.topics() names and creates it
    outputs = [str(topics["events"]), str(topics["dead_letter"]), state]
    cluster.grant(USER, read_topics=[str(topics["input"]), state], read_groups=[group],
                  write_topics=outputs + ([str(topics["scores"])] if write_scores else []),
                  transactional_ids=[f"{group}-{group}"])


def _feed(cluster: LocalKafkaCluster, topic: str, n: int, prefix: str) -> set[str]:
    producer = TrackedProducer(cluster.bootstrap, **cluster.client_config())  # as the admin
    try:
        producer.send_all(topic, generate(n, kind="mixed", sources=4, seed=1, prefix=prefix))
    finally:
        producer.close()
    assert not producer.failed
    return producer.acked


def _committed(cluster: LocalKafkaCluster, group: str, topic: str) -> dict[int, int | None]:
    return committed_offsets(cluster.bootstrap, group, topic, **cluster.client_config())


@pytest.mark.parametrize(("client", "exactly_once"), [("kafka-python", False), ("confluent", True)],
                         ids=["kafka-python-alo", "confluent-eos"])
def test_the_worker_runs_end_to_end_with_the_minimal_acls(secured: LocalKafkaCluster, sample_bundle: Path,
                                                          tmp_path: Path, client: str, exactly_once: bool) -> None:
    env = _env(secured, sample_bundle, tmp_path, client)
    topics, group = env.topics(), f"g{uuid.uuid4().hex[:6]}"
    _grant(secured, topics, group)
    w = env.launch(topics, group, group, exactly_once)
    try:
        w.wait_ready(90)
        expected = _feed(secured, str(topics["input"]), 300, group)
        rec = env.reconcile("e2e", exactly_once, topics, expected)
        assert (rec.windows_in, rec.lost, rec.duplicated) == (300, 0, 0), rec
        ends = end_offsets(secured.bootstrap, str(topics["input"]), **secured.client_config())
        wait_for(lambda: _committed(secured, group, str(topics["input"])) == ends, 30, "every offset committed")
        assert w.terminate() == 0
    finally:
        env.cleanup()
    log = w.log()
    assert "kafka start-up check passed: SASL user 'tsad'" in log
    assert PASSWORD not in log


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_a_wrong_password_stops_start_up_with_exit_2_naming_it(secured: LocalKafkaCluster, sample_bundle: Path,
                                                               tmp_path: Path, client: str) -> None:
    env = _env(secured, sample_bundle, tmp_path, client)
    topics, group = env.topics(), f"g{uuid.uuid4().hex[:6]}"
    _grant(secured, topics, group)
    wrong = f"not-{PASSWORD}"
    w = env.launch(topics, group, group, password=wrong)
    assert w.proc is not None and w.proc.wait(60) == 2
    log = w.log()
    assert "kafka start-up check failed: the brokers refused the login of SASL user 'tsad'" in log, log[-2000:]
    assert "invalid credentials" in log
    assert wrong not in log and PASSWORD not in log
    assert set(_committed(secured, group, str(topics["input"])).values()) == {None}


def test_a_plaintext_worker_is_refused(secured: LocalKafkaCluster, sample_bundle: Path, tmp_path: Path) -> None:
    w = WorkerProcess(tmp_path, secured.bootstrap, sample_bundle, {"input": "in", "events": "ev"}, "plain",
                      "plain").start()
    assert w.proc is not None and w.proc.wait(60) == 2
    assert "the brokers hang up on an anonymous PLAINTEXT client" in w.log(), w.log()[-2000:]


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_an_output_topic_without_write_is_named_and_its_windows_stay_uncommitted(
        secured: LocalKafkaCluster, sample_bundle: Path, tmp_path: Path, client: str) -> None:
    env = _env(secured, sample_bundle, tmp_path, client)
    topics, group = env.topics(), f"g{uuid.uuid4().hex[:6]}"
    scores, input_topic = str(topics["scores"]), str(topics["input"])
    _grant(secured, topics, group, write_scores=False)
    w = env.launch(topics, group, group)
    try:
        w.wait_ready(90)
        assert f"is not authorised to write to topic '{scores}'" in w.log()  # the start-up check's warning
        expected = _feed(secured, input_topic, 100, group)
        wait_for(lambda: w.metric("tsad_publish_failures_total") >= 20, 60, "refused score records")
        time.sleep(2.0)  # several commit intervals
        assert w.alive
        assert set(_committed(secured, group, input_topic).values()) <= {None, 0}  # no window's offset committed
        assert f"not authorised to write to topic '{scores}'" in w.log().split("start-up check passed")[1]
        secured.grant(USER, write_topics=[scores])  # granted while it runs: everything is published and committed
        rec = env.reconcile("write granted", False, topics, expected)
        assert (rec.lost, rec.windows_in) == (0, 100), rec
        ends = end_offsets(secured.bootstrap, input_topic, **secured.client_config())
        wait_for(lambda: _committed(secured, group, input_topic) == ends, 60, "every offset committed")
    finally:
        env.cleanup()
