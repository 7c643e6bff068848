"""Fuzzed payloads through the real worker: it stays alive, every bad payload reaches the dead-letter topic with
the reason the decoder gives, every good one is scored, and the metrics agree."""

from __future__ import annotations

from collections import Counter

import pytest
from fuzz_decoder import check, payloads
from harness import read_topic, wait_for
from kafka import KafkaProducer

from detector.wire.windows import WindowDecoder

pytestmark = pytest.mark.kafka


def test_fuzzed_input_is_dead_lettered_with_reasons(kafka, new_topic, workers, sample_bundle) -> None:
    topics = {"input": new_topic("in"), "events": new_topic("ev"), "dead_letter": new_topic("dlq"),
              "scores": new_topic("sc")}
    batch = [p for p in payloads(1500, seed=3) if len(p) < 900_000]  # under the broker's message size limit
    decoder = WindowDecoder(140, "auto", max_bytes=65536)
    verdict = [check(p, decoder) for p in batch]
    worker = workers(kafka.bootstrap, sample_bundle, topics, group="g-fuzz").start()
    worker.wait_ready()
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", max_request_size=2_000_000)
    for payload in batch:  # one partition, in order: payload i lands at offset i
        producer.send(topics["input"], value=payload, key=b"fuzz")
    producer.flush()
    producer.close()

    invalid = [v for v in verdict if v != "valid"]
    dead = read_topic(kafka.bootstrap, topics["dead_letter"], len(invalid), timeout=90)
    scores = read_topic(kafka.bootstrap, topics["scores"], len(batch) - len(invalid), timeout=90)
    assert worker.alive
    assert len(scores) == len(batch) - len(invalid)
    assert len(dead) == len(invalid)
    for m in dead:
        headers = dict(m.headers)
        offset = int(headers["tsad-source-offset"])
        assert headers["tsad-error-reason"].decode() == verdict[offset]
        assert m.value == batch[offset]
    wait_for(lambda: worker.metric("tsad_windows_invalid_total") == len(invalid), 30, "metrics")
    by_reason = Counter(invalid)
    for reason, count in by_reason.items():
        assert worker.metric("tsad_windows_invalid_total", reason=reason) == count
    assert len(by_reason) >= 8
    assert worker.terminate() == 0
