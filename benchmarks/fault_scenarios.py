"""Fault-injection scenarios against the real broker and real worker processes, each ending in a reconciliation
of every input id against the output topic: windows in, outputs, lost, duplicated.

The worker runs in all-scores mode, so every input window must produce exactly one score record; a window is
*lost* if no record carries its id and *duplicated* once per extra record. Exactly-once runs read the output
with `isolation_level=read_committed`, as a downstream consumer would.
"""

from __future__ import annotations

import json
import random
import shutil
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import TrackedProducer, WorkerProcess, committed_offsets, read_until, wait_for

from sample_streams.generator import generate
from sample_streams.local_kafka import LocalKafka
from sample_streams.topics import ensure_topics


@dataclass
class Reconciliation:
    scenario: str
    mode: str
    windows_in: int
    outputs: int
    lost: int
    duplicated: int
    notes: list[str] = field(default_factory=list)
    readiness_lag_s: float | None = None  # broker outage: seconds until /readyz first answered 503
    revocations: int | None = None  # outage while paused: how often the worker gave up its partitions

    def row(self) -> str:
        return (f"| {self.scenario} | {self.mode} | {self.windows_in} | {self.outputs} | {self.lost} | "
                f"{self.duplicated} | {'; '.join(self.notes)} |")


HEADER = ("| scenario | mode | windows in | outputs | lost | duplicated | notes |\n"
          "| --- | --- | --- | --- | --- | --- | --- |")


@dataclass
class FaultEnv:
    kafka: LocalKafka
    bundle: Path
    tmp: Path
    seed: int = 0
    client: str = "kafka-python"  # the worker's Kafka client backend
    workers: list[WorkerProcess] = field(default_factory=list)

    def topics(self, partitions: int = 2, create_scores: bool = True) -> dict[str, str | None]:
        tag = uuid.uuid4().hex[:8]
        names: dict[str, str | None] = {"input": f"in-{tag}", "events": f"ev-{tag}", "dead_letter": f"dlq-{tag}",
                                        "scores": f"sc-{tag}"}
        wanted = {str(names["input"]): partitions, str(names["events"]): 1, str(names["dead_letter"]): 1}
        if create_scores:
            wanted[str(names["scores"])] = 1
        ensure_topics(self.kafka.bootstrap, wanted)
        return names

    def worker(self, topics: dict[str, str | None], group: str, name: str, exactly_once: bool = False,
               **sections: dict) -> WorkerProcess:
        kafka = {"exactly_once": exactly_once, "session_timeout_ms": 6000, "max_poll_interval_ms": 15000,
                 "client": self.client, **sections.pop("kafka", {})}
        w = WorkerProcess(self.tmp, self.kafka.bootstrap, self.bundle, topics, group, name, kafka=kafka,
                          worker={"commit_interval_ms": 200, "lag_interval_s": 0.5, "shutdown_timeout_s": 10},
                          **sections)
        self.workers.append(w)
        return w

    def cleanup(self) -> None:
        for w in self.workers:
            w.kill()


def reconcile(scenario: str, mode: str, env: FaultEnv, topics: dict[str, str | None], expected: set[str],
              exactly_once: bool, timeout: float = 120.0) -> Reconciliation:
    options = {"isolation_level": "read_committed"} if exactly_once else {}

    def ids(records: list) -> list[str]:
        return [json.loads(m.value)["input"]["window_id"] for m in records]

    out = read_until(env.kafka.bootstrap, str(topics["scores"]), lambda r: set(ids(r)) >= expected, timeout,
                     **options)
    seen = Counter(ids(out))
    return Reconciliation(scenario, mode, len(expected), len(out), len(expected - set(seen)),
                          sum(c - 1 for c in seen.values() if c > 1))


def kill9(env: FaultEnv, kills: int = 10, windows: int = 4000, rate: float | None = None,
          exactly_once: bool = False) -> Reconciliation:
    """kill -9 the worker at `kills` random points while a stream arrives, restarting it each time.

    By default the stream is paced to last about 10 s per kill, so every kill lands while windows are arriving;
    kills stop early if the stream has ended (the table reports how many happened)."""
    rng = random.Random(env.seed)
    rate = rate or windows / (kills * 10.0)
    mode = "exactly-once" if exactly_once else "at-least-once"
    topics = env.topics()
    group = f"g-kill-{uuid.uuid4().hex[:6]}"
    producer = TrackedProducer(env.kafka.bootstrap)
    records = list(generate(windows, seed=env.seed, prefix=f"k{env.seed}"))
    feeder = producer.send_in_background(str(topics["input"]), records, rate)
    killed_at: list[int] = []
    for i in range(kills):
        if not feeder.is_alive():
            break
        w = env.worker(topics, group, f"kill{i}", exactly_once).start()

        def consuming(w: WorkerProcess = w) -> bool:
            return w.metric("tsad_windows_consumed_total") > 0 or not w.alive or not feeder.is_alive()

        # a kill that lands mid-rebalance makes the next join wait out max_poll_interval_ms (15 s here)
        try:
            wait_for(consuming, 180, "the worker to consume")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; worker {w.name} log tail:\n{w.log()[-4000:]}") from None
        time.sleep(rng.uniform(0.1, 1.5))
        killed_at.append(int(w.metric("tsad_windows_consumed_total")))
        w.kill()
    final = env.worker(topics, group, "final", exactly_once).start()
    feeder.join(timeout=300)
    producer.close()
    result = reconcile(f"kill -9 x{len(killed_at)}", mode, env, topics, producer.acked, exactly_once)
    result.notes.append(f"killed after consuming {killed_at} windows")
    final.terminate()
    return result


def broker_outage(env: FaultEnv, outage_s: float = 12.0, windows: int = 3000, rate: float = 300.0
                  ) -> Reconciliation:
    """Stop the broker (SIGTERM) mid-stream for `outage_s`, start it again on the same log directory."""
    topics = env.topics()
    w = env.worker(topics, f"g-outage-{uuid.uuid4().hex[:6]}", "outage").start()
    w.wait_ready()
    producer = TrackedProducer(env.kafka.bootstrap, delivery_timeout_ms=180_000, max_block_ms=120_000)
    feeder = producer.send_in_background(str(topics["input"]), generate(windows, seed=env.seed + 1, prefix="o"),
                                         rate)
    wait_for(lambda: w.metric("tsad_windows_scored_total") > windows // 4, 60, "a quarter of the stream")
    env.kafka.stop()
    stopped = time.monotonic()
    first_not_ready: float | None = None  # seconds after the broker stopped
    while time.monotonic() - stopped < outage_s:
        if first_not_ready is None and w.get("/readyz")[0] == 503:
            first_not_ready = time.monotonic() - stopped
        assert w.alive, "the worker died while the broker was away:\n" + w.log()[-2000:]
        time.sleep(0.5)
    env.kafka.start()
    feeder.join(timeout=300)
    producer.close()
    result = reconcile(f"broker stopped {outage_s:.0f} s", "at-least-once", env, topics, producer.acked, False)
    result.notes.append(f"worker alive throughout; /readyz 503 during the outage: {first_not_ready is not None}"
                        + ("" if first_not_ready is None else f" (first after {first_not_ready:.1f} s)"))
    result.readiness_lag_s = first_not_ready
    if producer.failed:
        result.notes.append(f"{len(producer.failed)} sends the producer gave up on (not counted as in)")
    if result.lost:
        result.notes.append(worker_state(w))
    w.terminate()
    return result


STATE_METRICS = ("tsad_windows_consumed_total", "tsad_windows_scored_total", "tsad_records_published_total",
                 "tsad_publish_failures_total", "tsad_commits_total", "tsad_commit_failures_total",
                 "tsad_assigned_partitions", "tsad_paused_partitions", "tsad_windows_in_flight", "tsad_ready")


def worker_state(w: WorkerProcess) -> str:
    """What a worker that fell behind reports about itself, for a failing run's message."""
    figures = ", ".join(f"{name} {w.metric(name):g}" for name in STATE_METRICS)
    return f"worker {w.name}: alive {w.alive}, {figures}; log tail:\n{w.log()[-6000:]}"


def outage_while_paused(env: FaultEnv, outage_s: float = 11.0, windows: int = 600, max_in_flight: int = 64
                        ) -> Reconciliation:
    """Backpressure holds the input paused (the scores topic does not exist yet, so no output is safe) when the
    broker stops for longer than the group session: the partitions are lost and, once the broker is back, assigned
    again. The worker must fetch them again once its outputs drain; nothing may stay paused for good."""
    topics = env.topics(create_scores=False)
    w = env.worker(topics, f"g-paused-{uuid.uuid4().hex[:6]}", "paused",
                   batch={"max_size": 32, "max_in_flight": max_in_flight}).start()
    w.wait_ready()
    producer = TrackedProducer(env.kafka.bootstrap)
    producer.send_all(str(topics["input"]), generate(windows, seed=env.seed + 4, prefix="p"))
    producer.close()
    wait_for(lambda: w.metric("tsad_paused_partitions") > 0, 60, "backpressure to pause the input")
    env.kafka.stop()
    time.sleep(outage_s)
    assert w.alive, "the worker died while the broker was away:\n" + w.log()[-2000:]
    env.kafka.start()
    ensure_topics(env.kafka.bootstrap, {str(topics["scores"]): 1})
    result = reconcile(f"broker stopped {outage_s:.0f} s while paused", "at-least-once", env, topics,
                       producer.acked, False)
    result.revocations = w.log().count("partitions revoked: [(")  # a loss reaches the worker as a revocation
    result.notes.append(f"input paused before the outage; {result.revocations} revocation(s) of its partitions")
    if result.lost:
        result.notes.append(worker_state(w))
    w.terminate()
    return result


def two_workers_one_killed(env: FaultEnv, windows: int = 4000, rate: float = 400.0) -> Reconciliation:
    topics = env.topics(partitions=4)
    group = f"g-two-{uuid.uuid4().hex[:6]}"
    a = env.worker(topics, group, "a").start()
    b = env.worker(topics, group, "b").start()
    a.wait_ready()
    b.wait_ready()
    wait_for(lambda: a.metric("tsad_assigned_partitions") == 2 and b.metric("tsad_assigned_partitions") == 2, 60,
             "a 2 + 2 split")
    producer = TrackedProducer(env.kafka.bootstrap)
    feeder = producer.send_in_background(str(topics["input"]),
                                         generate(windows, kind="mixed", sources=16, seed=env.seed + 2, prefix="t"),
                                         rate)
    wait_for(lambda: a.metric("tsad_windows_scored_total") > 200, 60, "worker a to be busy")
    a.kill()
    wait_for(lambda: b.metric("tsad_assigned_partitions") == 4, 60, "worker b to take all partitions")
    feeder.join(timeout=300)
    producer.close()
    result = reconcile("2 workers, one kill -9", "at-least-once", env, topics, producer.acked, False)
    result.notes.append("survivor took over all 4 partitions")
    b.terminate()
    return result


def output_unavailable(env: FaultEnv, outage_s: float = 8.0, windows: int = 3000, max_in_flight: int = 256
                       ) -> Reconciliation:
    """The scores topic does not exist (sends fail) for `outage_s`: input must pause, memory stay bounded."""
    topics = env.topics(create_scores=False)
    w = env.worker(topics, f"g-slow-{uuid.uuid4().hex[:6]}", "slow",
                   batch={"max_size": 64, "max_in_flight": max_in_flight}).start()
    producer = TrackedProducer(env.kafka.bootstrap)
    producer.send_all(str(topics["input"]), generate(windows, seed=env.seed + 3, prefix="u"))
    wait_for(lambda: w.metric("tsad_paused_partitions") > 0, 60, "backpressure to pause the input")
    began = time.monotonic()
    peak_in_flight, rss = 0.0, []
    while time.monotonic() - began < outage_s:
        peak_in_flight = max(peak_in_flight, w.metric("tsad_windows_in_flight"))
        rss.append(w.rss_bytes())
        time.sleep(0.5)
    consumed_while_paused = w.metric("tsad_windows_consumed_total")
    ensure_topics(env.kafka.bootstrap, {str(topics["scores"]): 1})
    producer.close()
    result = reconcile("output topic unavailable", "at-least-once", env, topics, producer.acked, False)
    assert peak_in_flight <= max_in_flight, peak_in_flight
    result.notes.append(f"input paused; peak in flight {peak_in_flight:.0f} <= {max_in_flight}; consumed "
                        f"{consumed_while_paused:.0f} of {windows} while blocked; RSS "
                        f"{min(rss) / 2**20:.0f}-{max(rss) / 2**20:.0f} MiB")
    w.terminate()
    return result


def corrupt_bundle(env: FaultEnv) -> Reconciliation:
    """A corrupted bundle stops start-up with a named error, and nothing is committed."""
    broken = env.tmp / f"broken-{uuid.uuid4().hex[:6]}"
    shutil.copytree(env.bundle, broken)
    weights = broken / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10:] = b"\xff" * 10
    weights.write_bytes(bytes(data))
    topics = env.topics()
    producer = TrackedProducer(env.kafka.bootstrap)
    producer.send_all(str(topics["input"]), generate(50, seed=env.seed + 4, prefix="c"))
    producer.close()
    group = f"g-corrupt-{uuid.uuid4().hex[:6]}"
    w = WorkerProcess(env.tmp, env.kafka.bootstrap, broken, topics, group, "corrupt").start()
    env.workers.append(w)
    assert w.proc is not None
    code = w.proc.wait(60)
    log = w.log()
    assert code == 2, log[-2000:]
    assert "model.safetensors: sha256 mismatch" in log, log[-2000:]
    committed = committed_offsets(env.kafka.bootstrap, group, str(topics["input"]))
    assert all(v is None for v in committed.values()), committed
    return Reconciliation("corrupted bundle at start", "-", 50, 0, 0, 0,
                          [f"refused to start (exit {code}, 'sha256 mismatch' named); nothing committed"])


def reconcile_ids(scenario: str, mode: str, bootstrap: str, scores_topic: str, expected: set[str],
                  exactly_once: bool, timeout: float = 180.0, **options: Any) -> Reconciliation:
    """`reconcile` for any cluster and client settings (`options`: e.g. SASL/TLS for a secured cluster)."""
    if exactly_once:
        options["isolation_level"] = "read_committed"

    def ids(records: list) -> list[str]:
        return [json.loads(m.value)["input"]["window_id"] for m in records]

    out = read_until(bootstrap, scores_topic, lambda r: set(ids(r)) >= expected, timeout, **options)
    seen = Counter(ids(out))
    return Reconciliation(scenario, mode, len(expected), len(out), len(expected - set(seen)),
                          sum(c - 1 for c in seen.values() if c > 1))
