"""Scaling on this machine: partitions x worker processes against the real broker, and scoring cost against
batch size.

    python benchmarks/scaling.py [--windows 60000] [--client kafka-python|confluent] [--no-doc]

Writes its tables to docs/performance.md (block 'scaling-<client>') unless --no-doc.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from harness import WorkerProcess, train_sample_bundle, wait_for
from perfdoc import Report
from throughput import prefill

from detector.bundle import ModelBundle
from detector.scoring import BatchScorer, Scorer
from sample_streams.local_kafka import LocalKafka
from sample_streams.topics import ensure_topics


def run_group(tmp: Path, bootstrap: str, bundle: Path, topic: str, n: int, workers: int,
              client: str = "kafka-python") -> float:
    tag = uuid.uuid4().hex[:6]
    topics: dict[str, str | None] = {"input": topic, "events": f"ev-{tag}", "dead_letter": f"dlq-{tag}",
                                     "scores": None}
    ensure_topics(bootstrap, {f"ev-{tag}": 1, f"dlq-{tag}": 1})
    procs = [WorkerProcess(tmp, bootstrap, bundle, topics, f"scale-{tag}", f"s{tag}{i}", input={"format": "f32"},
                           batch={"max_size": 1024, "max_in_flight": 16384}, kafka={"client": client},
                           worker={"max_poll_records": 4000}).start() for i in range(workers)]
    try:
        for p in procs:
            p.wait_ready()
        wait_for(lambda: sum(p.metric("tsad_assigned_partitions") for p in procs) > 0, 60, "assignment")
        # every worker must hold a partition before the clock starts (when there are enough partitions)
        start = time.perf_counter()
        wait_for(lambda: sum(p.metric("tsad_windows_scored_total") for p in procs) >= n, 600, "all scored", 0.2)
        seconds = time.perf_counter() - start
    finally:
        for p in procs:
            p.kill()
    return n / seconds


def batch_cost(bundle: Path) -> list[tuple[int, float]]:
    b = ModelBundle.load(bundle)
    out = []
    for size in (1, 8, 64, 256, 1024, 4096):
        scorer = BatchScorer(Scorer(b.build_model(), b.scaler, b.window), size, 10)
        x = np.random.default_rng(0).normal(size=(size, b.window)).astype(np.float32)
        scorer.score(x)
        reps = max(3, 20000 // size)
        start = time.perf_counter()
        for _ in range(reps):
            scorer.score(x)
        out.append((size, (time.perf_counter() - start) / (reps * size) * 1e6))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=60_000)
    parser.add_argument("--client", default="kafka-python", choices=["kafka-python", "confluent"])
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    report = Report(f"scaling-{args.client}")
    with tempfile.TemporaryDirectory() as tmp_name, LocalKafka() as kafka:
        tmp = Path(tmp_name)
        bundle = train_sample_bundle(tmp / "bundle")
        rows = []
        for partitions, workers in ((1, 1), (2, 1), (4, 1), (2, 2), (4, 2)):
            topic = f"scale-{partitions}-{uuid.uuid4().hex[:6]}"
            prefill(kafka.bootstrap, topic, args.windows, "f32", partitions)
            rows.append((partitions, workers, run_group(tmp, kafka.bootstrap, bundle, topic, args.windows, workers,
                                                        args.client)))
        costs = batch_cost(bundle)
    report.line(f"Worker throughput ({args.client}), f32, {args.windows:,} pre-filled windows, events only "
                "(windows/s):")
    report.line()
    report.table(["partitions", "worker processes", "windows/s"],
                 [[str(p), str(w), f"{rate:,.0f}"] for p, w, rate in rows])
    report.line()
    report.line("CPU scoring cost per window against batch size (BatchScorer, dense default model):")
    report.line()
    report.table(["batch", "µs per window"], [[str(size), f"{micros:.2f}"] for size, micros in costs])
    if not args.no_doc:
        report.save()


if __name__ == "__main__":
    main()
