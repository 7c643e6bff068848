"""The local three-node KRaft cluster (replication, leader failover, paused nodes) and its SASL_SSL mode (SCRAM users,
TLS, ACLs), each started here in a temporary directory: one plaintext cluster, then one secured cluster."""

from __future__ import annotations

import os
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import read_topic, read_until
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError

from sample_streams.kafka_cluster import LocalKafkaCluster
from sample_streams.kafka_security import SaslSsl
from sample_streams.local_kafka import KafkaLauncherError

pytestmark = pytest.mark.kafka
REPLICATION = {"default.replication.factor": "3", "min.insync.replicas": "2", "offsets.topic.replication.factor": "3",
               "transaction.state.log.replication.factor": "3", "transaction.state.log.min.isr": "2"}


def _start(cluster: LocalKafkaCluster) -> LocalKafkaCluster:
    try:
        cluster.start()
    except KafkaLauncherError as exc:
        cluster.cleanup()
        if os.environ.get("TSAD_REQUIRE_KAFKA") == "1":
            pytest.fail(f"the local Kafka cluster is required here but could not start: {exc}")
        pytest.skip(f"no local Kafka cluster: {exc}")
    print(f"{len(cluster.nodes)}-node cluster{' (SASL_SSL)' if cluster.security else ''} started in "
          f"{cluster.start_seconds:.1f} s")
    return cluster


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _produce(bootstrap: str, topic: str, values: list[bytes], **config: object) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **config)
    try:
        for future in [producer.send(topic, v) for v in values]:
            future.get(timeout=90)
    finally:
        producer.close()


def _process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _log_offsets(cluster: LocalKafkaCluster) -> dict[int, int]:
    return {i: n.server_log.stat().st_size for i, n in cluster.nodes.items()}


def _new_log_text(cluster: LocalKafkaCluster, offsets: dict[int, int], settle: float = 1.0) -> str:
    """What the nodes logged since `offsets` (after `settle` s: failed authentications are logged after a delay)."""
    time.sleep(settle)
    text = []
    for i, n in cluster.nodes.items():
        with n.server_log.open("rb") as f:
            f.seek(offsets[i])
            text.append(f.read().decode(errors="replace"))
    return "".join(text)


@pytest.fixture(scope="class")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaCluster]:
    c = _start(LocalKafkaCluster(brokers=3, work_dir=tmp_path_factory.mktemp("cluster")))
    yield c
    c.stop()


class TestThreeNodes:
    @pytest.fixture(autouse=True)
    def _every_node_up(self, cluster: LocalKafkaCluster) -> None:
        """A fault test that failed half way (before its restart) must not leave the next test a node short."""
        if healed := cluster.heal(120):
            print(f"brought nodes {healed} back after the previous test")

    def test_three_nodes_with_replicated_defaults(self, cluster: LocalKafkaCluster) -> None:
        assert len(set(cluster.bootstrap.split(","))) == 3
        assert len({n.log_dir for n in cluster.nodes.values()}) == 3
        admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
        try:
            assert sorted(b["broker_id"] for b in admin.describe_cluster()["brokers"]) == [1, 2, 3]
            voters = admin.describe_metadata_quorum()["topics"][0]["partitions"][0]["current_voters"]
            assert sorted(v["replica_id"] for v in voters) == [1, 2, 3]
            topic = _topic("default-rf")
            admin.create_topics([NewTopic(topic, 2, -1)])  # -1: the broker's default.replication.factor
            configs = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "2")], config_filter="all")
        finally:
            admin.close()
        for p in range(2):
            assert len(cluster.wait_for_isr(topic, p, 3, timeout=30)) == 3
        assert all(len(s.replicas) == 3 for s in cluster.partitions(topic).values())
        broker = configs["broker"]["2"]
        assert {key: broker[key]["value"] for key in REPLICATION} == REPLICATION

    def test_acks_all_survives_kill_9_of_the_partition_leader(self, cluster: LocalKafkaCluster) -> None:
        topic = _topic("failover")
        cluster.create_topic(topic)
        old = cluster.leader(topic)
        producer = KafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all", linger_ms=5)
        try:
            for f in [producer.send(topic, f"a{i}".encode()) for i in range(200)]:
                f.get(timeout=30)
            began = time.monotonic()
            cluster.kill_node(old)
            during = [producer.send(topic, f"b{i}".encode()) for i in range(200)]  # in flight across the failover
            new = cluster.wait_for_leader(topic, exclude={old}, timeout=60)
            elected = time.monotonic() - began
            for f in during:
                f.get(timeout=90)
            print(f"kill -9 of leader {old}: node {new} leads after {elected:.1f} s; 200 acks=all sends done after "
                  f"{time.monotonic() - began:.1f} s")
        finally:
            producer.close()
        assert new != old
        # the fencing record reaches every broker's metadata cache asynchronously
        isr = cluster.wait_for_partition(topic, 0, lambda s: old not in s.isr, f"node {old} out of the ISR", 30).isr
        assert sorted(isr) == sorted({1, 2, 3} - {old})
        want = [f"a{i}".encode() for i in range(200)] + [f"b{i}".encode() for i in range(200)]
        assert [m.value for m in read_topic(cluster.live_bootstrap, topic, 400, timeout=30)] == want
        cluster.start_node(old)  # same ports and log directory: it catches up and rejoins the ISR
        assert sorted(cluster.wait_for_isr(topic, size=3, timeout=60)) == [1, 2, 3]

    def test_a_paused_node_loses_leadership_and_rejoins_when_resumed(self, cluster: LocalKafkaCluster) -> None:
        topic = _topic("pause")
        cluster.create_topic(topic)
        _produce(cluster.bootstrap, topic, [b"before"])
        victim = cluster.leader(topic)
        node = cluster.node(victim)
        assert node.process is not None
        cluster.pause_node(victim)
        try:
            assert node.paused and _process_state(node.process.pid) == "T"
            assert node.bootstrap not in cluster.live_bootstrap.split(",")
            new = cluster.wait_for_leader(topic, exclude={victim}, timeout=40)  # fenced after the session timeout
            _produce(cluster.live_bootstrap, topic, [b"during"])
        finally:
            cluster.resume_node(victim)
        assert not node.paused and _process_state(node.process.pid) in "RS"
        assert new != victim
        assert victim in cluster.wait_for_isr(topic, size=3, timeout=60)
        assert [m.value for m in read_topic(cluster.bootstrap, topic, 2, timeout=30)] == [b"before", b"during"]


    def test_controlled_restart_of_the_leader_keeps_its_data(self, cluster: LocalKafkaCluster) -> None:
        topic = _topic("restart")
        cluster.create_topic(topic)
        _produce(cluster.bootstrap, topic, [b"one", b"two"])
        old = cluster.leader(topic)
        began = time.monotonic()
        cluster.stop_node(old)  # controlled shutdown: leadership moves before the process exits
        assert not cluster.node(old).running and cluster.wait_for_leader(topic, exclude={old}, timeout=10) != old
        cluster.start_node(old)
        assert sorted(cluster.wait_for_isr(topic, size=3, timeout=60)) == [1, 2, 3]
        print(f"controlled restart of node {old} took {time.monotonic() - began:.1f} s")
        _produce(cluster.bootstrap, topic, [b"three"])
        assert [m.value for m in read_topic(cluster.bootstrap, topic, 3, timeout=30)] == [b"one", b"two", b"three"]


USERS = {"alice": "alice-pw-" + uuid.uuid4().hex[:6], "bob": "bob-pw-" + uuid.uuid4().hex[:6]}


@pytest.fixture(scope="class")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalKafkaCluster, str]]:
    """A SASL_SSL cluster and one topic: alice may write and read it (group 'readers'), bob may only read it."""
    c = _start(LocalKafkaCluster(brokers=3, work_dir=tmp_path_factory.mktemp("secure"),
                                 security=SaslSsl(users=dict(USERS))))
    topic = _topic("secured")
    c.create_topic(topic)
    c.create_topic("bob-out")
    c.grant("alice", read_topics=[topic], write_topics=[topic], read_groups=["readers"])
    c.grant("bob", read_topics=[topic], write_topics=["bob-out"])
    yield c, topic
    c.stop()


class TestSaslSsl:
    def test_kafka_python_round_trip_with_scram_and_the_ca(self, secure: tuple[LocalKafkaCluster, str]) -> None:
        cluster, topic = secure
        config = cluster.client_config("alice")
        assert config["ssl_cafile"].endswith("ca.pem") and config["sasl_mechanism"] == "SCRAM-SHA-512"
        values = [f"kp{i}".encode() for i in range(20)]
        _produce(cluster.bootstrap, topic, values, **config)
        got = read_until(cluster.bootstrap, topic, lambda out: len([m for m in out if m.value in values]) >= 20,
                         timeout=30, group_id="readers", **config)
        assert [m.value for m in got if m.value in values] == values

    def test_confluent_round_trip_with_scram_and_the_ca(self, secure: tuple[LocalKafkaCluster, str]) -> None:
        from confluent_kafka import Consumer, Producer

        cluster, topic = secure
        delivered: list[object] = []
        producer = Producer({**cluster.confluent_config("alice"), "acks": "all", "enable.idempotence": True})
        for i in range(20):
            producer.produce(topic, f"ck{i}".encode(), on_delivery=lambda err, _m: delivered.append(err))
        assert producer.flush(30) == 0 and delivered == [None] * 20
        consumer = Consumer({**cluster.confluent_config("alice"), "group.id": "readers",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe([topic])
        got: list[bytes] = []
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline and len([v for v in got if v.startswith(b"ck")]) < 20:
                msg = consumer.poll(1.0)
                if msg is not None:
                    assert msg.error() is None, msg.error()
                    got.append(msg.value() or b"")
        finally:
            consumer.close()
        assert [v for v in got if v.startswith(b"ck")] == [f"ck{i}".encode() for i in range(20)]

    def test_wrong_password_is_an_authentication_error(self, secure: tuple[LocalKafkaCluster, str]) -> None:
        from confluent_kafka import KafkaError, Producer

        cluster, _ = secure
        errors: list[KafkaError] = []
        producer = Producer({**cluster.confluent_config("alice", "wrong"), "error_cb": errors.append})
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(e.code() == KafkaError._AUTHENTICATION for e in errors):
            producer.poll(0.5)
        del producer  # destroys the client, which would otherwise retry in the background
        auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
        assert auth and "invalid credentials" in auth[0].str(), errors
        # kafka-python 3.0 retries until its bootstrap timeout; the brokers log why they refused it.
        logs = _log_offsets(cluster)
        with pytest.raises(KafkaTimeoutError):
            KafkaProducer(bootstrap_servers=cluster.bootstrap, bootstrap_timeout_ms=4000,
                          **cluster.client_config("alice", "wrong"))
        assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in _new_log_text(cluster, logs)

    def test_plaintext_clients_are_refused(self, secure: tuple[LocalKafkaCluster, str]) -> None:
        cluster, _ = secure
        host, port = cluster.nodes[1].bootstrap.split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:  # a plaintext ApiVersions v0 request
            body = struct.pack(">hhih", 18, 0, 1, 4) + b"test"
            s.sendall(struct.pack(">i", len(body)) + body)
            answer = s.recv(64)
        assert answer[:1] == b"\x15", answer  # a TLS alert record, then the broker closes: no Kafka response
        logs = _log_offsets(cluster)
        with pytest.raises(KafkaTimeoutError):
            KafkaProducer(bootstrap_servers=cluster.bootstrap, bootstrap_timeout_ms=3000)
        assert "SSL handshake failed" in _new_log_text(cluster, logs)

    def test_producing_without_a_write_acl_is_an_authorization_error(
            self, secure: tuple[LocalKafkaCluster, str]) -> None:
        from confluent_kafka import KafkaError, Producer

        cluster, topic = secure
        _produce(cluster.bootstrap, "bob-out", [b"allowed"], **cluster.client_config("bob"))
        with pytest.raises(TopicAuthorizationFailedError):
            _produce(cluster.bootstrap, topic, [b"refused"], **cluster.client_config("bob"))
        results: list[KafkaError | None] = []
        producer = Producer(cluster.confluent_config("bob"))
        producer.produce(topic, b"refused", on_delivery=lambda err, _m: results.append(err))
        producer.flush(30)
        assert len(results) == 1 and results[0] is not None
        assert results[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    def test_a_user_added_at_runtime_can_authenticate(self, secure: tuple[LocalKafkaCluster, str]) -> None:
        cluster, _ = secure
        cluster.add_user("carol", "carol-pw-1")
        cluster.grant("carol", write_topics=["carol-out"])
        cluster.create_topic("carol-out")
        _produce(cluster.bootstrap, "carol-out", [b"hi"], **cluster.client_config("carol"))
