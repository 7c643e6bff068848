"""Process-level harness shared by the integration tests and the benchmark/fault scripts: run the real worker
(`python -m detector serve`) against a real broker, produce streams with delivery tracking, read topics back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from kafka import KafkaConsumer, KafkaProducer

from sample_streams.generator import WindowRecord
from sample_streams.ports import free_port
from sample_streams.replay import encode


class WorkerProcess:
    """`python -m detector serve` with a YAML config; HTTP on a free port."""

    def __init__(self, tmp: Path, bootstrap: str, bundle: Path, topics: dict[str, str | None], group: str,
                 name: str = "w", **sections: dict[str, Any]) -> None:
        self.port = free_port()
        self.name = name
        config: dict[str, dict[str, Any]] = {
            "kafka": {"bootstrap_servers": bootstrap, "group_id": group, "client_id": name},
            "topics": dict(topics),
            "model": {"bundle": str(bundle), "device": "cpu"},
            "http": {"host": "127.0.0.1", "port": self.port},
            "worker": {"lag_interval_s": 1.0, "shutdown_timeout_s": 15},
        }
        for key, extra in sections.items():
            config.setdefault(key, {}).update(extra)
        self.config_path = tmp / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = tmp / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str] | None = None) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "detector", "serve", "--config", str(self.config_path)],
                                     stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, OSError):  # not listening yet, or gone
            return 0, ""

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise AssertionError(f"worker {self.name} exited:\n{self.log()[-3000:]}")
            if self.get("/readyz")[0] == 200:
                return
            time.sleep(0.2)
        raise AssertionError(f"worker {self.name} not ready after {timeout} s:\n{self.log()[-3000:]}")

    def metric(self, name: str, **labels: str) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        status, text = self.get("/metrics")
        if status != 200:
            return 0.0
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def rss_bytes(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: no drain, no commit (fault injection)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class TrackedProducer:
    """Produces window records and remembers which ids the broker acknowledged (the windows that are 'in')."""

    def __init__(self, bootstrap: str, **options: Any) -> None:
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **options)
        self.acked: set[str] = set()
        self.failed: set[str] = set()
        self._lock = threading.Lock()

    def _done(self, ident: str, ok: bool) -> None:
        with self._lock:
            (self.acked if ok else self.failed).add(ident)

    def send(self, topic: str, record: WindowRecord, fmt: str = "json") -> None:
        value, headers = encode(record, fmt)
        future = self.producer.send(topic, value=value, key=record.source.encode(), headers=headers or None)
        future.add_callback(lambda _md, i=record.id: self._done(i, True))
        future.add_errback(lambda _exc, i=record.id: self._done(i, False))

    def send_all(self, topic: str, records: Iterable[WindowRecord], rate: float = 0.0, fmt: str = "json") -> None:
        start = time.monotonic()
        for i, record in enumerate(records):
            if rate > 0:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self.send(topic, record, fmt)
        self.producer.flush(timeout=180)

    def send_in_background(self, topic: str, records: Iterable[WindowRecord], rate: float,
                           fmt: str = "json") -> threading.Thread:
        thread = threading.Thread(target=self.send_all, args=(topic, list(records), rate, fmt), daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.producer.close(timeout=30)


def read_until(bootstrap: str, topic: str, done: Callable[[list], bool], timeout: float = 60.0,
               **options: Any) -> list:
    """Records of `topic` from the beginning until `done(records)` or `timeout` seconds."""
    from kafka.structs import TopicPartition

    # Partitions assigned explicitly, not subscribed without a group: a reader on a loaded machine once read none
    # of a topic's 1.3 MB for 120 s through the group-less subscription (kafka-python 3.0).
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=500, **options)
    out: list = []
    deadline = time.monotonic() + timeout
    partitions = consumer.partitions_for_topic(topic)
    while not partitions and time.monotonic() < deadline:
        time.sleep(0.2)
        partitions = consumer.partitions_for_topic(topic)
    consumer.assign([TopicPartition(topic, p) for p in sorted(partitions or [])])
    consumer.seek_to_beginning()
    try:
        while not done(out) and time.monotonic() < deadline:
            out.extend(consumer)
    finally:
        consumer.close()
    return out


def read_topic(bootstrap: str, topic: str, n: int, timeout: float = 60.0, **options: Any) -> list:
    """Everything in `topic` from the beginning: stops at `n` records or after `timeout` seconds."""
    return read_until(bootstrap, topic, lambda out: len(out) >= n, timeout, **options)


def committed_offsets(bootstrap: str, group: str, topic: str, **options: Any) -> dict[int, int | None]:
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **options)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in consumer.partitions_for_topic(topic)}
    finally:
        consumer.close(autocommit=False)


def end_offsets(bootstrap: str, topic: str, **options: Any) -> dict[int, int]:
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **options)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return {tp.partition: off for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def train_sample_bundle(out: Path, epochs: int = 30, name: str = "sample-ecg") -> Path:
    """A bundle trained on the committed ECG-like training stream (short training: enough to separate)."""
    from trainer.pipeline import train
    from trainer.presets import get_preset
    from trainer.window_files import load_window_file

    data = Path(__file__).resolve().parent.parent / "sample_streams" / "data" / "ecg_train.jsonl"
    result = train(load_window_file(data), get_preset("default").replace(epochs=epochs), seed=0, name=name,
                   on_epoch=None)
    return result.bundle.save(out)

