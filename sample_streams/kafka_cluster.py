"""A multi-node Apache Kafka cluster (KRaft, every node broker+controller) on 127.0.0.1, from the same jars as
`LocalKafka`, with per-node fault injection (stop, kill -9, restart, pause, resume) for reliability tests.

    with LocalKafkaCluster(brokers=3) as cluster:       # free ports, one log directory per node
        cluster.create_topic("in", partitions=2)        # replication factor 3, min.insync.replicas 2
        leader = cluster.leader("in", 0)
        cluster.kill_node(leader)                       # SIGKILL; a follower takes over
        cluster.wait_for_leader("in", 0, exclude={leader})
        cluster.start_node(leader)                      # same ports and log directory

With `security=SaslSsl(...)` (sample_streams/kafka_security.py) every listener is SASL_SSL and ACLs are enforced.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from sample_streams.cluster_metadata import ClusterMetadataMixin
from sample_streams.kafka_security import SaslSsl, SecuredClusterMixin
from sample_streams.local_kafka import (
    KAFKA_VERSION,
    KafkaLauncherError,
    LocalKafka,
    _cluster_id,
    ensure_jars,
    java_major_version,
)

T = TypeVar("T")


class KafkaNode(LocalKafka):
    """One node of a `LocalKafkaCluster`: the `LocalKafka` process control with the cluster's configuration."""

    def __init__(self, cluster: LocalKafkaCluster, node_id: int, work_dir: Path) -> None:
        super().__init__(work_dir=work_dir, cache_dir=cluster.cache_dir, version=cluster.version, heap=cluster.heap)
        self.node_id = node_id
        self.cluster = cluster

    def _properties(self) -> dict[str, str]:
        c = self.cluster
        listener = "SASL_SSL" if c.security else "PLAINTEXT"
        props = super()._properties()
        props.update({
            "node.id": str(self.node_id),
            "controller.quorum.voters": c.quorum_voters,
            "listeners": f"{listener}://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"{listener}://127.0.0.1:{self.port}",
            "inter.broker.listener.name": listener,
            "default.replication.factor": str(c.replication_factor),
            "min.insync.replicas": str(c.min_insync_replicas),
            "offsets.topic.replication.factor": str(c.replication_factor),
            "transaction.state.log.replication.factor": str(c.replication_factor),
            "transaction.state.log.min.isr": str(c.min_insync_replicas),
        })
        if c.security:
            props.update(c.security.broker_properties())
        props.update(c.properties)
        return props

    def _write_config(self) -> Path:
        path = super()._write_config()
        with (self.work_dir / "log4j.properties").open("a") as f:  # failed TLS/SASL authentications, at INFO
            f.write("log4j.logger.org.apache.kafka.common.network.Selector=INFO\n")
        if self.cluster.security:
            path.chmod(0o600)  # it holds the admin password and the key store's
        return path

    def _format_command(self, lib: Path, config: Path, cluster_id: str | None = None,
                        extra: tuple[str, ...] = ()) -> list[str] | None:
        scram = tuple(self.cluster.security.format_args()) if self.cluster.security else ()
        return super()._format_command(lib, config, self.cluster.cluster_id, scram + extra)


class LocalKafkaCluster(ClusterMetadataMixin, SecuredClusterMixin):
    """`brokers` KRaft nodes (ids 1..N, combined broker+controller, one static controller quorum) on 127.0.0.1.

    Replication defaults follow a small production cluster: replication factor min(3, N) for new, offsets and
    transaction-state topics, min.insync.replicas one less (at least 1). `properties` overrides any broker setting.
    """

    def __init__(self, brokers: int = 3, work_dir: str | os.PathLike[str] | None = None,
                 cache_dir: Path | None = None, version: str = KAFKA_VERSION, heap: str = "512m",
                 security: SaslSsl | None = None, properties: dict[str, str] | None = None) -> None:
        if brokers < 1:
            raise ValueError(f"a cluster needs at least one broker, not {brokers}")
        self.version, self.cache_dir, self.heap = version, cache_dir, heap
        self.security = security
        self.properties = dict(properties or {})
        self.replication_factor = min(3, brokers)
        self.min_insync_replicas = max(1, self.replication_factor - 1)
        self._owns_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="tsad-kafka-cluster-"))
        self.cluster_id = _cluster_id()
        self.nodes = {i: KafkaNode(self, i, self.work_dir / f"node-{i}") for i in range(1, brokers + 1)}
        self.start_seconds = 0.0

    @property
    def quorum_voters(self) -> str:
        return ",".join(f"{i}@127.0.0.1:{n.controller_port}" for i, n in self.nodes.items())

    @property
    def bootstrap(self) -> str:
        """Every node's client listener, comma-separated (what clients should be given)."""
        return ",".join(n.bootstrap for n in self.nodes.values())

    @property
    def live_bootstrap(self) -> str:
        """The client listeners of the nodes that are running and not paused."""
        live = [n.bootstrap for n in self.nodes.values() if n.running and not n.paused]
        if not live:
            raise KafkaLauncherError("no node of the cluster is running (and not paused)")
        return ",".join(live)

    def node(self, node_id: int) -> KafkaNode:
        if node_id not in self.nodes:
            raise KeyError(f"no node {node_id}: the cluster has nodes {sorted(self.nodes)}")
        return self.nodes[node_id]

    def start(self, timeout: float = 180.0) -> str:
        """Format (first time) and start every node that is not running; wait until all brokers are registered."""
        began = time.monotonic()
        if java_major_version() < 17:
            raise KafkaLauncherError(f"Java 17+ is required to run Kafka {self.version}")
        lib = ensure_jars(self.cache_dir, self.version)
        if self.security:
            self.security.prepare(self.work_dir)
        todo = [n for n in self.nodes.values() if not n.running]
        configs = {}
        for n in todo:
            n.work_dir.mkdir(parents=True, exist_ok=True)
            configs[n.node_id] = n._write_config()
        formats = {n.node_id: subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                   for n in todo if (cmd := n._format_command(lib, configs[n.node_id]))}  # in parallel
        for node_id, proc in formats.items():
            out = proc.communicate()[0].decode(errors="replace")
            if proc.returncode != 0:
                raise KafkaLauncherError(f"formatting node {node_id} failed: {out[-2000:]}")
        offsets = {n.node_id: n._launch(lib, configs[n.node_id]) for n in todo}
        try:
            for n in todo:
                n._wait_ready(offsets[n.node_id], began + timeout)
            self._wait_registered(began + timeout)
            self._create_pending_users()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self.bootstrap

    def _wait_registered(self, deadline: float) -> None:
        live = {i for i, n in self.nodes.items() if n.running and not n.paused}
        seen: set[int] = set()
        agreed = 0  # each broker's metadata cache catches up on its own: one answer is not every broker's view,
        while time.monotonic() < deadline:  # so several fresh clients in a row must see them all
            try:
                seen = {b["broker_id"] for b in self._admin(lambda a: a.describe_cluster())["brokers"]
                        if not b.get("is_fenced", False)}
            except Exception:  # a node still opening its listener
                seen = set()
            agreed = agreed + 1 if live <= seen else 0
            if agreed >= 5:
                return
            time.sleep(0.2)
        raise KafkaLauncherError(f"brokers {sorted(live - seen)} did not register with the controller in time; see "
                                 f"{self.work_dir}/node-*/server.log")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every node at once (one by one, the last ones would wait for a lost quorum), SIGKILL leftovers
        after `timeout` seconds."""
        procs = [n.process for n in self.nodes.values() if n.process is not None and n.running]
        for n in self.nodes.values():
            n.process, n.paused = None, False
        for proc in procs:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def cleanup(self) -> None:
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> LocalKafkaCluster:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cleanup()

    # --- per-node fault injection ---------------------------------------------------------------------------------
    def stop_node(self, node_id: int, timeout: float = 30.0) -> None:
        """Controlled shutdown (SIGTERM): leadership moves away first. It needs a controller quorum (2 of 3 nodes) to
        finish; without one the node is SIGKILLed after `timeout` seconds."""
        self.node(node_id).stop(timeout)

    def kill_node(self, node_id: int) -> None:
        """kill -9: no controlled shutdown; the controller fences it after broker.session.timeout.ms (9 s)."""
        self.node(node_id).kill()

    def start_node(self, node_id: int, timeout: float = 120.0) -> None:
        """Start a stopped or killed node on its old ports and log directory (the quorum must be up)."""
        self.node(node_id).start(timeout)
        self._wait_registered(time.monotonic() + timeout)

    def restart_node(self, node_id: int, timeout: float = 120.0) -> None:
        self.stop_node(node_id)
        self.start_node(node_id, timeout)

    def pause_node(self, node_id: int) -> None:
        """SIGSTOP: the node hangs with its connections open."""
        self.node(node_id).pause()

    def resume_node(self, node_id: int) -> None:
        self.node(node_id).resume()

    def heal(self, timeout: float = 180.0) -> list[int]:
        """Resume paused nodes and start stopped or killed ones, all at once (one node alone may wait for a quorum
        that needs another), after a fault that did not finish; wait until every partition is fully replicated again.
        Returns the nodes it had to bring back."""
        deadline = time.monotonic() + timeout
        paused = [i for i, n in self.nodes.items() if n.paused and n.running]
        for node_id in paused:
            self.resume_node(node_id)
        down = [i for i, n in self.nodes.items() if not n.running]
        for node_id in down:
            self.nodes[node_id].paused = False  # paused once, its process gone since
        if down:
            self.start(timeout=max(1.0, deadline - time.monotonic()))
        self.wait_fully_replicated(max(1.0, deadline - time.monotonic()))
        return sorted(paused + down)
