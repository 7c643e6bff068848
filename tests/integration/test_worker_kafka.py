"""The real worker process against the real broker: events, dead letters, metrics, shutdown, restart, groups."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from harness import TrackedProducer, committed_offsets, end_offsets, read_topic, read_until
from kafka import KafkaProducer

from detector.model.bundle import ModelBundle
from detector.model.scoring import Scorer
from sample_streams.files import read_stream
from sample_streams.generator import generate
from sample_streams.replay import replay

pytestmark = pytest.mark.kafka
SAMPLES = Path(__file__).resolve().parents[2] / "sample_streams" / "data"
POISON = [b"", b"{not json", b'{"values": [1, 2, 3]}', b'{"values": "abc"}', b"\x00" * 13]


def _topics(new_topic, partitions: int, scores: bool = True) -> dict[str, str | None]:
    return {"input": new_topic("in", partitions), "events": new_topic("ev"), "dead_letter": new_topic("dlq"),
            "scores": new_topic("sc") if scores else None}


def _produce(bootstrap: str, topic: str, records, fmt: str = "json", poison: list[bytes] = ()) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    sent = replay(records, producer, topic, fmt).sent
    for i, payload in enumerate(poison):
        producer.send(topic, value=payload, key=b"poison-%d" % i)
    producer.flush()
    producer.close()
    return sent


@pytest.fixture(params=["kafka-python", "confluent"])
def client(request) -> dict[str, str]:
    """Each test runs on both Kafka client backends."""
    return {"client": request.param}


def _wait(predicate, timeout: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_events_scores_dead_letters_metrics_and_clean_shutdown(kafka, new_topic, workers, sample_bundle,
                                                               client) -> None:
    topics = _topics(new_topic, partitions=2)
    records = list(read_stream(SAMPLES / "ecg_stream.jsonl"))
    group = f"g-main-{client['client']}"
    worker = workers(kafka.bootstrap, sample_bundle, topics, group=group, kafka=client,
                     events={"mode": "windows"}).start()  # a record per anomalous window (episodes: own tests)
    worker.wait_ready()
    assert _produce(kafka.bootstrap, topics["input"], records, poison=POISON) == len(records)

    scores = read_topic(kafka.bootstrap, topics["scores"], len(records))
    dead = read_topic(kafka.bootstrap, topics["dead_letter"], len(POISON))
    events = read_topic(kafka.bootstrap, topics["events"], 1, timeout=10)
    events += read_topic(kafka.bootstrap, topics["events"], 10**6, timeout=3)[len(events):]

    # One score record per input window, none lost, none invented.
    by_window = {json.loads(m.value)["input"]["window_id"]: json.loads(m.value) for m in scores}
    assert len(scores) == len(records) and set(by_window) == {r.id for r in records}
    # Exactly the windows the bundle itself scores above its threshold become events.
    bundle = ModelBundle.load(sample_bundle)
    offline = Scorer(bundle.build_model(), bundle.scaler, 140).score(
        np.array([r.values for r in records], np.float32)).scores
    expected = {r.id for r, s in zip(records, offline, strict=True) if s > bundle.threshold.value}
    got = {json.loads(m.value)["input"]["window_id"] for m in events}
    assert got == expected and len(events) == len(expected)
    for m in events:
        e = json.loads(m.value)
        assert m.key == e["source"].encode()
        assert e["score"] > e["threshold"] and e["segments"] and e["model"]["name"] == "sample-ecg"
        np.testing.assert_allclose(e["score"], by_window[e["input"]["window_id"]]["score"], rtol=1e-6)
    # Poison messages: dead-lettered with original bytes and a reason.
    assert sorted(m.value for m in dead) == sorted(POISON)
    reasons = {m.key: dict(m.headers)["tsad-error-reason"].decode() for m in dead}
    assert reasons[b"poison-0"] == "empty" and reasons[b"poison-1"] == "not_json"
    assert reasons[b"poison-2"] == "wrong_length" and reasons[b"poison-3"] == "values_not_list"
    assert all(dict(m.headers)["tsad-source-topic"] == topics["input"].encode() for m in dead)

    # Metrics read back over HTTP match the counts.
    _wait(lambda: worker.metric("tsad_records_published_total", kind="score") == len(records), 30, "metrics")
    assert worker.metric("tsad_windows_consumed_total") == len(records) + len(POISON)
    assert worker.metric("tsad_windows_scored_total") == len(records)
    assert worker.metric("tsad_windows_invalid_total") == len(POISON)
    assert worker.metric("tsad_anomalies_total") == len(expected)
    assert worker.metric("tsad_records_published_total", kind="event") == len(expected)
    assert worker.metric("tsad_records_published_total", kind="dead_letter") == len(POISON)
    assert worker.get("/healthz")[0] == 200 and worker.get("/nope")[0] == 404

    began = time.monotonic()
    assert worker.terminate() == 0
    assert time.monotonic() - began < 15
    assert committed_offsets(kafka.bootstrap, group, topics["input"]) == end_offsets(kafka.bootstrap,
                                                                                        topics["input"])


def test_sigterm_mid_stream_then_restart_loses_nothing(kafka, new_topic, workers, sample_bundle, client) -> None:
    topics = _topics(new_topic, partitions=2)
    records = list(generate(6000, kind="ecg", seed=11, prefix="r"))
    group = f"g-restart-{client['client']}"
    first = workers(kafka.bootstrap, sample_bundle, topics, group=group, name="first", batch={"max_size": 64},
                    kafka=client).start()
    first.wait_ready()
    # paced, so the stop lands mid-stream however fast the worker is (a pre-filled topic drains in under a second)
    producer = TrackedProducer(kafka.bootstrap)
    feeding = producer.send_in_background(topics["input"], records, rate=1500, fmt="f32")
    _wait(lambda: first.metric("tsad_windows_scored_total") > 500, 90, "the first worker to score some windows")
    assert first.terminate() == 0
    scored_first = len(read_topic(kafka.bootstrap, topics["scores"], 6000, timeout=5))
    assert 0 < scored_first < 6000, "the stop should land mid-stream"
    workers(kafka.bootstrap, sample_bundle, topics, group=group, name="second", kafka=client).start()
    feeding.join(60)
    producer.close()
    assert producer.acked == {r.id for r in records}
    expected = {r.id for r in records}

    def window_ids(out: list) -> list[str]:
        return [json.loads(m.value)["input"]["window_id"] for m in out]

    out = read_until(kafka.bootstrap, topics["scores"], lambda out: set(window_ids(out)) >= expected, 120)
    ids = window_ids(out)
    assert set(ids) == expected  # every window accounted for
    print(f"first run scored {scored_first}, duplicates after restart: {len(ids) - len(set(ids))}")


def test_two_workers_in_one_group_split_the_partitions(kafka, new_topic, workers, sample_bundle, client) -> None:
    topics = _topics(new_topic, partitions=4)
    group = f"g-two-{client['client']}"
    a = workers(kafka.bootstrap, sample_bundle, topics, group=group, name="a", kafka=client).start()
    b = workers(kafka.bootstrap, sample_bundle, topics, group=group, name="b", kafka=client).start()
    a.wait_ready()
    b.wait_ready()
    _wait(lambda: a.metric("tsad_assigned_partitions") == 2 and b.metric("tsad_assigned_partitions") == 2, 60,
          "a 2 + 2 split")
    records = list(generate(2000, kind="mixed", seed=5, sources=16, prefix="two"))
    _produce(kafka.bootstrap, topics["input"], records)
    out = read_topic(kafka.bootstrap, topics["scores"], 2000)
    assert {json.loads(m.value)["input"]["window_id"] for m in out} == {r.id for r in records}
    consumed_a, consumed_b = a.metric("tsad_windows_consumed_total"), b.metric("tsad_windows_consumed_total")
    assert consumed_a > 0 and consumed_b > 0 and consumed_a + consumed_b == 2000
    assert a.terminate() == 0 and b.terminate() == 0
