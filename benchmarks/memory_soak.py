"""Worker memory at steady load: RSS sampled over a long run against the real broker.

    python benchmarks/memory_soak.py [--minutes 10] [--rate 2000] [--format json] [--client kafka-python]

Prints RSS at start and end, the least-squares slope (MiB per minute) over the run, and the sample table, and
writes them to docs/performance.md (block 'memory-<client>') unless --no-doc.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from harness import WorkerProcess, train_sample_bundle
from kafka import KafkaProducer
from perfdoc import Report, add_client_option, add_doc_option

from sample_streams.generator import generate
from sample_streams.local_kafka import LocalKafka
from sample_streams.replay import replay
from sample_streams.topics import ensure_topics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--format", default="json")
    parser.add_argument("--interval", type=float, default=10.0)
    add_client_option(parser)
    add_doc_option(parser)
    args = parser.parse_args()
    report = Report(f"memory-{args.client}")
    with tempfile.TemporaryDirectory() as tmp_name, LocalKafka() as kafka:
        tmp = Path(tmp_name)
        bundle = train_sample_bundle(tmp / "bundle")
        tag = uuid.uuid4().hex[:6]
        topics: dict[str, str | None] = {"input": f"soak-{tag}", "events": f"ev-{tag}", "dead_letter": f"dlq-{tag}",
                                         "scores": f"sc-{tag}"}
        ensure_topics(kafka.bootstrap, {str(t): 2 if t == topics["input"] else 1 for t in topics.values()})
        w = WorkerProcess(tmp, kafka.bootstrap, bundle, topics, f"soak-{tag}", "soak",
                          input={"format": args.format}, kafka={"client": args.client}).start()
        w.wait_ready()
        n = int(args.rate * args.minutes * 60)
        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks=1, linger_ms=5)
        feeder = threading.Thread(target=replay, args=(generate(n, kind="mixed", seed=9), producer,
                                                       str(topics["input"]), args.format, args.rate), daemon=True)
        start = time.monotonic()
        feeder.start()
        samples: list[tuple[float, float, float]] = []
        while feeder.is_alive():
            samples.append(((time.monotonic() - start) / 60, w.rss_bytes() / 2**20,
                            w.metric("tsad_windows_scored_total")))
            time.sleep(args.interval)
        producer.close()
        scored = w.metric("tsad_windows_scored_total")
        w.terminate()
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples])
    warm = t >= 1.0  # the first minute includes allocator and fetch-buffer growth
    slope = float(np.polyfit(t[warm], rss[warm], 1)[0]) if warm.sum() >= 3 else float("nan")
    report.line(f"{args.minutes:.0f} min at {args.rate:.0f} windows/s ({args.format}, {args.client}, all-scores "
                f"mode): {scored:.0f} windows scored")
    report.line(f"RSS start {rss[0]:.0f} MiB, after 1 min {rss[warm][0]:.0f} MiB, end {rss[-1]:.0f} MiB, "
                f"max {rss.max():.0f} MiB; slope after the first minute {slope:+.2f} MiB/min")
    report.line()
    shown = samples[:: max(1, len(samples) // 20)]
    report.table(["minute", "RSS MiB", "windows scored"],
                 [[f"{m:.1f}", f"{mib:.0f}", f"{count:.0f}"] for m, mib, count in shown])
    if not args.no_doc:
        report.save()


if __name__ == "__main__":
    main()
