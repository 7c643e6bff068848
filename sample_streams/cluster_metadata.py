"""Topic and metadata helpers of `LocalKafkaCluster`: create replicated topics, see leaders and in-sync replicas,
wait for failover."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sample_streams.local_kafka import KafkaLauncherError

T = TypeVar("T")


@dataclass(frozen=True)
class PartitionState:
    """Where one topic-partition lives: its leader's node id (-1: none), replicas and in-sync replicas."""

    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


class ClusterMetadataMixin:
    """Needs `live_bootstrap`, `replication_factor` and `client_config()` from the cluster it is mixed into."""

    replication_factor: int
    live_bootstrap: Any  # the cluster's property
    client_config: Callable[..., dict[str, Any]]  # the cluster's connection settings (security included)

    def _new_admin(self) -> Any:
        from kafka import KafkaAdminClient

        # a short reconnect back-off: a waiting client should find a restarted node within a second or so
        return KafkaAdminClient(bootstrap_servers=self.live_bootstrap, request_timeout_ms=10000,
                                reconnect_backoff_max_ms=1000, **self.client_config())

    def _admin(self, call: Callable[[Any], T]) -> T:
        admin = self._new_admin()
        try:
            return call(admin)
        finally:
            admin.close()

    def _wait(self, check: Callable[[Any], T | None], timeout: float, what: str) -> T:
        """Call `check(admin)` until it returns something other than None (errors count as None) or `timeout` passes.

        One admin client serves every attempt: after bootstrap, kafka-python sends each request to a random broker it
        knows, and only a client that has failed to reach a node (one just killed, still listed until it is fenced)
        backs off from it. A fresh client per attempt could pick the dead node every time."""
        deadline = time.monotonic() + timeout
        admin: Any = None
        last: Exception | None = None
        try:
            while time.monotonic() < deadline:
                try:
                    if admin is None:
                        admin = self._new_admin()
                    result = check(admin)
                    if result is not None:
                        return result
                except Exception as exc:  # kafka-python errors while leadership moves, a node not yet listening
                    last = exc
                time.sleep(0.2)
        finally:
            if admin is not None:
                admin.close()
        raise TimeoutError(f"waited {timeout:.0f} s for {what}" + (f"; last error: {last!r}" if last else "")) from last

    def create_topic(self, name: str, partitions: int = 1, replication_factor: int | None = None,
                     config: dict[str, str] | None = None, timeout: float = 30.0,
                     replicas: Sequence[int] | None = None) -> None:
        """Create a topic (default: the cluster's replication factor); wait until every replica is in sync.
        `replicas` places every partition on these nodes, the first as preferred leader (one node leads them all)."""
        from kafka.admin import NewTopic

        rf = len(replicas) if replicas else replication_factor or self.replication_factor
        topic = (NewTopic(name, replica_assignments={p: list(replicas) for p in range(partitions)},
                          topic_configs=config or {}) if replicas
                 else NewTopic(name, partitions, rf, topic_configs=config or {}))
        self._admin(lambda a: a.create_topics([topic]))
        deadline = time.monotonic() + timeout
        for p in range(partitions):
            self.wait_for_isr(name, p, rf, timeout=max(0.1, deadline - time.monotonic()))

    def partitions(self, topic: str, settle: float = 5.0) -> dict[int, PartitionState]:
        """One broker's current view of every partition of `topic`. Brokers learn of new topics asynchronously, so an
        unknown topic is asked about again for up to `settle` seconds before this fails."""
        return self._admin(lambda a: self._describe(a, topic, settle))

    @staticmethod
    def _describe(admin: Any, topic: str, settle: float = 5.0) -> dict[int, PartitionState]:
        deadline = time.monotonic() + settle
        while True:
            described = admin.describe_topics([topic])
            error = described[0].get("error_code", 0) if described else -1
            if error == 0:
                return {p["partition_index"]: PartitionState(p["leader_id"], tuple(p["replica_nodes"]),
                                                             tuple(p["isr_nodes"]))
                        for p in described[0]["partitions"]}
            if error != 3 or time.monotonic() > deadline:  # 3: UNKNOWN_TOPIC_OR_PARTITION
                raise KafkaLauncherError(f"cannot describe topic {topic!r}: {described}")
            time.sleep(0.1)

    def partition(self, topic: str, partition: int = 0) -> PartitionState:
        return self._admin(lambda a: self._partition(a, topic, partition))

    @classmethod
    def _partition(cls, admin: Any, topic: str, partition: int) -> PartitionState:
        states = cls._describe(admin, topic)
        if partition not in states:
            raise KeyError(f"topic {topic!r} has no partition {partition} (it has {sorted(states)})")
        return states[partition]

    def leader(self, topic: str, partition: int = 0) -> int:
        """The node id leading `topic`-`partition` (-1 while it has none)."""
        return self.partition(topic, partition).leader

    def wait_for_partition(self, topic: str, partition: int, ok: Callable[[PartitionState], bool], what: str,
                           timeout: float = 60.0) -> PartitionState:
        """Wait until the partition's state satisfies `ok` (`what` names that in the timeout error); return it."""
        def check(admin: Any) -> PartitionState | None:
            state = self._partition(admin, topic, partition)
            return state if ok(state) else None
        return self._wait(check, timeout, f"{topic}-{partition} to have {what}")

    def wait_for_leader(self, topic: str, partition: int = 0, exclude: Iterable[int] = (),
                        timeout: float = 60.0) -> int:
        """Wait until the partition has a leader not in `exclude` (e.g. the node just killed); return its id."""
        excluded = set(exclude)
        return self.wait_for_partition(topic, partition, lambda s: s.leader >= 0 and s.leader not in excluded,
                                       f"a leader other than {sorted(excluded)}", timeout).leader

    def wait_for_isr(self, topic: str, partition: int = 0, size: int | None = None,
                     timeout: float = 60.0) -> tuple[int, ...]:
        """Wait until the in-sync replica set has `size` members (default: all replicas); return it."""
        return self.wait_for_partition(
            topic, partition, lambda s: s.leader >= 0 and len(s.isr) >= (size or len(s.replicas)),
            f"{size or 'all its'} in-sync replicas", timeout).isr

    def active_controller(self) -> int:
        """The node id of the active controller (the metadata quorum's leader)."""
        return int(self._admin(lambda a: a.describe_metadata_quorum())["topics"][0]["partitions"][0]["leader_id"])

    def under_replicated(self) -> list[tuple[str, int]]:
        """Partitions of every topic (internal ones included) without a leader or with replicas out of sync."""
        return self._admin(self._under_replicated)

    @staticmethod
    def _under_replicated(admin: Any) -> list[tuple[str, int]]:
        topics = admin.describe_topics()
        return [(t["name"], p["partition_index"]) for t in topics for p in t["partitions"]
                if p["leader_id"] < 0 or len(p["isr_nodes"]) < len(p["replica_nodes"])]

    def wait_fully_replicated(self, timeout: float = 120.0) -> None:
        """Wait until no partition is under-replicated (what a rolling restart waits for before the next node)."""
        self._wait(lambda a: True if not self._under_replicated(a) else None, timeout,
                   "every partition to be fully replicated")
