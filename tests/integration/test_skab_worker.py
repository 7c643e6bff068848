"""A real SKAB experiment replayed as 8-channel windows through the real worker on the real broker: every window
scored once, the events are exactly the bundle's offline verdicts, and malformed multi-channel messages are
dead-lettered with their reasons."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from harness import read_topic
from kafka import KafkaProducer
from skab import Recipe, train_on_head

from detector.model.bundle import ModelBundle
from detector.model.scoring import Scorer
from sample_streams.replay import replay
from sample_streams.sources import series_records
from trainer.telemetry import read_series

pytestmark = pytest.mark.kafka
WINDOW = 30


@pytest.fixture(scope="module")
def skab_bundle(skab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    series = read_series(skab_dir / "valve1" / "0.csv")
    recipe = Recipe("default", WINDOW, (("epochs", 30), ("patience", 0), ("scaler", "channel_standard")))
    return train_on_head(series, recipe, seed=0, name="skab-valve1-0").save(tmp_path_factory.mktemp("skab") / "b")


def _poison(channels: tuple[str, ...]) -> list[tuple[bytes, str]]:
    good = {c: [0.0] * WINDOW for c in channels}
    return [
        (json.dumps({"values": {k: v for k, v in good.items() if k != "Pressure"}}).encode(), "missing_channel"),
        (json.dumps({"values": {**good, "Humidity": [0.0] * WINDOW}}).encode(), "unknown_channel"),
        (json.dumps({"values": {**good, "Current": [0.0] * (WINDOW - 1)}}).encode(), "wrong_length"),
        (json.dumps({"values": {**good, "Voltage": ["230"] * WINDOW}}).encode(), "non_numeric"),
        (json.dumps({"values": [0.0] * WINDOW * len(channels)}).encode(), "values_not_object"),
    ]


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_a_skab_experiment_through_the_worker(kafka, new_topic, workers, skab_dir: Path, skab_bundle: Path,
                                               client: str) -> None:
    bundle = ModelBundle.load(skab_bundle)
    assert len(bundle.channels) == 8
    topics = {"input": new_topic("skab-in", 2), "events": new_topic("skab-ev"), "dead_letter": new_topic("skab-dlq"),
              "scores": new_topic("skab-sc")}
    worker = workers(kafka.bootstrap, skab_bundle, topics, group=f"g-skab-{client}", kafka={"client": client},
                     input={"format": "auto"}, events={"mode": "both"}).start()
    worker.wait_ready()
    records = list(series_records(str(skab_dir / "valve1" / "0.csv"), WINDOW, 1, source="valve1-0"))
    poison = _poison(bundle.channels)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", linger_ms=5)
    replay(records[: len(records) // 2], producer, topics["input"], "json")
    replay(records[len(records) // 2 :], producer, topics["input"], "f32")  # both formats of the same windows
    for i, (payload, _) in enumerate(poison):
        producer.send(topics["input"], value=payload, key=b"poison-%d" % i)
    producer.flush()
    producer.close()

    scores = read_topic(kafka.bootstrap, topics["scores"], len(records), timeout=120)
    by_id = {json.loads(m.value)["input"]["window_id"]: json.loads(m.value) for m in scores}
    assert len(scores) == len(records) and set(by_id) == {r.id for r in records}
    offline = Scorer(bundle.build_model(), bundle.scaler, WINDOW, channels=8).score(
        np.array([r.values for r in records], np.float32)).scores
    expected = {r.id for r, s in zip(records, offline, strict=True) if s > bundle.threshold.value}
    assert 0 < len(expected) < len(records)
    records = read_topic(kafka.bootstrap, topics["events"], len(expected) + 2, timeout=30)
    events = [m for m in records if "episode_id" not in json.loads(m.value)]
    episodes = [json.loads(m.value) for m in records if "episode_id" in json.loads(m.value)]
    assert {json.loads(m.value)["input"]["window_id"] for m in events} == expected
    assert episodes and episodes[0]["type"] == "episode_open" and episodes[0]["source"] == "valve1-0"
    assert all(s["channel"] in bundle.channels for e in episodes for s in e["segments"] or [])
    for m in events:
        event = json.loads(m.value)
        np.testing.assert_allclose(event["score"], by_id[event["input"]["window_id"]]["score"], rtol=1e-6)
        assert event["segments"] and all(s["channel"] in bundle.channels for s in event["segments"])
    dead = read_topic(kafka.bootstrap, topics["dead_letter"], len(poison), timeout=30)
    reasons = {m.key: dict(m.headers)["tsad-error-reason"].decode() for m in dead}
    assert reasons == {b"poison-%d" % i: reason for i, (_, reason) in enumerate(poison)}
    assert worker.metric("tsad_anomalies_by_channel_total") == len(expected)
    assert worker.terminate() == 0
