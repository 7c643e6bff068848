"""Latency at a fixed offered load, repeated: `--runs` runs of `--repeats` measurements per input format, each
measurement a fresh worker process on a fresh topic (input Kafka timestamp to the score record reaching a live
downstream consumer; with batched input, a message's last score record). The clock starts once one probe message
(left out of the figures) has come through: load generator, worker and downstream consumer all connected.

    python benchmarks/latency.py [--rate 10000] [--seconds 10] [--formats f32,json,batch,batch-arrow] [--rows 100]
                                 [--runs 3] [--repeats 3] [--client confluent]

Each run starts its own broker (a run is a cold start, as in CI); a discarded warm-up measurement opens each run.
Prints one row per measurement and the worst p99 per format; writes the table to docs/performance.md (block
'latency') unless --no-doc.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from harness import train_sample_bundle
from perfdoc import Report, add_doc_option
from throughput import latency, say

from sample_streams.local_kafka import LocalKafka


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=10_000.0, help="windows per second offered")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--formats", default="f32,json,batch,batch-arrow",
                        help="batch-arrow: batched input with events.scores_format arrow (a score record per message)")
    parser.add_argument("--rows", type=int, default=100, help="windows per batched message")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--client", default="confluent", choices=["confluent", "kafka-python"])
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--linger-ms", type=int, default=5)
    add_doc_option(parser)
    args = parser.parse_args()
    formats = args.formats.split(",")
    rows: list[list[str]] = []
    worst: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bundle = train_sample_bundle(tmp / "bundle")
        for run in range(1, args.runs + 1):
            with LocalKafka(work_dir=tmp / f"kafka-{run}") as kafka:
                say(f"run {run}: warm-up (discarded) ...")
                latency(tmp, kafka.bootstrap, bundle, args.rate, 5.0, client=args.client,
                        max_wait_ms=args.max_wait_ms, linger_ms=args.linger_ms)
                for fmt in formats:
                    for repeat in range(1, args.repeats + 1):
                        r = latency(tmp, kafka.bootstrap, bundle, args.rate, args.seconds, fmt=fmt.split("-")[0],
                                    client=args.client, max_wait_ms=args.max_wait_ms, linger_ms=args.linger_ms,
                                    rows=args.rows, scores_format="arrow" if fmt == "batch-arrow" else "json")
                        label = {"batch": f"batch ({args.rows} windows/message), JSON scores",
                                 "batch-arrow": f"batch ({args.rows} windows/message), Arrow scores"}.get(fmt, fmt)
                        rows.append([str(run), str(repeat), label, f"{r['achieved']:,.0f}", str(r["n"]),
                                     f"{r['p50']:.0f}", f"{r['p95']:.0f}", f"{r['p99']:.0f}", f"{r['max']:.0f}",
                                     f"{r['p99_after_1s']:.0f}"])
                        worst[label] = max(worst.get(label, 0.0), float(r["p99"]))
                        say(" | ".join(rows[-1]))
    report = Report("latency")
    report.line(f"Latency at {args.rate:,.0f} windows/s offered for {args.seconds:g} s, {args.client}, "
                f"at-least-once, all-scores mode, batch max_wait {args.max_wait_ms:g} ms, producer linger "
                f"{args.linger_ms} ms; {args.runs} runs (each on a fresh broker) of {args.repeats}, each timed from "
                "after a probe message came through (ms; 'messages' counts input messages seen downstream):")
    report.line()
    report.table(["run", "repeat", "input", "achieved windows/s", "messages", "p50", "p95", "p99", "max",
                  "p99 after the first second"], rows)
    report.line()
    report.line("Worst p99 per input: " + ", ".join(f"{k} {v:.0f} ms" for k, v in worst.items()))
    if not args.no_doc:
        report.save()


if __name__ == "__main__":
    main()
