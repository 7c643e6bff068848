"""Against the real local Apache Kafka broker: lifecycle, formats on the wire, replay rate, clear refusals."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from harness import read_topic
from kafka import KafkaProducer

from detector.wire.windows import WindowDecoder
from sample_streams.generator import generate
from sample_streams.local_kafka import KafkaLauncherError, LocalKafka, ensure_jars
from sample_streams.replay import replay

pytestmark = pytest.mark.kafka


def test_data_survives_a_restart_on_the_same_log_dir(kafka: LocalKafka, new_topic) -> None:
    topic = new_topic("restart")
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    for i in range(50):
        producer.send(topic, f"m{i}".encode())
    producer.flush()
    producer.close()
    port, log_dir = kafka.port, kafka.log_dir
    began = time.monotonic()
    kafka.restart()
    print(f"broker restart took {time.monotonic() - began:.1f} s (first start {kafka.start_seconds:.1f} s)")
    assert (kafka.port, kafka.log_dir) == (port, log_dir) and kafka.running
    got = read_topic(kafka.bootstrap, topic, 50)
    assert [m.value for m in got] == [f"m{i}".encode() for i in range(50)]


@pytest.mark.parametrize("fmt", ["json", "f32"])
def test_both_formats_round_trip_through_kafka(kafka: LocalKafka, new_topic, fmt: str) -> None:
    topic = new_topic(fmt, partitions=2)
    records = list(generate(120, kind="mixed", anomaly_rate=0.2, seed=9))
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    assert replay(records, producer, topic, fmt).sent == 120
    producer.close()
    got = read_topic(kafka.bootstrap, topic, 120)
    assert len(got) == 120
    decoder = WindowDecoder(140, fmt)
    by_id = {r.id: r for r in records}
    for message in got:
        window = decoder.decode(message.value)
        ident = window.id if fmt == "json" else dict(message.headers)["tsad-id"].decode()
        record = by_id.pop(ident)
        assert message.key == record.source.encode()
        np.testing.assert_allclose(window.values, np.asarray(record.values, np.float32))
    assert not by_id
    # Keyed by source: each source's windows sit in one partition, in order.
    partitions: dict[bytes, set[int]] = {}
    for message in got:
        partitions.setdefault(message.key, set()).add(message.partition)
    assert all(len(p) == 1 for p in partitions.values())


def test_replay_rate_within_ten_percent_over_ten_seconds(kafka: LocalKafka, new_topic) -> None:
    topic = new_topic("rate")
    rate, seconds = 300.0, 10.0
    cmd = [sys.executable, "-m", "tsad", "replay", "--bootstrap", kafka.bootstrap, "--topic", topic,
           "--generate", str(int(rate * seconds)), "--rate", str(rate)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    assert "3000 windows" in proc.stderr
    got = read_topic(kafka.bootstrap, topic, 3000)
    assert len(got) == 3000
    stamps = sorted(m.timestamp for m in got)  # broker-side record times (ms), independent of the producer
    # the middle 80% (8 s): a scheduling stall of this shared machine at the very start or end is not the pacing
    middle = stamps[len(stamps) // 10: len(stamps) - len(stamps) // 10]
    measured = (len(middle) - 1) / ((middle[-1] - middle[0]) / 1000.0)
    print(f"requested {rate}/s, measured {measured:.1f}/s from Kafka timestamps")
    assert measured == pytest.approx(rate, rel=0.10)


def test_refuses_clearly_without_java(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no java, no mvn
    proc = subprocess.run([sys.executable, "-m", "tsad", "kafka", "start"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "Java 17+ is required" in proc.stderr and "'java' is not on PATH" in proc.stderr


def test_refuses_clearly_without_maven(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KafkaLauncherError, match=r"Maven \('mvn'\) is required"):
        ensure_jars(tmp_path / "empty-cache")


def test_a_retired_kafka_python_producer_fails_what_it_holds_and_closes(kafka: LocalKafka, new_topic) -> None:
    """The path the sink takes when it replaces a silent producer (detector/kafka/delivery_watch.py), on the real
    client: records it still holds (here: lingering) fail at once, and the producer closes."""
    from detector.kafka.kafka_python import _force_close

    topic = new_topic("retire")
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", linger_ms=30_000,
                             delivery_timeout_ms=120_000, batch_size=1 << 20)
    failed: list[Exception] = []
    for i in range(5):
        producer.send(topic, f"m{i}".encode()).add_errback(failed.append)
    began = time.monotonic()
    _force_close(producer)
    assert time.monotonic() - began < 10
    assert len(failed) == 5, failed
    assert producer._closed  # type: ignore[attr-defined]

