"""`tsad generate`, `tsad replay` and `tsad kafka` subcommands."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any


def cmd_generate(args: argparse.Namespace) -> int:
    from sample_streams.files import write_f32, write_jsonl
    from sample_streams.generator import generate

    records = generate(args.n, kind=args.kind, anomaly_rate=args.anomaly_rate, seed=args.seed)
    out = Path(args.out)
    n = write_f32(records, out) if out.suffix == ".f32" else write_jsonl(records, out)
    print(f"tsad generate: {n} windows written to {out}", file=sys.stderr)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from kafka import KafkaProducer

    from sample_streams.replay import print_progress, replay
    from sample_streams.sources import open_source
    from sample_streams.topics import ensure_topics
    from trainer.telemetry import SeriesOptions

    channels = tuple(c.strip() for c in args.channels.split(",") if c.strip()) if args.channels else None
    options = SeriesOptions(args.sep, args.time_column, channels, args.label_column)
    records = open_source(args.file, args.generate, args.kind, args.seed, args.ecg_test, args.data,
                          args.window, args.series, args.stride, options)
    if args.partitions:
        ensure_topics(args.bootstrap, {args.topic: args.partitions})
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5, acks="all")
    try:
        stats = replay(records, producer, args.topic, args.format, args.rate, args.limit, print_progress,
                       batch_size=args.batch_size)
    finally:
        producer.close()
    print(f"\rtsad replay: {stats.sent} windows to {args.topic} in {stats.seconds:.1f} s "
          f"({stats.rate:.0f}/s)", file=sys.stderr)
    return 0


def cmd_kafka(args: argparse.Namespace) -> int:
    from sample_streams.local_kafka import LocalKafka, ensure_jars

    if args.action == "fetch":
        print(ensure_jars())
        return 0
    if args.brokers > 1 or args.security != "plaintext":
        return _run_cluster(args)
    kafka = LocalKafka(work_dir=args.dir, port=args.port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    kafka.start()
    print(f"tsad kafka: broker {kafka.version} ready at {kafka.bootstrap} in {kafka.start_seconds:.1f} s "
          f"(data in {kafka.log_dir}); Ctrl-C stops it", file=sys.stderr)
    print(kafka.bootstrap, flush=True)
    while not stop.wait(1.0):
        if not kafka.running:
            print("tsad kafka: the broker exited; see " + str(kafka.server_log), file=sys.stderr)
            return 1
    kafka.stop() if args.dir else kafka.cleanup()
    return 0


def _run_cluster(args: argparse.Namespace) -> int:
    """`tsad kafka start --brokers N` and/or `--security sasl_ssl`: a LocalKafkaCluster until Ctrl-C."""
    import json
    import os

    from sample_streams.kafka_cluster import LocalKafkaCluster
    from sample_streams.kafka_security import SaslSsl

    if args.port:
        print("tsad kafka: --port applies only to one plaintext broker; the cluster picks free ports",
              file=sys.stderr)
        return 2
    security = None
    if args.security == "sasl_ssl":
        users = dict(u.split(":", 1) if ":" in u else (u, os.urandom(12).hex()) for u in args.user or [])
        security = SaslSsl(users=users)
    cluster = LocalKafkaCluster(brokers=args.brokers, work_dir=args.dir, security=security)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    cluster.start()
    info_file = cluster.work_dir / "connection.json"
    info_file.write_text(json.dumps(cluster.connection_info(), indent=2) + "\n")
    info_file.chmod(0o600)
    print(f"tsad kafka: {args.brokers} {args.security} node(s) of Kafka {cluster.version} ready at "
          f"{cluster.bootstrap} in {cluster.start_seconds:.1f} s (data in {cluster.work_dir}; client settings in "
          f"{info_file}); Ctrl-C stops it", file=sys.stderr)
    if security:
        print(f"tsad kafka: CA {security.ca_file}; SCRAM-SHA-512 users (no ACLs yet except the super user "
              f"{security.admin_user}): {', '.join(security.passwords())}", file=sys.stderr)
    print(cluster.bootstrap, flush=True)
    while not stop.wait(1.0):
        dead = [i for i, n in cluster.nodes.items() if not n.running]
        if dead:
            print(f"tsad kafka: node(s) {dead} exited; see {cluster.work_dir}/node-*/server.log", file=sys.stderr)
            cluster.stop()
            return 1
    cluster.stop() if args.dir else cluster.cleanup()
    return 0


def register(sub: Any) -> None:
    from sample_streams.demo import register as register_demo

    register_demo(sub)
    g = sub.add_parser("generate", help="write a synthetic labelled stream (.jsonl or .f32)")
    g.add_argument("--n", type=int, default=1000)
    g.add_argument("--kind", default="ecg", help="ecg | sensor | mixed")
    g.add_argument("--anomaly-rate", dest="anomaly_rate", type=float, default=0.1)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", required=True)
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("replay", help="produce a stream into a Kafka topic at a given rate")
    r.add_argument("--bootstrap", required=True, help="host:port of a broker")
    r.add_argument("--topic", required=True)
    r.add_argument("--file", help="a .jsonl or .f32 stream file (e.g. sample_streams/data/ecg_stream.jsonl)")
    r.add_argument("--generate", type=int, help="generate N windows instead of reading a file")
    r.add_argument("--kind", default="ecg", help="with --generate: ecg | sensor | mixed")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--ecg-test", dest="ecg_test", action="store_true", help="the ECG5000 reference test split")
    r.add_argument("--data", help="with --ecg-test: ECG5000 path or URL (default $TSAD_ECG5000 / download)")
    r.add_argument("--series", help="a telemetry CSV/Parquet (path or URL, e.g. a SKAB file) cut into windows")
    r.add_argument("--window", type=int, default=140, help="with --series (or an .f32 file): samples per channel")
    r.add_argument("--stride", type=int, default=1, help="with --series: samples between windows (default 1)")
    r.add_argument("--sep", help="with --series: CSV separator (default: sniffed)")
    r.add_argument("--time-column", dest="time_column", help="with --series: the time column")
    r.add_argument("--channels", help="with --series: channel columns, comma separated, in the model's order")
    r.add_argument("--label-column", dest="label_column", help="with --series: point-label column, or 'none'")
    r.add_argument("--format", default="json", help="json | f32 | batch (default json; several channels: C x L, "
                   "channel-major; batch: many windows per message, Arrow)")
    r.add_argument("--batch-size", dest="batch_size", type=int, default=500,
                   help="with --format batch: windows of one source per message (default 500)")
    r.add_argument("--rate", type=float, default=0.0, help="windows per second; 0 = as fast as possible")
    r.add_argument("--limit", type=int, help="stop after N windows")
    r.add_argument("--partitions", type=int, help="create the topic with N partitions if it does not exist")
    r.set_defaults(func=cmd_replay)

    k = sub.add_parser("kafka", help="run a local Apache Kafka broker or KRaft cluster (Java 17 + Maven)")
    k.add_argument("action", choices=["start", "fetch"], help="start: run until Ctrl-C; fetch: only get the jars")
    k.add_argument("--dir", help="work/log directory to keep (default: a temporary one, removed on stop)")
    k.add_argument("--port", type=int, help="listener port of a single plaintext broker (default: a free one)")
    k.add_argument("--brokers", type=int, default=1, help="number of broker+controller nodes (default 1; 3 for "
                   "replication factor 3, min.insync.replicas 2)")
    k.add_argument("--security", choices=["plaintext", "sasl_ssl"], default="plaintext",
                   help="sasl_ssl: TLS with a fresh CA, SCRAM-SHA-512 users, ACLs enforced")
    k.add_argument("--user", action="append", metavar="NAME[:PASSWORD]",
                   help="with --security sasl_ssl: a SCRAM user to create (repeatable; random password if omitted)")
    k.set_defaults(func=cmd_kafka)
