"""Failover faults on a three-broker KRaft cluster (replication 3, min.insync.replicas 2) against a real worker
process under steady load, each reconciled by id (all-scores mode: exactly one score record per input window), for
each Kafka client and delivery mode:

- leader kill -9: the node leading every input and output partition is killed mid-stream; a follower takes over; the
  node is started again and caught up before the next kill (`--kills` times);
- pause: that node is stopped with SIGSTOP for `--pause-s` (longer than the brokers' 9 s and the worker's 10 s
  session timeouts), then resumed;
- rolling restart: every node in turn is shut down (SIGTERM), started again, and fully caught up before the next.

    python benchmarks/cluster_faults.py [--kills 5] [--pause-s 20] [--rate 100] [--client both] [--mode both]

Prints one row per scenario, client and mode, and exits 1 on a lost window, a duplicate under exactly-once, or a
worker that exited or stalled. A smaller version: tests/integration/test_cluster_faults.py (TSAD_CLUSTER_FAULTS=1).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fault_scenarios import Reconciliation, reconcile_ids
from harness import WorkerProcess, train_sample_bundle, wait_for
from load import Monitor, SteadyFeeder

from sample_streams.kafka_cluster import LocalKafkaCluster

HEADER = ("| scenario | client | mode | windows in | outputs | lost | duplicated | worker exits | ready | "
          "longest not ready (s) | longest output gap (s) | notes |\n" + "| --- " * 12 + "|")


@dataclass
class ClusterEnv:
    """Topics on the cluster (one node leads them all), workers with the cluster's security, feeders, readers."""

    cluster: LocalKafkaCluster
    bundle: Path
    tmp: Path
    client: str = "kafka-python"
    seed: int = 0
    user: str | None = None  # on a secured cluster: the SCRAM user the worker runs as
    workers: list[WorkerProcess] = field(default_factory=list)
    rotation: int = 0

    def topics(self, partitions: int = 2, scores: bool = True) -> dict[str, str | None]:
        """Input, events, dead letter, scores and the episode-state topic, every partition on the same replica list
        (rotated per call), so one node leads them all."""
        tag = uuid.uuid4().hex[:8]
        names: dict[str, str | None] = {"input": f"in-{tag}", "events": f"ev-{tag}", "dead_letter": f"dlq-{tag}",
                                        "scores": f"sc-{tag}", "episode_state": f"in-{tag}-episode-state"}
        nodes = sorted(self.cluster.nodes)
        k, self.rotation = self.rotation % len(nodes), self.rotation + 1
        replicas = nodes[k:] + nodes[:k]
        for role, name in names.items():
            if role != "episode_state" and (role != "scores" or scores):
                self.cluster.create_topic(str(name), partitions if role == "input" else 1, replicas=replicas)
        self.cluster.create_topic(str(names["episode_state"]), partitions, replicas=replicas,
                                  config={"cleanup.policy": "compact"})
        return names

    def security(self, password: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
        """The worker's kafka settings and environment for `user` on a secured cluster (else nothing)."""
        sec = self.cluster.security
        if sec is None or self.user is None:
            return {}, {}
        kafka = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": self.user,
                 "ssl_cafile": str(sec.ca_file)}
        return kafka, {"TSAD_KAFKA_SASL_PASSWORD": password or sec.passwords()[self.user]}

    def launch(self, topics: dict[str, str | None], group: str, name: str, exactly_once: bool = False,
               password: str | None = None, **sections: dict) -> WorkerProcess:
        extra, env = self.security(password)
        kafka = {"client": self.client, "exactly_once": exactly_once, **extra, **sections.pop("kafka", {})}
        w = WorkerProcess(self.tmp, self.cluster.bootstrap, self.bundle, topics, group, name, kafka=kafka,
                          worker={"commit_interval_ms": 200, "lag_interval_s": 0.5, "shutdown_timeout_s": 10},
                          **sections)
        self.workers.append(w)
        return w.start(env=env)

    def feeder(self, topics: dict[str, str | None], rate: float, prefix: str) -> SteadyFeeder:
        return SteadyFeeder(self.cluster.bootstrap, str(topics["input"]), rate, prefix, self.seed,
                            delivery_timeout_ms=300_000, **self.cluster.client_config()).start()

    def leader_of(self, topics: dict[str, str | None]) -> int:
        """The node leading most partitions of the input and output topics (with `topics()`: all of them)."""
        names = [str(t) for t in topics.values() if t]
        leaders = Counter(s.leader for t in names for s in self.cluster.partitions(t).values())
        return leaders.most_common(1)[0][0]

    def reconcile(self, scenario: str, exactly_once: bool, topics: dict[str, str | None],
                  expected: set[str], timeout: float = 180.0) -> Reconciliation:
        mode = "exactly-once" if exactly_once else "at-least-once"
        return reconcile_ids(scenario, mode, self.cluster.bootstrap, str(topics["scores"]), expected, exactly_once,
                             timeout, **self.cluster.client_config())

    def heal(self) -> None:
        """Resume paused nodes and start stopped ones (after a fault that did not finish)."""
        self.cluster.heal(180)

    def cleanup(self) -> None:
        for w in self.workers:
            w.kill()


@dataclass
class ClusterResult:
    rec: Reconciliation
    client: str
    exits: int
    ready_share: float
    longest_not_ready_s: float
    longest_gap_s: float

    def row(self) -> str:
        r = self.rec
        return (f"| {r.scenario} | {self.client} | {r.mode} | {r.windows_in} | {r.outputs} | {r.lost} | "
                f"{r.duplicated} | {self.exits} | {self.ready_share:.0%} | {self.longest_not_ready_s:.1f} | "
                f"{self.longest_gap_s:.1f} | {'; '.join(r.notes)} |")

    @property
    def ok(self) -> bool:
        return (self.rec.lost == 0 and self.exits == 0 and not any(n.startswith("STALLED") for n in self.rec.notes)
                and (self.rec.mode != "exactly-once" or self.rec.duplicated == 0))


Fault = Callable[[ClusterEnv, dict[str, str | None], Monitor], list[str]]


def under_load(env: ClusterEnv, scenario: str, fault: Fault, exactly_once: bool, rate: float) -> ClusterResult:
    """One worker on fresh topics, a steady feed, the fault, recovery (outputs flowing again), reconciliation."""
    topics = env.topics()
    name = f"{scenario.split()[0]}-{uuid.uuid4().hex[:4]}"
    w = env.launch(topics, f"g-{name}", name, exactly_once)
    w.wait_ready(120)
    feeder = env.feeder(topics, rate, f"{name}-{int(exactly_once)}")
    monitor = Monitor([w]).start()
    try:
        monitor.wait_published(rate * 3, 120)
        began = time.monotonic()
        stalled = ""
        try:
            notes = fault(env, topics, monitor)
            monitor.wait_published(rate * 3, 120)  # recovered: outputs flow again
        except AssertionError as exc:  # the worker stopped making progress: recorded, the cluster made whole again
            print(f"--- {scenario} {env.client}: the worker's log, last lines:\n{w.log()[-6000:]}", file=sys.stderr)
            notes, stalled = [], f"STALLED: {exc}"
            env.heal()
        ended = time.monotonic()
        feeder.stop()
        result = env.reconcile(scenario, exactly_once, topics, feeder.acked, 60 if stalled else 180)
        if stalled:
            notes.append(stalled)
        else:
            wait_for(lambda: w.get("/readyz")[0] == 200, 60, "the worker to be ready after the faults")
    finally:
        monitor.stop()
    result.notes += notes
    if feeder.failed:
        result.notes.append(f"{len(feeder.failed)} input sends failed (not counted as in)")
    exits = len(monitor.exits)
    if w.alive:
        try:
            w.terminate()
        except subprocess.TimeoutExpired:
            w.kill()
            result.notes.append("did not stop within 30 s of SIGTERM (killed)")
    return ClusterResult(result, env.client, exits, monitor.ready_share(began, ended),
                         monitor.longest(began, ended, not_ready=True), monitor.longest(began, ended))


def kill_leaders(kills: int, rate: float) -> Fault:
    def fault(env: ClusterEnv, topics: dict[str, str | None], monitor: Monitor) -> list[str]:
        killed, elected, resumed = [], [], []
        for i in range(kills):
            if i:
                monitor.wait_published(rate * 2, 90)
            node = env.leader_of(topics)
            began = time.monotonic()
            env.cluster.kill_node(node)
            env.cluster.wait_for_leader(str(topics["input"]), 0, exclude={node}, timeout=90)
            elected.append(time.monotonic() - began)
            monitor.wait_published(rate, 90)  # the worker carries on with the node still down
            resumed.append(time.monotonic() - began)
            env.cluster.start_node(node)
            env.cluster.wait_fully_replicated(180)
            killed.append(node)
        return [f"killed leaders {killed}", f"new leader after {_span(elected)} s",
                f"outputs resumed {_span(resumed)} s after each kill (node still down)"]
    return fault


def pause_leader(pause_s: float, rate: float) -> Fault:
    def fault(env: ClusterEnv, topics: dict[str, str | None], monitor: Monitor) -> list[str]:
        node = env.leader_of(topics)
        before = monitor.published()
        began = time.monotonic()
        env.cluster.pause_node(node)
        try:
            time.sleep(pause_s)
            during = monitor.published() - before
        finally:
            env.cluster.resume_node(node)
        env.cluster.wait_fully_replicated(180)
        return [f"node {node} stopped (SIGSTOP) {pause_s:.0f} s", f"{during:.0f} outputs during the pause",
                f"caught up {time.monotonic() - began - pause_s:.0f} s after resume"]
    return fault


def rolling_restart(rate: float) -> Fault:
    def fault(env: ClusterEnv, topics: dict[str, str | None], monitor: Monitor) -> list[str]:
        took = []
        for node in sorted(env.cluster.nodes):
            began = time.monotonic()
            env.cluster.restart_node(node)
            env.cluster.wait_fully_replicated(180)
            took.append(time.monotonic() - began)
            monitor.wait_published(rate, 90)
        return [f"nodes restarted in turn, {_span(took)} s each until fully replicated"]
    return fault


def _span(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--pause-s", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=100.0, help="input windows per second")
    parser.add_argument("--client", choices=["kafka-python", "confluent", "both"], default="both")
    parser.add_argument("--mode", choices=["at-least-once", "exactly-once", "both"], default="both")
    parser.add_argument("--scenarios", default="kill,pause,rolling")
    args = parser.parse_args()
    clients = ["kafka-python", "confluent"] if args.client == "both" else [args.client]
    modes = [False, True] if args.mode == "both" else [args.mode == "exactly-once"]
    faults: dict[str, tuple[str, Fault]] = {
        "kill": (f"leader kill -9 x{args.kills}", kill_leaders(args.kills, args.rate)),
        "pause": (f"leader SIGSTOP {args.pause_s:.0f} s", pause_leader(args.pause_s, args.rate)),
        "rolling": ("rolling restart", rolling_restart(args.rate))}
    rows: list[ClusterResult] = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, LocalKafkaCluster(brokers=3, work_dir=Path(tmp) / "kafka") as cluster:
        bundle = train_sample_bundle(Path(tmp) / "bundle", epochs=60, name="cluster-faults")
        for client in clients:
            env = ClusterEnv(cluster, bundle, Path(tmp), client=client)
            try:
                for key in args.scenarios.split(","):
                    scenario, fault = faults[key]
                    for exactly_once in modes:
                        t = time.monotonic()
                        rows.append(under_load(env, scenario, fault, exactly_once, args.rate))
                        print(f"{scenario} {client} {rows[-1].rec.mode}: {time.monotonic() - t:.0f} s\n"
                              f"{rows[-1].row()}", file=sys.stderr, flush=True)
            finally:
                env.cleanup()
    print(f"3-node cluster, {args.rate:.0f} windows/s offered, wall time {(time.monotonic() - began) / 60:.1f} min\n")
    print(HEADER)
    for row in rows:
        print(row.row())
    if not all(r.ok for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
