"""End-to-end throughput and latency against the real broker on this machine.

    python benchmarks/throughput.py [--windows 200000] [--formats json,f32] [--latency-rates 1000,10000]

For each window format, a topic is pre-filled with N windows, then measured in the same run:
  (a) a bare kafka-python consumer that reads and discards the topic (the client's ceiling),
  (b) the detector worker (a separate process, all-scores mode, events published, offsets committed),
  (c) the naive loop a user writes first: consume one message, score it, produce one event, wait, commit.
Then latency at fixed offered loads: input Kafka timestamp to the output record's Kafka timestamp (set when the
worker sends it), from a replay at the given rate. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from harness import WorkerProcess, read_topic, train_sample_bundle, wait_for
from kafka import KafkaConsumer, KafkaProducer

from detector.bundle import ModelBundle
from detector.scoring import Scorer
from detector.window_format import WindowDecoder
from sample_streams.generator import generate
from sample_streams.local_kafka import LocalKafka
from sample_streams.replay import encode, replay
from sample_streams.topics import ensure_topics


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def prefill(bootstrap: str, topic: str, n: int, fmt: str, partitions: int = 1) -> float:
    ensure_topics(bootstrap, {topic: partitions})
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=512 * 1024)
    # A few thousand distinct windows repeated: generation would otherwise dominate the set-up time.
    pool = [encode(r, fmt) for r in generate(min(n, 5000), kind="ecg", seed=1)]
    start = time.perf_counter()
    for i in range(n):
        value, headers = pool[i % len(pool)]
        producer.send(topic, value=value, key=b"ecg-%02d" % (i % 16), headers=headers or None)
    producer.flush()
    producer.close()
    return n / (time.perf_counter() - start)


def bare_consumer(bootstrap: str, topic: str, n: int) -> float:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"bare-{uuid.uuid4().hex[:6]}",
                             auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=2000,
                             fetch_max_wait_ms=100)
    seen, start = 0, None
    while seen < n:
        batches = consumer.poll(timeout_ms=1000, max_records=2000)
        if batches and start is None:
            start = time.perf_counter()
        seen += sum(len(b) for b in batches.values())
    assert start is not None
    seconds = time.perf_counter() - start
    consumer.close()
    return n / seconds


def worker_run(tmp: Path, bootstrap: str, bundle: Path, topic: str, n: int, fmt: str,
               batch: dict[str, object] | None = None, name: str = "bench", exactly_once: bool = False) -> float:
    tag = uuid.uuid4().hex[:6]
    topics: dict[str, str | None] = {"input": topic, "events": f"ev-{tag}", "dead_letter": f"dlq-{tag}",
                                     "scores": f"sc-{tag}"}
    ensure_topics(bootstrap, {f"ev-{tag}": 1, f"dlq-{tag}": 1, f"sc-{tag}": 1})
    w = WorkerProcess(tmp, bootstrap, bundle, topics, f"bench-{tag}", name, input={"format": fmt},
                      kafka={"exactly_once": exactly_once},
                      batch=batch or {"max_size": 1024, "max_wait_ms": 20, "max_in_flight": 16384},
                      worker={"max_poll_records": 4000, "commit_interval_ms": 1000, "lag_interval_s": 5.0})
    w.start()
    try:
        wait_for(lambda: w.metric("tsad_windows_consumed_total") > 0, 120, "the worker to start consuming", 0.05)
        start = time.perf_counter()
        wait_for(lambda: w.metric("tsad_events_published_total", kind="score") >= n, 600, "every score", 0.2)
        seconds = time.perf_counter() - start
        assert w.terminate() == 0
    finally:
        w.kill()
    return n / seconds


def naive_loop(bootstrap: str, topic: str, bundle_path: Path, n: int, fmt: str) -> float:
    """What a user writes first: one message at a time, wait for the event's ack, commit synchronously."""
    bundle = ModelBundle.load(bundle_path)
    scorer = Scorer(bundle.build_model(), bundle.scaler, bundle.window)
    decoder = WindowDecoder(bundle.window, fmt)
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"naive-{uuid.uuid4().hex[:6]}",
                             auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=1)
    out_topic = f"naive-out-{uuid.uuid4().hex[:6]}"
    ensure_topics(bootstrap, {out_topic: 1})
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    done, start = 0, None
    while done < n:
        for records in consumer.poll(timeout_ms=1000, max_records=1).values():
            for r in records:
                start = start or time.perf_counter()
                window = decoder.decode(r.value)
                score = float(scorer.score(window.values[None, :]).scores[0])
                producer.send(out_topic, json.dumps({"offset": r.offset, "score": score}).encode()).get(30)
                consumer.commit()
                done += 1
    assert start is not None
    seconds = time.perf_counter() - start
    consumer.close()
    producer.close()
    return n / seconds


def latency(tmp: Path, bootstrap: str, bundle: Path, rate: float, seconds: float, fmt: str = "json",
            exactly_once: bool = False) -> dict[str, float]:
    """Offered load `rate` for `seconds`; a live downstream consumer (read_committed for exactly-once) measures
    when each window's score record becomes visible, against the input's Kafka timestamp."""
    tag = uuid.uuid4().hex[:6]
    topics: dict[str, str | None] = {"input": f"lat-in-{tag}", "events": f"lat-ev-{tag}",
                                     "dead_letter": f"lat-dlq-{tag}", "scores": f"lat-sc-{tag}"}
    ensure_topics(bootstrap, {str(t): 1 for t in topics.values()})
    w = WorkerProcess(tmp, bootstrap, bundle, topics, f"lat-{tag}", f"lat{int(rate)}{tag}", input={"format": fmt},
                      kafka={"exactly_once": exactly_once},
                      batch={"max_size": 1024, "max_wait_ms": 10, "max_in_flight": 16384})
    n = int(rate * seconds)
    seen: dict[int, float] = {}
    stop = threading.Event()

    def watch() -> None:
        consumer = KafkaConsumer(str(topics["scores"]), bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                 fetch_max_wait_ms=5, isolation_level="read_committed" if exactly_once
                                 else "read_uncommitted")
        while not stop.is_set() and len(seen) < n:
            for records in consumer.poll(timeout_ms=100).values():
                now = time.time() * 1000
                for m in records:
                    seen.setdefault(json.loads(m.value)["input"]["offset"], now)
        consumer.close()

    w.start()
    watcher = threading.Thread(target=watch, daemon=True)
    try:
        w.wait_ready()
        watcher.start()
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)
        stats = replay(generate(n, kind="ecg", seed=3), producer, str(topics["input"]), fmt, rate)
        producer.close()
        watcher.join(timeout=120)
        inputs = {m.offset: m.timestamp for m in read_topic(bootstrap, str(topics["input"]), n, timeout=60)}
        assert w.terminate() == 0
    finally:
        stop.set()
        w.kill()
    lat = sorted(at - inputs[offset] for offset, at in seen.items())
    return {"offered": rate, "achieved": stats.rate, "n": len(lat), "mode": exactly_once,
            "p50": _q(lat, 0.50), "p95": _q(lat, 0.95), "p99": _q(lat, 0.99), "max": float(lat[-1])}


def _q(values: list[float], q: float) -> float:
    return float(np.quantile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=200_000)
    parser.add_argument("--naive-windows", type=int, default=1000)
    parser.add_argument("--formats", default="json,f32")
    parser.add_argument("--latency-rates", default="1000,10000")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--exactly-once", action="store_true", help="also time the worker in exactly-once mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name, LocalKafka() as kafka:
        tmp = Path(tmp_name)
        bundle = train_sample_bundle(tmp / "bundle")
        rows = []
        for fmt in args.formats.split(","):
            topic = f"bench-{fmt}-{uuid.uuid4().hex[:6]}"
            say(f"[{fmt}] pre-filling {args.windows} windows ...")
            produce_rate = prefill(kafka.bootstrap, topic, args.windows, fmt)
            say(f"[{fmt}] bare consumer ...")
            a = bare_consumer(kafka.bootstrap, topic, args.windows)
            say(f"[{fmt}] worker ...")
            b = worker_run(tmp, kafka.bootstrap, bundle, topic, args.windows, fmt)
            eos = None
            if args.exactly_once:
                say(f"[{fmt}] worker, exactly-once ...")
                eos = worker_run(tmp, kafka.bootstrap, bundle, topic, args.windows, fmt, name="eos",
                                 exactly_once=True)
            say(f"[{fmt}] naive loop ({args.naive_windows} windows) ...")
            c = naive_loop(kafka.bootstrap, topic, bundle, args.naive_windows, fmt)
            rows.append((fmt, produce_rate, a, b, c, eos))
        print(f"\nEnd-to-end throughput, {args.windows} windows per format (windows/s):\n")
        print("| format | bare consumer (a) | worker (b) | naive loop (c) | b/a | b/c |")
        print("| --- | --- | --- | --- | --- | --- |")
        for fmt, _, a, b, c, _ in rows:
            print(f"| {fmt} | {a:,.0f} | {b:,.0f} | {c:,.0f} | {b / a:.2f} | {b / c:.0f} |")
        latencies = []
        for rate in [float(r) for r in args.latency_rates.split(",") if r]:
            for eos in ([False, True] if args.exactly_once else [False]):
                say(f"latency at {rate:.0f}/s{' (exactly-once)' if eos else ''} ...")
                latencies.append(latency(tmp, kafka.bootstrap, bundle, rate, args.latency_seconds, exactly_once=eos))
        if latencies:
            print("\nLatency, input Kafka timestamp to the score record reaching a downstream consumer (ms), json, "
                  "max_wait 10 ms:\n")
            print("| mode | offered /s | achieved /s | windows | p50 | p95 | p99 | max |")
            print("| --- | --- | --- | --- | --- | --- | --- | --- |")
            for r in latencies:
                mode = "exactly-once (read_committed)" if r["mode"] else "at-least-once"
                print(f"| {mode} | {r['offered']:,.0f} | {r['achieved']:,.0f} | {r['n']} | {r['p50']:.0f} | "
                      f"{r['p95']:.0f} | {r['p99']:.0f} | {r['max']:.0f} |")
        if args.exactly_once:
            print("\nExactly-once vs at-least-once worker throughput (windows/s):\n")
            print("| format | at-least-once | exactly-once | ratio |\n| --- | --- | --- | --- |")
            for fmt, _, _, b, _, eos in rows:
                assert eos is not None
                print(f"| {fmt} | {b:,.0f} | {eos:,.0f} | {eos / b:.2f} |")


if __name__ == "__main__":
    main()
