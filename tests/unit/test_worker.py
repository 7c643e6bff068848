"""The worker loop on in-memory source/sink, a fake clock and a fresh registry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from prometheus_client import CollectorRegistry

from detector.config import BatchConfig, Config, EventsConfig, TopicsConfig, WorkerConfig
from detector.kafka.seams import InputMessage
from detector.model.scaler import Scaler
from detector.model.scoring import BatchScorer, Scorer
from detector.model.serving import ModelIdentity, ServingModel
from detector.model.threshold import Threshold
from detector.ops.health import Health
from detector.ops.metrics import WorkerMetrics
from detector.pipeline.assembly import build_worker
from detector.testing import MemorySink, MemorySource
from detector.wire.windows import encode_f32, encode_json

W = 140


class ZeroModel(torch.nn.Module):
    """Reconstructs everything as zeros, so the error of a sample is its absolute value."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def msg(offset: int, values=None, partition: int = 0, payload: bytes | None = None, key: bytes = b"src",
        topic: str = "in") -> InputMessage:
    if payload is None:
        payload = encode_json(np.zeros(W) if values is None else values, source=key.decode())
    return InputMessage(topic, partition, offset, key, payload, [("h", b"v")], 1_700_000_000_000 + offset)


def zero_model(max_size: int, threshold: float = 0.5, version: str = "v1") -> ServingModel:
    """A model whose score of a window is the mean absolute value of its samples."""
    return ServingModel(ModelIdentity("m", version), BatchScorer(Scorer(ZeroModel(), Scaler("none"), W), max_size, 10),
                        Threshold(threshold, "mean_std"), W)


def make(max_size=4, max_wait_ms=20.0, max_in_flight=64, scores_topic=None, auto_ack=True, commit_ms=0):
    config = Config(
        topics=TopicsConfig(input="in", events="ev", dead_letter="dlq", scores=scores_topic),
        batch=BatchConfig(max_size=max_size, max_wait_ms=max_wait_ms, max_in_flight=max_in_flight),
        events=EventsConfig(mode="windows", segments=10, top_segments=3),
        worker=WorkerConfig(commit_interval_ms=commit_ms, lag_interval_s=1.0),
    )
    registry = CollectorRegistry()
    clock = Clock()
    source, sink = MemorySource(), MemorySink(auto_ack=auto_ack)
    worker = build_worker(config=config, source=source, sink=sink, model=zero_model(max_size),
                          metrics=WorkerMetrics(registry), health=Health(clock=clock), clock=clock,
                          wall=lambda: 1_700_000_100.0)
    source.listener = worker
    return worker, source, sink, registry, clock


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_batches_by_size() -> None:
    worker, source, _sink, registry, _ = make(max_size=4)
    source.add([msg(i) for i in range(10)])
    worker.step()
    assert value(registry, "tsad_batch_size_count") == 2  # two full batches, two windows left waiting
    assert value(registry, "tsad_windows_scored_total") == 8
    assert len(worker.batcher) == 2


def test_batches_by_time() -> None:
    worker, source, _, registry, clock = make(max_size=100, max_wait_ms=20)
    source.add([msg(0), msg(1)])
    worker.step()
    assert value(registry, "tsad_windows_scored_total") == 0
    clock.t += 0.019
    worker.step()
    assert value(registry, "tsad_windows_scored_total") == 0
    clock.t += 0.002
    worker.step()
    assert value(registry, "tsad_windows_scored_total") == 2
    assert value(registry, "tsad_batch_size_sum") == 2


def test_anomaly_event_schema_and_segments() -> None:
    worker, source, sink, registry, _clock = make(max_size=2)
    bump = np.zeros(W)
    bump[30:40] = 50.0  # all the error sits in samples 30..39: segments [28, 42) then nothing
    source.add([msg(0), msg(1, bump, key=b"pump-7")])
    worker.step()
    assert [r.kind for r in sink.sent] == ["event"]
    record = sink.sent[0]
    assert record.topic == "ev" and record.key == b"pump-7"
    event = json.loads(record.value)
    assert event["id"] == "in-0-1"
    assert event["source"] == "pump-7"
    assert event["input"] == {"topic": "in", "partition": 0, "offset": 1, "window_id": None}
    assert event["anomaly"] is True
    assert event["score"] == pytest.approx(500 / 140, rel=1e-5)
    assert event["threshold"] == 0.5 and event["ratio"] == pytest.approx(event["score"] / 0.5, rel=1e-3)
    assert event["model"] == {"name": "m", "version": "v1"}
    assert event["event_time"] == "2023-11-14T22:13:20.001Z"  # the Kafka timestamp (no ts in the message)
    assert event["detection_time"] == "2023-11-14T22:15:00.000Z"
    assert event["segments"][0] == {"start": 28, "end": 42, "share": 1.0}
    assert len(event["segments"]) == 3
    assert value(registry, "tsad_anomalies_total", source="pump-7") == 1
    assert value(registry, "tsad_records_published_total", kind="event") == 1


def test_all_scores_mode_publishes_one_record_per_window() -> None:
    worker, source, sink, _registry, _ = make(max_size=4, scores_topic="scores")
    source.add([msg(i, np.full(W, 2.0) if i == 2 else None) for i in range(4)])
    worker.step()
    scores = [json.loads(r.value) for r in sink.sent if r.kind == "score"]
    assert [s["input"]["offset"] for s in scores] == [0, 1, 2, 3]
    assert [s["anomaly"] for s in scores] == [False, False, True, False]
    assert "segments" not in scores[0] and "segments" in scores[2]
    assert sum(r.kind == "event" for r in sink.sent) == 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (b"{oops", "not_json"),
        (b"[]", "not_object"),
        (b'{"x": 1}', "missing_values"),
        (json.dumps({"values": [1.0] * 3}).encode(), "wrong_length"),
        (json.dumps({"values": ["a"] * W}).encode(), "non_numeric"),
        (b'{"values": [' + b"NaN," * (W - 1) + b"NaN]}", "non_finite"),
        (encode_f32(np.zeros(W))[:-4], "wrong_length"),
        (b"{" + b" " * 70_000 + b"}", "oversized"),
    ],
)
def test_malformed_messages_go_to_the_dead_letter_topic(payload: bytes, reason: str) -> None:
    worker, source, sink, registry, _ = make(max_size=1)
    source.add([msg(0, payload=payload), msg(1)])
    worker.step()
    dead = [r for r in sink.sent if r.kind == "dead_letter"]
    assert len(dead) == 1
    record = dead[0]
    assert record.topic == "dlq" and record.value == payload and record.key == b"src"
    headers = dict(record.headers)
    assert headers["tsad-error-reason"] == reason.encode()
    assert headers["tsad-source-topic"] == b"in" and headers["tsad-source-partition"] == b"0"
    assert headers["tsad-source-offset"] == b"0" and headers["h"] == b"v"
    assert value(registry, "tsad_windows_invalid_total", reason=reason) == 1
    assert value(registry, "tsad_windows_scored_total") == 1  # the worker carried on
    assert source.committed() == {("in", 0): 2}


def test_no_commit_before_the_output_is_acknowledged() -> None:
    worker, source, sink, _, _ = make(max_size=4, auto_ack=False)
    anomalous = np.full(W, 3.0)
    source.add([msg(0), msg(1, anomalous), msg(2), msg(3)])
    worker.step()
    assert len(sink.pending) == 1  # the event for offset 1 is not acknowledged yet
    assert source.committed() == {("in", 0): 1}  # offset 0 is safe, offset 1 is not
    sink.ack()
    worker.step()
    assert source.committed() == {("in", 0): 4}


def test_failed_send_is_retried_and_blocks_the_commit_meanwhile() -> None:
    worker, source, sink, registry, clock = make(max_size=1, auto_ack=False)
    source.add([msg(0, np.full(W, 3.0))])
    worker.step()
    sink.fail(RuntimeError("broker away"))
    worker.step()
    assert source.committed().get(("in", 0), 0) == 0
    assert value(registry, "tsad_publish_failures_total", kind="event") == 1
    clock.t += 1.0
    worker.step()  # retried after the backoff
    assert len(sink.pending) == 1 and sink.pending[0][0].attempts == 2
    sink.ack()
    worker.step()
    assert source.committed() == {("in", 0): 1}


def test_readiness_fails_while_outputs_wait_without_any_acknowledgement() -> None:
    worker, source, sink, registry, clock = make(max_size=1, auto_ack=False)
    source.add([msg(0, np.full(W, 3.0))])
    worker.step()  # the event waits for its acknowledgement; the loop keeps turning
    clock.t += 16.0
    worker.step()
    ready, why = worker.health.ready()
    assert not ready and "no output acknowledged for 16 s" in why
    assert value(registry, "tsad_ready") == 0
    sink.ack()
    worker.step()
    assert "no output acknowledged" not in worker.health.ready()[1]


def test_backpressure_pauses_and_resumes_partitions() -> None:
    worker, source, sink, registry, _ = make(max_size=2, max_in_flight=4, auto_ack=False)
    source.add([msg(i, np.full(W, 3.0), partition=i % 2) for i in range(12)])
    worker.step()
    worker.step()
    assert source.paused == {("in", 0), ("in", 1)}
    assert value(registry, "tsad_paused_partitions") == 2
    assert worker.tracker.in_flight <= 4
    assert len(source.messages) == 8  # nothing more was taken in
    sink.ack()
    worker.step()
    assert source.paused == set()
    for _ in range(6):
        worker.step()
        sink.ack()
    worker.step()
    assert source.committed() == {("in", 0): 11, ("in", 1): 12}  # even offsets on 0, odd on 1


def test_drain_publishes_buffered_windows_and_commits() -> None:
    worker, source, sink, _, clock = make(max_size=100, max_wait_ms=10_000)
    source.add([msg(i, np.full(W, 3.0)) for i in range(5)])
    worker.step()
    assert sink.sent == []
    worker.drain(clock() + 5)
    assert len(sink.sent) == 5 and worker.health.stopping
    assert source.committed() == {("in", 0): 5}


def test_revoked_partitions_commit_what_is_safe_and_forget_the_rest() -> None:
    worker, source, sink, _, _ = make(max_size=100, max_wait_ms=10_000, auto_ack=False)
    source.add([msg(i, np.full(W, 3.0), partition=0) for i in range(3)] + [msg(0, partition=1)])
    worker.step()
    source.revoke({("in", 0)})  # the batch is scored on revocation; its events are still unacknowledged
    assert worker.tracker.in_flight == 0  # partition 0's windows are forgotten; partition 1's had no output
    assert ("in", 0) not in source.committed() or source.committed()[("in", 0)] == 0
    sink.ack()
    worker.step()  # late acks for forgotten windows are ignored
    assert source.committed()[("in", 1)] == 1


def test_readiness_fails_while_a_revocation_flushes_its_outputs() -> None:
    worker, source, sink, registry, _ = make(max_size=100, max_wait_ms=10_000, auto_ack=False)
    worker.health.model_ready = True  # what the service sets once the model is warm
    source.add([msg(0, np.full(W, 3.0))])
    worker.step()
    assert worker.health.ready() == (True, "ready")
    during_flush = []
    sink.flush = lambda timeout_s: during_flush.append(worker.health.ready())  # type: ignore[method-assign]
    source.revoke({("in", 0)})
    assert during_flush and not during_flush[0][0] and "no partitions assigned" in during_flush[0][1]
    assert value(registry, "tsad_assigned_partitions") == 0


def test_metrics_and_health_after_steps() -> None:
    worker, source, _, registry, clock = make(max_size=2)
    source.add([msg(0), msg(1)])
    worker.step()
    assert value(registry, "tsad_windows_consumed_total", topic="in") == 2
    assert value(registry, "tsad_threshold") == 0.5
    assert value(registry, "tsad_inference_seconds_count") == 1
    assert value(registry, "tsad_end_to_end_latency_seconds_count") == 2
    assert value(registry, "tsad_commits_total") >= 1
    assert value(registry, "tsad_last_successful_poll_timestamp_seconds") == 1_700_000_100.0
    assert worker.health.live()[0]
    clock.t += 60
    assert not worker.health.live()[0]


@pytest.mark.parametrize("method", ["pause", "resume", "poll", "assignment", "commit", "lag"])
def test_a_source_failure_costs_one_loop_turn_and_loses_nothing(method: str) -> None:
    """Whichever source call fails (as BrokerError, the only error a backend raises), the turn ends early, the
    next one carries on, and every window is published and committed once."""
    from detector.kafka.seams import BrokerError

    worker, source, sink, registry, clock = make(max_size=2, max_in_flight=4, auto_ack=False)
    source.add([msg(i, np.full(W, 3.0), partition=i % 2) for i in range(12)])
    failed = 0
    source.fail_next(method)
    for turn in range(60):
        try:
            worker.step()
        except BrokerError:
            failed += 1  # worker.run() logs this and turns again
        if turn % 3 == 2:  # acknowledgements lag behind, so backpressure pauses and resumes
            sink.ack()
        clock.t += 0.01
    if method == "commit":  # a failed commit is the commit strategy's to handle: counted, retried next interval
        assert failed == 0 and value(registry, "tsad_commit_failures_total") == 1
    else:
        assert failed == 1
    events = [json.loads(r.value)["id"] for r in sink.acked if r.kind == "event"]
    assert sorted(events) == sorted(f"in-{i % 2}-{i}" for i in range(12))  # each once
    assert source.committed() == {("in", 0): 11, ("in", 1): 12}


def test_multichannel_windows_through_the_loop() -> None:
    """A 3-channel model: JSON (channel objects) and f32 (C×L) windows are scored, events name the channel, and
    malformed multi-channel messages are dead-lettered with their own reasons."""
    channels = ("Current", "Pressure", "Flow")
    L = 20
    config = Config(topics=TopicsConfig(input="in", events="ev", dead_letter="dlq"),
                    batch=BatchConfig(max_size=8, max_wait_ms=0, max_in_flight=64),
                    events=EventsConfig(mode="windows", segments=4, top_segments=2),
                    worker=WorkerConfig(commit_interval_ms=0))
    model = ServingModel(ModelIdentity("pump", "1"),
                         BatchScorer(Scorer(ZeroModel(), Scaler("none"), L, channels=3), 8, 4),
                         Threshold(0.5, "mean_std"), L, channels=channels)
    registry = CollectorRegistry()
    source, sink = MemorySource(), MemorySink()
    worker = build_worker(config=config, source=source, sink=sink, model=model, metrics=WorkerMetrics(registry),
                          health=Health(), wall=lambda: 1_700_000_100.0)
    hot = np.zeros((3, L))
    hot[1, 5:10] = 30.0  # Pressure, samples 5..9 (segment 1 of 4)
    good = {c: [0.0] * L for c in channels}
    payloads = [encode_json(np.zeros(3 * L), channels=channels), encode_json(hot.ravel(), channels=channels),
                encode_f32(hot.ravel()), json.dumps({"values": {**good, "Voltage": [0.0] * L}}).encode(),
                json.dumps({"values": {"Current": good["Current"]}}).encode()]
    source.add([msg(i, payload=p) for i, p in enumerate(payloads)])
    worker.step()
    events = [json.loads(r.value) for r in sink.sent if r.kind == "event"]
    assert [e["input"]["offset"] for e in events] == [1, 2]
    assert events[0]["segments"][0] == {"channel": "Pressure", "start": 5, "end": 10, "share": 1.0}
    reasons = [dict(r.headers)["tsad-error-reason"] for r in sink.sent if r.kind == "dead_letter"]
    assert reasons == [b"unknown_channel", b"missing_channel"]
    assert value(registry, "tsad_anomalies_by_channel_total", channel="Pressure") == 2
    assert source.committed() == {("in", 0): 5}
