"""Chaos soak: mixed faults at random on a three-broker cluster while two workers score a steady load, then a
reconciliation by id (all-scores mode: exactly one score record per input window) and the workers' RSS slope.

Faults, one every `--interval-s` seconds (uniformly at random):
- worker kill -9: the second worker is killed and started again (the first one lives throughout, for the RSS slope);
- broker kill -9: a random node is killed, started again after `--down-s`, and caught up;
- broker pause: a random node is stopped with SIGSTOP for `--down-s` (beyond the session timeouts), then resumed;
- output topic unavailable: the scores topic refuses writes for `--down-s` (its min.insync.replicas is raised
  above its replication factor: every acks=all send fails with NOT_ENOUGH_REPLICAS), then accepts them again.

    python benchmarks/chaos.py --minutes 30 [--rate 100] [--client kafka-python] [--exactly-once]

Prints the faults, the reconciliation, unexpected worker exits and the first worker's RSS slope (MiB per 10 min,
least squares over samples after the first minute); exits 1 on a lost window, a duplicate under exactly-once or an
unexpected worker exit.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from cluster_faults import ClusterEnv
from harness import train_sample_bundle, wait_for
from load import Monitor

from sample_streams.kafka_cluster import LocalKafkaCluster

FAULTS = ("worker kill -9", "broker kill -9", "broker pause", "output topic unavailable")


def set_min_insync(cluster: LocalKafkaCluster, topic: str, value: int) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=cluster.live_bootstrap, **cluster.client_config())
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                            configs={"min.insync.replicas": str(value)})])
    finally:
        admin.close()


def slope_per_10_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) samples, in MiB per 10 minutes."""
    if len(samples) < 3:
        return float("nan")
    n = len(samples)
    mt, mr = sum(t for t, _ in samples) / n, sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return 600 * sum((t - mt) * (r - mr) for t, r in samples) / var if var else float("nan")


class Chaos:
    def __init__(self, env: ClusterEnv, args: argparse.Namespace) -> None:
        self.env, self.args = env, args
        self.rng = random.Random(args.seed)
        self.topics = env.topics(partitions=4)
        self.group = "chaos"
        self.workers = [env.launch(self.topics, self.group, f"chaos-{i}", args.exactly_once) for i in range(2)]
        self.killing: set[str] = set()
        self.unexpected: list[str] = []
        self.log: list[str] = []
        self.rss: list[tuple[float, float]] = []

    def watch(self, began: float) -> None:
        """Restart a worker that died on its own (counted), sample the first worker's RSS."""
        for w in self.workers:
            if not w.alive and w.name not in self.killing:
                self.unexpected.append(f"{w.name} exit {w.proc.returncode if w.proc else '?'} at "
                                       f"{time.monotonic() - began:.0f} s")
                w.start()
        if self.workers[0].alive:
            self.rss.append((time.monotonic() - began, self.workers[0].rss_bytes() / 2**20))

    def fault(self, kind: str) -> str:
        cluster, down = self.env.cluster, self.args.down_s
        if kind == "worker kill -9":
            w = self.workers[1]
            self.killing.add(w.name)
            w.kill()
            time.sleep(1.0)
            w.start()
            self.killing.discard(w.name)
            return f"{w.name} killed and restarted"
        if kind == "output topic unavailable":
            scores = str(self.topics["scores"])
            set_min_insync(cluster, scores, 4)
            time.sleep(down)
            set_min_insync(cluster, scores, 2)
            return f"{scores} refused writes for {down:.0f} s"
        node = self.rng.choice(sorted(cluster.nodes))
        if kind == "broker kill -9":
            cluster.kill_node(node)
            time.sleep(down)
            cluster.start_node(node)
        else:
            cluster.pause_node(node)
            time.sleep(down)
            cluster.resume_node(node)
        cluster.wait_fully_replicated(240)
        return f"node {node}"

    def run(self) -> int:
        args, began = self.args, time.monotonic()
        for w in self.workers:
            w.wait_ready(120)
        feeder = self.env.feeder(self.topics, args.rate, "chaos")
        monitor = Monitor(list(self.workers)).start()
        end, next_fault = began + args.minutes * 60, began + args.interval_s
        while time.monotonic() < end:
            self.watch(began)
            if time.monotonic() >= next_fault:
                kind = self.rng.choice(FAULTS)
                t = time.monotonic()
                note = self.fault(kind)
                self.log.append(f"{t - began:6.0f} s  {kind}: {note} ({time.monotonic() - t:.0f} s)")
                print(self.log[-1], file=sys.stderr, flush=True)
                next_fault = time.monotonic() + args.interval_s
            time.sleep(min(10.0, max(0.5, next_fault - time.monotonic())))
        feeder.stop()
        monitor.stop()
        mode = "exactly-once" if args.exactly_once else "at-least-once"
        rec = self.env.reconcile("chaos", args.exactly_once, self.topics, feeder.acked)
        wait_for(lambda: all(w.get("/readyz")[0] == 200 for w in self.workers), 120, "both workers ready")
        wall = (time.monotonic() - began) / 60
        steady = [s for s in self.rss if s[0] >= 60]
        counts = Counter(line.split(":")[0].split("s  ", 1)[1] for line in self.log)
        print(f"chaos: {args.client}, {mode}, {wall:.1f} min, {args.rate:.0f} windows/s offered, faults every "
              f"{args.interval_s:.0f} s ({dict(counts)})\n")
        late = [s for s in self.rss if s[0] >= 600]  # after ten minutes: buffers and caches at their high-water marks
        print("| windows in | outputs | lost | duplicated | unexpected worker exits | input sends failed | "
              "RSS first/last (MiB) | RSS slope (MiB / 10 min) | RSS slope after minute 10 |\n" + "| --- " * 9 + "|")
        first, last = (steady[0][1], steady[-1][1]) if steady else (float("nan"), float("nan"))
        print(f"| {rec.windows_in} | {rec.outputs} | {rec.lost} | {rec.duplicated} | {len(self.unexpected)} | "
              f"{len(feeder.failed)} | {first:.0f} / {last:.0f} | {slope_per_10_min(steady):+.1f} | "
              f"{slope_per_10_min(late):+.1f} |\n")
        print("\n".join(self.log + self.unexpected))
        ok = rec.lost == 0 and not self.unexpected and (not args.exactly_once or rec.duplicated == 0)
        return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=100.0, help="input windows per second")
    parser.add_argument("--interval-s", type=float, default=45.0, help="seconds between the end of one fault and "
                                                                       "the next")
    parser.add_argument("--down-s", type=float, default=15.0, help="how long a node or the output stays away")
    parser.add_argument("--client", choices=["kafka-python", "confluent"], default="kafka-python")
    parser.add_argument("--exactly-once", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalKafkaCluster(brokers=3, work_dir=Path(tmp) / "kafka") as cluster:
        bundle = train_sample_bundle(Path(tmp) / "bundle", epochs=60, name="chaos")
        env = ClusterEnv(cluster, bundle, Path(tmp), client=args.client, seed=args.seed)
        chaos = Chaos(env, args)
        try:
            code = chaos.run()
        finally:
            env.cleanup()
    sys.exit(code)


if __name__ == "__main__":
    main()
