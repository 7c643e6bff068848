"""End-to-end throughput and latency against the real broker on this machine, for both Kafka client backends.

    python benchmarks/throughput.py [--windows 200000] [--formats json,f32] [--clients kafka-python,confluent]
                                    [--latency-rates 1000,10000] [--exactly-once] [--no-doc]

For each window format, a topic is pre-filled with N windows, then measured in the same run:
  (a) a bare kafka-python consumer that reads and discards the topic (the issue's ceiling), and a bare
      confluent-kafka consumer for reference,
  (b) the detector worker with each client (a separate process, all-scores mode, events published, offsets
      committed),
  (c) the naive loop a user writes first: consume one message, score it, produce one event, wait, commit.
Then latency at fixed offered loads: input Kafka timestamp to the moment the window's score record reaches a live
downstream consumer, from a paced librdkafka producer (pre-encoded payloads, so 10k/s can be offered here).
Prints Markdown tables and writes them to docs/performance.md (block 'throughput') unless --no-doc.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Consumer, Producer
from harness import WorkerProcess, read_topic, train_sample_bundle, wait_for
from kafka import KafkaConsumer, KafkaProducer
from perfdoc import CLIENTS, Report, add_doc_option

from detector.kafka.settings import FETCH_QUEUE_BACKOFF_MS
from detector.model.bundle import ModelBundle
from detector.model.scoring import Scorer
from detector.wire.score_batch import decode_scores
from detector.wire.windows import WindowDecoder
from sample_streams.generator import generate
from sample_streams.local_kafka import LocalKafka
from sample_streams.replay import encode, messages
from sample_streams.topics import ensure_topics


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def prefill(bootstrap: str, topic: str, n: int, fmt: str, partitions: int = 1) -> float:
    """Fill `topic` with n windows as fast as librdkafka can send them; returns the rate."""
    ensure_topics(bootstrap, {topic: partitions})
    producer = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 20,
                         "queue.buffering.max.messages": 1_000_000})
    # A few thousand distinct windows repeated: generation would otherwise dominate the set-up time.
    pool: list[tuple[bytes, Any]] = [encode(r, fmt) for r in generate(min(n, 5000), kind="ecg", seed=1)]
    start = time.perf_counter()
    for i in range(n):
        value, headers = pool[i % len(pool)]
        producer.produce(topic, value, b"ecg-%02d" % (i % 16), headers=headers or None)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)
    return n / (time.perf_counter() - start)


def bare_confluent_consumer(bootstrap: str, topic: str, n: int, extra: dict[str, Any] | None = None,
                            per_call: int = 4000) -> float:
    """Messages/s of a librdkafka consumer that reads n messages and does nothing with them (`extra` settings);
    its fetch queue is refilled as the worker's is (fetch.queue.backoff.ms)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bare-ck-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "fetch.queue.backoff.ms": FETCH_QUEUE_BACKOFF_MS, **(extra or {})})
    consumer.subscribe([topic])
    seen, first, start = 0, 0, None
    while seen < n:
        messages = consumer.consume(per_call, 1.0)
        got = sum(1 for m in messages if m.error() is None)
        if got and start is None:  # timed from the first messages on; those came before the clock started
            start, first = time.perf_counter(), got
        seen += got
    assert start is not None and n > first, "too few messages to time: all came in the first call"
    seconds = time.perf_counter() - start
    consumer.close()
    return (n - first) / seconds


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
               batch: dict[str, object] | None = None, name: str = "bench", exactly_once: bool = False,
               client: str = "kafka-python") -> float:
    tag = uuid.uuid4().hex[:6]
    topics: dict[str, str | None] = {"input": topic, "events": f"ev-{tag}", "dead_letter": f"dlq-{tag}",
                                     "scores": f"sc-{tag}"}
    ensure_topics(bootstrap, {f"ev-{tag}": 1, f"dlq-{tag}": 1, f"sc-{tag}": 1})
    w = WorkerProcess(tmp, bootstrap, bundle, topics, f"bench-{tag}", name, input={"format": fmt},
                      kafka={"exactly_once": exactly_once, "client": client},
                      batch=batch or {"max_size": 1024, "max_wait_ms": 20, "max_in_flight": 16384},
                      worker={"max_poll_records": 4000, "commit_interval_ms": 1000, "lag_interval_s": 5.0})
    w.start()
    try:
        wait_for(lambda: w.metric("tsad_windows_consumed_total") > 0, 120, "the worker to start consuming", 0.05)
        start = time.perf_counter()
        wait_for(lambda: w.metric("tsad_records_published_total", kind="score") >= n, 600, "every score", 0.2)
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


def paced_send(bootstrap: str, topic: str, payloads: list[tuple[bytes, list, bytes]], rate: float,
               came_through: Callable[[], bool] | None = None) -> float:
    """Send pre-encoded (value, headers, key) at `rate` per second from a librdkafka producer; returns the rate
    achieved (message i leaves at start + i / rate). With `came_through`, the first payload is first sent alone as a
    probe, and the clock starts once `came_through()` says it came out the other end."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "acks": 1})
    if came_through is not None:
        # Every link of the path connected and fetching before the clock starts: a fresh producer holds its first
        # records while it connects and fetches metadata, a fresh consumer while it joins and looks up its offsets
        # (50-100 ms here), and at 100 batched messages a second the first 10 messages are the p99
        value, headers, key = payloads[0]
        producer.produce(topic, value, key, headers=headers or None)
        producer.flush(30)
        deadline = time.monotonic() + 60
        while not came_through():
            if time.monotonic() > deadline:
                raise AssertionError("the probe message did not come through the worker within 60 s")
            time.sleep(0.005)
    start = time.monotonic()
    for i, (value, headers, key) in enumerate(payloads):
        delay = start + i / rate - time.monotonic()
        if delay > 0.0005:
            time.sleep(delay)
        producer.produce(topic, value, key, headers=headers or None)
        if i % 500 == 0:
            producer.poll(0)
    seconds = time.monotonic() - start
    producer.flush(60)
    return len(payloads) / seconds


def latency(tmp: Path, bootstrap: str, bundle: Path, rate: float, seconds: float, fmt: str = "json",
            exactly_once: bool = False, client: str = "kafka-python", max_wait_ms: float = 10.0,
            linger_ms: int = 5, rows: int = 100, scores_format: str = "json") -> dict[str, float | str]:
    """Offered load `rate` windows/s for `seconds`; a live downstream consumer (read_committed for exactly-once)
    records when each window's score record becomes visible, against the input's Kafka timestamp. With fmt 'batch'
    a message carries `rows` windows and its latency is that of its *last* score record (with `scores_format`
    arrow, of its one score record). The clock starts once a probe message has come through (paced_send)."""
    tag = uuid.uuid4().hex[:6]
    topics: dict[str, str | None] = {"input": f"lat-in-{tag}", "events": f"lat-ev-{tag}",
                                     "dead_letter": f"lat-dlq-{tag}", "scores": f"lat-sc-{tag}"}
    ensure_topics(bootstrap, {str(t): 1 for t in topics.values()})
    w = WorkerProcess(tmp, bootstrap, bundle, topics, f"lat-{tag}", f"lat{int(rate)}{tag}", input={"format": fmt},
                      events={"scores_format": scores_format},
                      kafka={"exactly_once": exactly_once, "client": client, "linger_ms": linger_ms},
                      batch={"max_size": 1024, "max_wait_ms": max_wait_ms, "max_in_flight": 16384})
    per_message = rows if fmt == "batch" else 1
    n = int(rate * seconds) // per_message  # messages
    records = generate(min(n * per_message, 5000), kind="ecg", seed=3)
    payloads = [(value, headers, key or b"") for value, key, headers, _ in messages(records, fmt, per_message)]
    payloads = [payloads[i % len(payloads)] for i in range(n)]
    seen: dict[int, float] = {}
    stop = threading.Event()
    subscribed = threading.Event()

    def watch() -> None:
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"watch-{tag}",
                             "auto.offset.reset": "earliest", "fetch.wait.max.ms": 5,
                             "isolation.level": "read_committed" if exactly_once else "read_uncommitted"})
        consumer.subscribe([str(topics["scores"])], on_assign=lambda *_: subscribed.set())
        # stops once every input message (and the probe) has a time: the last batched messages may be timed at an
        # early record
        while not stop.is_set() and len(seen) < n + 1:
            first = consumer.poll(0.1)  # as soon as one arrives (consume(n, t) would wait for n or t)
            got = [first, *consumer.consume(1000, 0)] if first is not None else []
            now = time.time() * 1000
            for m in got:
                value = m.value()
                if m.error() is None and value is not None:  # a batched message's last window counts
                    seen[_input_offset(value)] = now
        consumer.close()

    w.start()
    watcher = threading.Thread(target=watch, daemon=True)
    try:
        w.wait_ready()
        watcher.start()
        subscribed.wait(30)
        achieved = paced_send(bootstrap, str(topics["input"]), payloads, rate / per_message,
                              came_through=lambda: 0 in seen) * per_message
        watcher.join(timeout=120)
        # offset 0 is the probe that opened the path (paced_send), not part of the measurement
        inputs = {m.offset: m.timestamp for m in read_topic(bootstrap, str(topics["input"]), n + 1, timeout=60)
                  if m.offset > 0}
        seen.pop(0, None)
        assert w.terminate() == 0
    finally:
        stop.set()
        w.kill()
    lat = sorted(at - inputs[offset] for offset, at in seen.items())
    first = min(inputs.values())  # the first second: a fresh worker's first batches and the client's first fetches
    steady = sorted(at - inputs[offset] for offset, at in seen.items() if inputs[offset] >= first + 1000)
    return {"offered": rate, "achieved": achieved, "n": len(lat), "client": client,
            "mode": "exactly-once (read_committed)" if exactly_once else "at-least-once",
            "p50": _q(lat, 0.50), "p95": _q(lat, 0.95), "p99": _q(lat, 0.99), "max": float(lat[-1]),
            "p99_after_1s": _q(steady, 0.99) if steady else float("nan")}


def _input_offset(score_record: bytes) -> int:
    """The input offset a score record answers: JSON (one window), or Arrow (one message; ids end -offset-row)."""
    if score_record[:4] == b"\xff\xff\xff\xff":  # an Arrow IPC stream
        return int(str(decode_scores(score_record).column("id")[0]).rsplit("-", 2)[1])
    return int(orjson.loads(score_record)["input"]["offset"])


def _q(values: list[float], q: float) -> float:
    return float(np.quantile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=200_000)
    parser.add_argument("--naive-windows", type=int, default=1000)
    parser.add_argument("--formats", default="json,f32")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--latency-rates", default="1000,10000")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--max-wait-ms", type=float, default=10.0, help="the worker's batch.max_wait_ms in the "
                        "latency runs")
    parser.add_argument("--linger-ms", type=int, default=5, help="the worker's kafka.linger_ms in the latency runs")
    parser.add_argument("--exactly-once", action="store_true", help="also time the worker in exactly-once mode")
    add_doc_option(parser)
    args = parser.parse_args()
    clients = args.clients.split(",")
    report = Report("throughput")
    with tempfile.TemporaryDirectory() as tmp_name, LocalKafka() as kafka:
        tmp = Path(tmp_name)
        bundle = train_sample_bundle(tmp / "bundle")
        rows = []
        for fmt in args.formats.split(","):
            topic = f"bench-{fmt}-{uuid.uuid4().hex[:6]}"
            say(f"[{fmt}] pre-filling {args.windows} windows ...")
            prefill(kafka.bootstrap, topic, args.windows, fmt)
            say(f"[{fmt}] bare consumers ...")
            bare = {"kafka-python": bare_consumer(kafka.bootstrap, topic, args.windows),
                    "confluent": bare_confluent_consumer(kafka.bootstrap, topic, args.windows)}
            say(f"[{fmt}] naive loop ({args.naive_windows} windows) ...")
            c = naive_loop(kafka.bootstrap, topic, bundle, args.naive_windows, fmt)
            for client in clients:
                say(f"[{fmt}] worker, {client} ...")
                b = worker_run(tmp, kafka.bootstrap, bundle, topic, args.windows, fmt, client=client)
                eos = None
                if args.exactly_once:
                    say(f"[{fmt}] worker, {client}, exactly-once ...")
                    eos = worker_run(tmp, kafka.bootstrap, bundle, topic, args.windows, fmt, name="eos",
                                     exactly_once=True, client=client)
                rows.append((fmt, client, bare, b, c, eos))
        report.line(f"End-to-end throughput, {args.windows:,} pre-filled windows per format, worker in all-scores "
                    "mode (windows/s):")
        report.line()
        report.table(["format", "worker client", "worker (b)", "bare kafka-python consumer (a)", "b/a",
                      "bare consumer, same client", "b / same-client bare", "naive loop (c)", "b/c"],
                     [[fmt, client, f"{b:,.0f}", f"{bare['kafka-python']:,.0f}", f"{b / bare['kafka-python']:.2f}",
                       f"{bare[client]:,.0f}", f"{b / bare[client]:.2f}", f"{c:,.0f}", f"{b / c:.0f}"]
                      for fmt, client, bare, b, c, _ in rows])
        latencies = []
        rates = [float(r) for r in args.latency_rates.split(",") if r]
        if rates:  # a discarded run first: the broker's JIT and page cache warm up on it, not on the first row
            say("latency warm-up (discarded) ...")
            latency(tmp, kafka.bootstrap, bundle, max(rates), 5.0, client=clients[-1], max_wait_ms=args.max_wait_ms,
                    linger_ms=args.linger_ms)
        for rate in rates:
            for client in clients:
                for eos in ([False, True] if args.exactly_once else [False]):
                    say(f"latency at {rate:.0f}/s, {client}{' (exactly-once)' if eos else ''} ...")
                    latencies.append(latency(tmp, kafka.bootstrap, bundle, rate, args.latency_seconds,
                                             exactly_once=eos, client=client, max_wait_ms=args.max_wait_ms,
                                             linger_ms=args.linger_ms))
        if latencies:
            report.line()
            report.line("Latency, input Kafka timestamp to the score record reaching a downstream consumer (ms), "
                        f"json, batch max_wait {args.max_wait_ms:g} ms, producer linger {args.linger_ms} ms:")
            report.line()
            report.table(["worker client", "mode", "offered /s", "achieved /s", "windows", "p50", "p95", "p99",
                          "max"],
                         [[str(r["client"]), str(r["mode"]), f"{r['offered']:,.0f}", f"{r['achieved']:,.0f}",
                           str(r["n"]), f"{r['p50']:.0f}", f"{r['p95']:.0f}", f"{r['p99']:.0f}", f"{r['max']:.0f}"]
                          for r in latencies])
        if args.exactly_once:
            report.line()
            report.line("Exactly-once vs at-least-once worker throughput (windows/s):")
            report.line()
            report.table(["format", "worker client", "at-least-once", "exactly-once", "ratio"],
                         [[fmt, client, f"{b:,.0f}", f"{eos:,.0f}", f"{eos / b:.2f}"]
                          for fmt, client, _, b, _, eos in rows if eos is not None])
    if not args.no_doc:
        report.save()


if __name__ == "__main__":
    main()
