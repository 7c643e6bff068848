"""Scaling on this machine: partitions x worker processes against the real broker, and scoring cost against
batch size.

    python benchmarks/scaling.py [--windows 60000] [--client kafka-python|confluent] [--no-doc]

Writes its tables to docs/performance.md (block 'scaling-<client>') unless --no-doc.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from harness import WorkerProcess, train_sample_bundle, wait_for
from perfdoc import Report, add_client_option, add_doc_option
from throughput import prefill

from detector.model.bundle import ModelBundle
from detector.model.scoring import BatchScorer, Scorer
from sample_streams.local_kafka import LocalKafka
from sample_streams.topics import ensure_topics


def run_group(tmp: Path, bootstrap: str, bundle: Path, partitions: int, n: int, workers: int,
              client: str = "kafka-python") -> float:
    """Workers join the group on an empty topic; once every one holds partitions, the topic is filled as fast as
    librdkafka can (faster than the workers drain it) and the clock runs from the first window consumed."""
    topic = f"scale-{partitions}-{uuid.uuid4().hex[:6]}"
    ensure_topics(bootstrap, {topic: partitions})
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
        wait_for(lambda: all(p.metric("tsad_assigned_partitions") > 0 for p in procs)
                 and sum(p.metric("tsad_assigned_partitions") for p in procs) == partitions, 90, "a stable split")
        filler = threading.Thread(target=prefill, args=(bootstrap, topic, n, "f32", partitions), daemon=True)
        filler.start()
        wait_for(lambda: sum(p.metric("tsad_windows_consumed_total") for p in procs) > 0, 60, "consumption", 0.02)
        start = time.perf_counter()
        wait_for(lambda: sum(p.metric("tsad_windows_scored_total") for p in procs) >= n, 600, "all scored", 0.1)
        seconds = time.perf_counter() - start
        filler.join(60)
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
    add_client_option(parser)
    add_doc_option(parser)
    args = parser.parse_args()
    report = Report(f"scaling-{args.client}")
    with tempfile.TemporaryDirectory() as tmp_name, LocalKafka() as kafka:
        tmp = Path(tmp_name)
        bundle = train_sample_bundle(tmp / "bundle")
        rows = []
        for partitions, workers in ((1, 1), (2, 1), (4, 1), (2, 2), (4, 2)):
            rows.append((partitions, workers, run_group(tmp, kafka.bootstrap, bundle, partitions, args.windows,
                                                        workers, args.client)))
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
