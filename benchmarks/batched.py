"""Batched window messages against per-window messages, end to end with the real broker, in one run.

    python benchmarks/batched.py [--windows 300000] [--rows 500] [--client confluent] [--no-doc]

Two topics hold the same N windows: one f32 window per message, and Arrow batches of `--rows` windows per message
(docs/formats.md, `tsad replay --format batch`). Measured in the same run, one worker process each (16 sources):
  (a) a bare consumer of the worker's client reading the per-window topic (its ceiling),
  (a') the same bare consumer (confluent) reading the batched topic, with the worker's fetch size: what the broker
      and the client deliver of batched messages on this machine, in windows/s (the batched runs' ceiling),
  (b) the worker on per-window f32 messages, all-scores mode (a JSON score record per window),
  (b') the same, events only (episodes; no score records): what per-window input could reach at best if its
      scores left in batches (the per-message input side alone),
  (c) the worker on batched messages, events-only (episodes, the default events mode; no score records),
  (c') the same with `events.mode: windows` (an event per anomalous window),
  (d) the worker on batched messages, all-scores mode with one Arrow score record per input message.
A worker run is timed from its first consumed message until every window is scored and nothing is in flight
(every output acknowledged, offsets committable). Prints a Markdown table with the ratios; writes it to
docs/performance.md (block 'batched') unless --no-doc.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Producer
from harness import WorkerProcess, train_sample_bundle, wait_for
from perfdoc import Report, add_doc_option
from throughput import bare_confluent_consumer, bare_consumer, prefill, say

from detector.wire.batch import encode_batch
from sample_streams.generator import generate
from sample_streams.local_kafka import LocalKafka
from sample_streams.topics import ensure_topics

SOURCES = 16


def prefill_batches(bootstrap: str, topic: str, n: int, rows: int) -> int:
    """n windows in messages of `rows` windows, one source per message (the source is the key); returns messages."""
    ensure_topics(bootstrap, {topic: 1})
    producer = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 20, "message.max.bytes": 16 << 20})
    pool = np.asarray([r.values for r in generate(min(n, 5000), kind="ecg", seed=1)], np.float32)
    messages, sent, t = 0, 0, 0.0
    while sent < n:
        k = min(rows, n - sent)
        source = f"ecg-{messages % SOURCES:02d}"
        take = np.take(pool, np.arange(sent, sent + k) % len(pool), axis=0)
        ids = [f"w{sent + i}" for i in range(k)]
        value = encode_batch(take, ids, [source] * k, [t + i for i in range(k)])
        producer.produce(topic, value, source.encode())
        producer.poll(0)
        sent, t, messages = sent + k, t + k, messages + 1
    producer.flush(120)
    return messages


def worker_windows_per_s(tmp: Path, bootstrap: str, bundle: Path, topic: str, n: int, fmt: str, client: str,
                         scores: bool, scores_format: str = "json", events_mode: str = "episodes") -> float:
    tag = uuid.uuid4().hex[:6]
    topics: dict[str, str | None] = {"input": topic, "events": f"ev-{tag}", "dead_letter": f"dlq-{tag}",
                                     "scores": f"sc-{tag}" if scores else None}
    ensure_topics(bootstrap, {f"ev-{tag}": 1, f"dlq-{tag}": 1, **({f"sc-{tag}": 1} if scores else {})})
    sections: dict[str, Any] = {
        "input": {"format": fmt}, "kafka": {"client": client},
        "events": {"scores_format": scores_format, "mode": events_mode},
        "batch": {"max_size": 8192 if fmt == "batch" else 1024, "max_wait_ms": 20, "max_in_flight": 65536},
        "worker": {"max_poll_records": 4000 if fmt != "batch" else 64, "commit_interval_ms": 1000,
                   "lag_interval_s": 5.0}}
    w = WorkerProcess(tmp, bootstrap, bundle, topics, f"bench-{tag}", f"{fmt}-{scores_format}-{tag}", **sections)
    w.start()
    try:
        wait_for(lambda: w.metric("tsad_windows_consumed_total") > 0, 120, "the worker to start consuming", 0.02)
        start = time.perf_counter()
        wait_for(lambda: w.metric("tsad_windows_scored_total") >= n and w.metric("tsad_windows_in_flight") == 0,
                 600, "every window scored and safe", 0.05)
        seconds = time.perf_counter() - start
        assert w.terminate() == 0, f"worker exited uncleanly; see {w.log_path}"
    finally:
        w.kill()
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=300_000)
    parser.add_argument("--rows", type=int, default=500, help="windows per batched message")
    parser.add_argument("--client", default="confluent", choices=["confluent", "kafka-python"])
    add_doc_option(parser)
    args = parser.parse_args()
    n = args.windows
    report = Report("batched")
    with tempfile.TemporaryDirectory() as tmp_name, LocalKafka() as kafka:
        tmp = Path(tmp_name)
        bundle = train_sample_bundle(tmp / "bundle")
        single, batched = f"one-{uuid.uuid4().hex[:6]}", f"many-{uuid.uuid4().hex[:6]}"
        say(f"pre-filling {n:,} windows, one per message and {args.rows} per message ...")
        prefill(kafka.bootstrap, single, n, "f32")
        messages = prefill_batches(kafka.bootstrap, batched, n, args.rows)
        say("bare consumer ...")
        bare = (bare_confluent_consumer if args.client == "confluent" else bare_consumer)(kafka.bootstrap, single, n)
        # fetching as the worker does (8 MiB per partition), a few messages per call
        bare_batched = bare_confluent_consumer(kafka.bootstrap, batched, messages,
                                               {"max.partition.fetch.bytes": 8 << 20}, 8) * n / messages
        say("worker, per-window f32, all scores ...")
        per_window = worker_windows_per_s(tmp, kafka.bootstrap, bundle, single, n, "f32", args.client, True)
        say("worker, per-window f32, events only ...")
        per_window_events = worker_windows_per_s(tmp, kafka.bootstrap, bundle, single, n, "f32", args.client, False)
        say("worker, batched, events only ...")
        events_only = worker_windows_per_s(tmp, kafka.bootstrap, bundle, batched, n, "batch", args.client, False)
        say("worker, batched, events only, an event per anomalous window ...")
        window_events = worker_windows_per_s(tmp, kafka.bootstrap, bundle, batched, n, "batch", args.client, False,
                                             events_mode="windows")
        say("worker, batched, all scores (Arrow per message) ...")
        arrow = worker_windows_per_s(tmp, kafka.bootstrap, bundle, batched, n, "batch", args.client, True, "arrow")
    report.line(f"Batched input, {n:,} windows ({messages:,} batched messages of up to {args.rows} windows), "
                f"{args.client} client, one worker process, windows/s:")
    report.line()
    report.table(["run", "windows/s", "vs bare consumer (per-window topic)", "vs per-window worker"],
                 [["(a) bare consumer, per-window f32 messages", f"{bare:,.0f}", "1.00", ""],
                  ["(a') bare consumer, batched messages (windows/s)", f"{bare_batched:,.0f}",
                   f"{bare_batched / bare:.2f}", ""],
                  ["(b) worker, per-window f32, all scores (JSON)", f"{per_window:,.0f}", f"{per_window / bare:.2f}",
                   "1.00"],
                  ["(b') worker, per-window f32, events only (episodes)", f"{per_window_events:,.0f}",
                   f"{per_window_events / bare:.2f}", f"{per_window_events / per_window:.2f}"],
                  ["(c) worker, batched, events only (episodes)", f"{events_only:,.0f}",
                   f"{events_only / bare:.2f}", f"{events_only / per_window:.2f}"],
                  ["(c') worker, batched, events only (an event per anomalous window)", f"{window_events:,.0f}",
                   f"{window_events / bare:.2f}", f"{window_events / per_window:.2f}"],
                  ["(d) worker, batched, all scores (Arrow per message)", f"{arrow:,.0f}", f"{arrow / bare:.2f}",
                   f"{arrow / per_window:.2f}"]])
    if not args.no_doc:
        report.save()


if __name__ == "__main__":
    main()
