"""The worker loop alone: in-memory source and sink (no broker), CPU scoring, all-scores mode.

    python benchmarks/worker_loop.py [--windows 100000] [--formats json,f32] [--counts 10000,50000,200000] [--no-doc]

Shows what the loop itself costs per window (decode, batch, score, encode, bookkeeping, metrics), with and without
`gc.freeze()` after start-up (what the service does), and how the cost grows with the number of windows. Writes
its tables to docs/performance.md (block 'worker-loop') unless --no-doc.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

from harness import train_sample_bundle
from perfdoc import Report, add_doc_option
from prometheus_client import CollectorRegistry

from detector.bundle import ModelBundle
from detector.config import BatchConfig, Config, InputConfig, TopicsConfig, WorkerConfig
from detector.health import Health
from detector.io import DoneCallback, InputMessage, MemorySink, MemorySource, OutputRecord
from detector.metrics import WorkerMetrics
from detector.scoring import BatchScorer, Scorer
from detector.worker import Worker
from sample_streams.generator import generate
from sample_streams.replay import encode


class AckingSink(MemorySink):
    """Acknowledges every record at once and keeps nothing (a long run would otherwise grow the list)."""

    def send(self, record: OutputRecord, on_done: DoneCallback) -> None:
        on_done(record, None)


def run(bundle: ModelBundle, fmt: str, n: int, freeze: bool) -> float:
    pool = [encode(r, fmt) for r in generate(5000, kind="ecg", seed=1)]
    source = MemorySource()
    source.add([InputMessage("in", 0, i, b"ecg-%02d" % (i % 16), pool[i % len(pool)][0], pool[i % len(pool)][1],
                             1_700_000_000_000) for i in range(n)])
    config = Config(input=InputConfig(format=fmt), topics=TopicsConfig(input="in", events="ev", dead_letter="dlq",
                                                                       scores="sc"),
                    batch=BatchConfig(max_size=1024, max_wait_ms=20, max_in_flight=16384),
                    worker=WorkerConfig(max_poll_records=4000, commit_interval_ms=1000))
    worker = Worker(config=config, source=source, sink=AckingSink(),
                    scorer=BatchScorer(Scorer(bundle.build_model(), bundle.scaler, bundle.window), 1024, 10),
                    threshold=bundle.threshold, model={"name": bundle.name, "version": bundle.version},
                    window=bundle.window, metrics=WorkerMetrics(CollectorRegistry()), health=Health())
    source.listener = worker
    gc.collect()
    if freeze:
        gc.freeze()
    start = time.perf_counter()
    while any(source.lag().values()) or worker.tracker.in_flight:
        worker.step()
    seconds = time.perf_counter() - start
    gc.unfreeze()
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=100_000)
    parser.add_argument("--formats", default="json,f32")
    parser.add_argument("--counts", default="10000,50000,200000", help="window counts for the growth table (f32)")
    add_doc_option(parser)
    args = parser.parse_args()
    report = Report("worker-loop")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = ModelBundle.load(train_sample_bundle(Path(tmp) / "bundle"))
        rows = []
        for fmt in args.formats.split(","):
            plain, frozen = run(bundle, fmt, args.windows, False), run(bundle, fmt, args.windows, True)
            rows.append([fmt, f"{plain:,.0f}", f"{frozen:,.0f}", f"{1e6 / frozen:.1f}"])
        growth = []
        for count in [int(c) for c in args.counts.split(",") if c]:
            rate = run(bundle, "f32", count, True)
            growth.append([f"{count:,}", f"{count / rate:.2f}", f"{rate:,.0f}", f"{1e6 / rate:.1f}"])
    report.line(f"The worker loop alone, {args.windows:,} windows, in-memory source and sink, CPU scoring, all-scores "
                "mode (windows/s):")
    report.line()
    report.table(["format", "without gc.freeze", "with gc.freeze (as served)", "µs per window"], rows)
    if growth:
        report.line()
        report.line("How the cost grows with the number of windows (f32, with gc.freeze):")
        report.line()
        report.table(["windows", "seconds", "windows/s", "µs per window"], growth)
    if not args.no_doc:
        report.save()


if __name__ == "__main__":
    main()
