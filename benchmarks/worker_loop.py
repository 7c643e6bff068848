"""The worker loop alone: in-memory source and sink (no broker), CPU scoring, all-scores mode.

    python benchmarks/worker_loop.py [--windows 100000] [--formats json,f32] [--counts 10000,50000,200000] [--no-doc]
    python benchmarks/worker_loop.py --baseline REV [--rounds 5]

Shows what the loop itself costs per window (decode, batch, score, encode, bookkeeping, metrics), with and without
`gc.freeze()` after start-up (what the service does), and how the cost grows with the number of windows. Writes
its tables to docs/performance.md (block 'worker-loop') unless --no-doc.

With `--baseline REV` it instead compares this tree with git revision REV in one run: REV is checked out into a
temporary worktree, and each round runs both trees' own `run()` (each in a fresh process, alternating which goes
first) on the same bundle; the medians and their ratio go to the block 'worker-loop-baseline'.
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

from detector.config import BatchConfig, Config, EventsConfig, InputConfig, TopicsConfig, WorkerConfig
from detector.kafka.seams import DoneCallback, InputMessage, OutputRecord
from detector.model.bundle import ModelBundle
from detector.model.scoring import BatchScorer, Scorer
from detector.model.serving import ModelIdentity, ServingModel
from detector.ops.health import Health
from detector.ops.metrics import WorkerMetrics
from detector.pipeline.assembly import build_worker
from detector.testing import MemorySink, MemorySource
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
                    worker=WorkerConfig(max_poll_records=4000, commit_interval_ms=1000),
                    events=EventsConfig(mode="windows"))
    model = ServingModel(ModelIdentity(bundle.name, bundle.version),
                         BatchScorer(Scorer(bundle.build_model(), bundle.scaler, bundle.window), 1024, 10),
                         bundle.threshold, bundle.window)
    worker = build_worker(config=config, source=source, sink=AckingSink(), model=model,
                          metrics=WorkerMetrics(CollectorRegistry()), health=Health())
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


CHILD = """
import json, sys
sys.path.insert(0, "benchmarks")
try:
    from detector.model.bundle import ModelBundle
except ImportError:  # a revision from before the detector/model package
    from detector.bundle import ModelBundle
import worker_loop
bundle = ModelBundle.load(sys.argv[1])
print(json.dumps({fmt: worker_loop.run(bundle, fmt, int(sys.argv[2]), True) for fmt in sys.argv[3].split(",")}))
"""


def compare(baseline: str, windows: int, formats: str, rounds: int, no_doc: bool) -> None:
    """This tree against `baseline`, each tree measured by its own code in alternating fresh processes."""
    import json
    import os
    import statistics
    import subprocess
    import sys

    here = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(here), "worktree", "add", "--detach", "-q", str(old), baseline], check=True)
        try:
            bundle = train_sample_bundle(Path(tmp) / "bundle")
            rates: dict[str, dict[str, list[float]]] = {"this tree": {}, baseline: {}}
            for i in range(rounds):
                order = [("this tree", here), (baseline, old)]
                for name, tree in order if i % 2 == 0 else reversed(order):
                    out = subprocess.run([sys.executable, "-c", CHILD, str(bundle), str(windows), formats], cwd=tree,
                                         env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True,
                                         text=True, check=True)
                    for fmt, rate in json.loads(out.stdout.strip().splitlines()[-1]).items():
                        rates[name].setdefault(fmt, []).append(rate)
                print(f"round {i + 1}/{rounds}: " + ", ".join(f"{n} {f} {r[f][-1]:,.0f}" for n, r in rates.items()
                                                             for f in r), flush=True)
        finally:
            subprocess.run(["git", "-C", str(here), "worktree", "remove", "--force", str(old)], check=False)
    report = Report("worker-loop-baseline")
    report.line(f"The worker loop alone ({windows:,} windows, in-memory source and sink, CPU scoring, all-scores mode, "
                f"gc.freeze), this tree against `{baseline}`: median (min–max) windows/s over {rounds} rounds, each "
                "tree in a fresh process, alternating which runs first.")
    report.line()
    rows = []
    for fmt in formats.split(","):
        new, base = rates["this tree"][fmt], rates[baseline][fmt]
        rows.append([fmt, f"{statistics.median(new):,.0f} ({min(new):,.0f}–{max(new):,.0f})",
                     f"{statistics.median(base):,.0f} ({min(base):,.0f}–{max(base):,.0f})",
                     f"{statistics.median(new) / statistics.median(base):.3f}"])
    report.table(["format", "this tree", baseline, "ratio"], rows)
    if not no_doc:
        report.save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=100_000)
    parser.add_argument("--formats", default="json,f32")
    parser.add_argument("--counts", default="10000,50000,200000", help="window counts for the growth table (f32)")
    parser.add_argument("--baseline", help="git revision to compare this tree with (see above)")
    parser.add_argument("--rounds", type=int, default=5, help="with --baseline: rounds of both trees")
    add_doc_option(parser)
    args = parser.parse_args()
    if args.baseline:
        compare(args.baseline, args.windows, args.formats, args.rounds, args.no_doc)
        return
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
