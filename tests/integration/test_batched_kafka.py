"""Batched window messages through the real worker process and the real broker: `tsad replay --format batch`
output scored row by row, a bad row dead-lettered alone with its coordinates, a malformed batch dead-lettered whole,
Arrow score records per message, and offsets committed per message."""

from __future__ import annotations

import json

import numpy as np
import pytest
from harness import committed_offsets, end_offsets, read_topic, read_until
from kafka import KafkaProducer
from test_worker_kafka import _wait

from detector.model.bundle import ModelBundle
from detector.model.scoring import Scorer
from detector.wire.batch import decode_batch, encode_batch
from detector.wire.score_batch import decode_scores
from sample_streams.generator import generate
from sample_streams.replay import replay

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_batched_messages_end_to_end(kafka, new_topic, workers, sample_bundle, client: str) -> None:
    topics = {"input": new_topic("in", 2), "events": new_topic("ev"), "dead_letter": new_topic("dlq"),
              "scores": new_topic("sc")}
    group = f"g-batch-{client}"
    worker = workers(kafka.bootstrap, sample_bundle, topics, group=group, kafka={"client": client},
                     input={"format": "batch"}, events={"mode": "windows", "scores_format": "arrow"}).start()
    worker.wait_ready()
    records = list(generate(600, kind="ecg", seed=3, sources=3))
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", linger_ms=5)
    assert replay(records, producer, topics["input"], "batch", batch_size=64).sent == len(records)
    bad_rows = np.array([records[0].values, records[1].values], np.float32)
    bad_rows[1, 7] = np.nan  # one bad row inside a good message
    producer.send(topics["input"], value=encode_batch(bad_rows, ["ok-row", "nan-row"], ["x", "x"], [1.0, 2.0]),
                  key=b"x")
    producer.send(topics["input"], value=b"\xff\xff\xff\xffnot arrow at all", key=b"broken")
    producer.flush()
    producer.close()

    scored = len(records) + 1
    _wait(lambda: worker.metric("tsad_windows_scored_total") == scored, 90, "every valid row scored")
    dead = read_topic(kafka.bootstrap, topics["dead_letter"], 2)
    reasons = {dict(m.headers)["tsad-error-reason"].decode(): m for m in dead}
    assert set(reasons) == {"non_finite", "bad_batch"}
    row = reasons["non_finite"]
    assert dict(row.headers)["tsad-source-row"] == b"1"  # the row, with the message's coordinates
    assert decode_batch(row.value, 140).errors and decode_batch(row.value, 140).errors[0][0] == 0  # one-row batch
    assert reasons["bad_batch"].value == b"\xff\xff\xff\xffnot arrow at all"

    # Arrow score records: every valid row exactly once, scores equal to the bundle's own.
    tables = [decode_scores(m.value) for m in read_until(
        kafka.bootstrap, topics["scores"], lambda out: sum(decode_scores(m.value).num_rows for m in out) >= scored)]
    window_ids = [w for t in tables for w in t.column("window_id").to_pylist()]
    assert sorted(window_ids) == sorted([r.id for r in records] + ["ok-row"])
    bundle = ModelBundle.load(sample_bundle)
    offline = Scorer(bundle.build_model(), bundle.scaler, 140).score(
        np.array([r.values for r in records], np.float32)).scores
    got = {w: s for t in tables for w, s in zip(t.column("window_id").to_pylist(), t.column("score").to_pylist(),
                                                strict=True)}
    np.testing.assert_allclose([got[r.id] for r in records], offline, rtol=1e-5)
    events = read_topic(kafka.bootstrap, topics["events"], 10**6, timeout=5)
    assert {json.loads(m.value)["input"]["window_id"] for m in events} == {
        r.id for r, s in zip(records, offline, strict=True) if s > bundle.threshold.value}

    assert worker.terminate() == 0
    assert committed_offsets(kafka.bootstrap, group, topics["input"]) == end_offsets(kafka.bootstrap,
                                                                                        topics["input"])
