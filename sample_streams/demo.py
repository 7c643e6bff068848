"""`tsad demo`: the whole product on one machine, in about a minute.

Starts a local Kafka broker, trains a model on the sample training stream (or uses a given bundle), runs the
detector worker, replays the sample stream plus a few malformed messages, prints anomaly events as they arrive,
and ends with a summary scored against the stream's labels.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

DATA = Path(__file__).resolve().parent / "data"
POISON = [b"{not json", b'{"values": [1, 2, 3]}', b'{"values": "abc"}']


def _say(text: str) -> None:
    print(f"[demo] {text}", file=sys.stderr, flush=True)


def _train(train_file: Path, out: Path, epochs: int | None) -> Path:
    from trainer.pipeline import print_epoch, train
    from trainer.presets import get_preset
    from trainer.window_files import load_window_file

    config = get_preset("default")
    if epochs:
        config = config.replace(epochs=epochs)
    dataset = load_window_file(train_file)
    _say(f"training the default preset on {train_file.name} ({len(dataset)} windows)")

    def progress(epoch: int, loss: float, val: float | None) -> None:
        if epoch % 20 == 0 or epoch == 1:
            print_epoch(epoch, loss, val)

    result = train(dataset, config, seed=0, name="demo-ecg", on_epoch=progress)
    result.bundle.save(out)
    _say(f"bundle {result.bundle.version} written to {out} ({result.history.seconds:.1f} s)")
    return out


def _describe(event: dict[str, Any]) -> str:
    """One line per record: an alert episode opening or closing, or (events.mode windows/both) an anomalous window."""
    top = (event.get("segments") or [{}])[0]
    where = f"most error in samples {top.get('start')}-{top.get('end')} ({top.get('share', 0):.0%})"
    if "episode_id" in event:
        kind = event["type"].removeprefix("episode_").upper()
        span = f"{event['start_time']} .. {event['end_time'] or event['last_time']}"
        return (f"EPISODE {kind:<6} {event['source']:>8} {event['episode_id']}: {event['windows']} window(s) {span}, "
                f"peak {event['peak_ratio']:.1f}x threshold, {where}")
    return (f"ANOMALY {event['source']:>8} {event['input']['window_id'] or event['id']}: score {event['score']:.4f} "
            f"({event['ratio']:.1f}x threshold), {where}")


def run_demo(args: argparse.Namespace) -> int:
    from detector.config import (
        BatchConfig,
        Config,
        EpisodesConfig,
        HttpConfig,
        KafkaConfig,
        ModelConfig,
        TopicsConfig,
    )
    from detector.service import run as run_worker
    from sample_streams.files import read_stream
    from sample_streams.local_kafka import LocalKafka
    from sample_streams.ports import free_port
    from sample_streams.replay import replay
    from sample_streams.topics import ensure_topics

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    stream = Path(args.stream)
    records = {r.id: r for r in read_stream(stream)}
    with ExitStack() as stack:
        kafka = LocalKafka()
        stack.callback(kafka.cleanup)
        _say("starting a local Apache Kafka broker (first run downloads its jars with Maven)")
        kafka.start()
        _say(f"broker ready at {kafka.bootstrap} in {kafka.start_seconds:.1f} s")
        topics = TopicsConfig(input="windows", events="anomalies", dead_letter="windows-dlq", scores="scores")
        ensure_topics(kafka.bootstrap, {topics.input: 2, topics.events: 1, topics.dead_letter: 1, "scores": 1})

        bundle = Path(args.bundle) if args.bundle else _train(Path(args.train), kafka.work_dir / "bundle",
                                                              args.epochs)
        port = args.port or free_port()
        # alert episodes (the default), closed after 10 quiet windows so the short demo stream shows closes too
        config = Config(kafka=KafkaConfig(bootstrap_servers=kafka.bootstrap, group_id="tsad-demo"), topics=topics,
                        model=ModelConfig(bundle=str(bundle), device=args.device),
                        batch=BatchConfig(max_size=128, max_wait_ms=20), http=HttpConfig("127.0.0.1", port),
                        episodes=EpisodesConfig(quiet_windows=10))
        stop = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                run_worker(config, stop=stop, install_signals=False)
            except BaseException as exc:  # surfaced below
                errors.append(exc)
                stop.set()

        thread = threading.Thread(target=serve, name="tsad-worker")
        thread.start()
        stack.callback(thread.join, 30)
        stack.callback(stop.set)
        _say(f"worker running: metrics at http://127.0.0.1:{port}/metrics (also /healthz, /readyz)")

        consumer = KafkaConsumer(topics.events, "scores", bootstrap_servers=kafka.bootstrap,
                                 auto_offset_reset="earliest", enable_auto_commit=False)
        stack.callback(consumer.close)
        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", linger_ms=5)
        stack.callback(producer.close)
        _say(f"replaying {len(records)} windows from {stream.name} at {args.rate:.0f}/s, plus "
             f"{len(POISON)} malformed messages")
        for payload in POISON:
            producer.send(topics.input, value=payload, key=b"bad-producer")
        replayer = threading.Thread(target=replay, args=(records.values(), producer, topics.input, "json",
                                                         args.rate))
        replayer.start()

        flagged: set[str] = set()
        seen: set[str] = set()
        episodes: set[str] = set()
        deadline = time.monotonic() + args.timeout
        while len(seen) < len(records) and time.monotonic() < deadline and not errors:
            for batch in consumer.poll(timeout_ms=200).values():
                for message in batch:
                    record = json.loads(message.value)
                    if message.topic == "scores":
                        window_id = record["input"]["window_id"]
                        seen.add(window_id)
                        if record["anomaly"]:
                            flagged.add(window_id)
                        continue
                    if "episode_id" in record:
                        episodes.add(record["episode_id"])
                    if not args.quiet:
                        print(_describe(record), flush=True)
        replayer.join()
        if errors:
            raise errors[0]
        return _summary(records, seen, flagged, len(episodes), port)


def _summary(records: dict[str, Any], seen: set[str], flagged: set[str], episodes: int, port: int) -> int:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    invalid = sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                  if s.name == "tsad_windows_invalid_total")
    truth = {i for i, r in records.items() if r.label == 1}
    tp = len(flagged & truth)
    precision = tp / len(flagged) if flagged else 0.0
    recall = tp / len(truth) if truth else 0.0
    print(json.dumps({"windows": len(records), "scored": len(seen), "anomalies_flagged": len(flagged),
                      "labelled_anomalies": len(truth), "episodes": episodes, "dead_lettered": int(invalid),
                      "precision": round(precision, 4), "recall": round(recall, 4)}), flush=True)
    _say(f"summary: {len(seen)}/{len(records)} windows scored, {len(flagged)} flagged in {episodes} alert episodes, "
         f"{len(truth)} labelled anomalous; precision {precision:.3f}, recall {recall:.3f}; {int(invalid)} "
         "malformed messages dead-lettered")
    return 0 if len(seen) == len(records) else 1


def register(sub: Any) -> None:
    d = sub.add_parser("demo", help="local broker + training + worker + replay, end to end")
    d.add_argument("--bundle", help="use this bundle instead of training one")
    d.add_argument("--train", default=str(DATA / "ecg_train.jsonl"), help="training stream (JSON Lines)")
    d.add_argument("--stream", default=str(DATA / "ecg_stream.jsonl"), help="stream to replay")
    d.add_argument("--rate", type=float, default=200.0, help="replay rate, windows/s (default 200)")
    d.add_argument("--epochs", type=int, help="override the preset's epochs")
    d.add_argument("--device", default="auto", help="auto | cpu | cuda")
    d.add_argument("--port", type=int, help="metrics port (default: a free one)")
    d.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    d.add_argument("--quiet", action="store_true", help="only the summary")
    d.set_defaults(func=run_demo)
