"""Wiring only: the worker's parts built from the config, around an injected source, sink, model, metrics,
health and clocks (so tests run it on in-memory fakes with a fake clock)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

from detector.config import Config
from detector.kafka.seams import Sink, Source, TransactionalSink
from detector.model.serving import ServingModel
from detector.ops.consumer_status import ConsumerStatus
from detector.ops.health import Health
from detector.ops.metrics import Latencies, WorkerMetrics
from detector.pipeline.backpressure import Backpressure
from detector.pipeline.batching import MicroBatcher
from detector.pipeline.commits import CommitStrategy, OffsetCommits, TransactionalCommits
from detector.pipeline.delivery import Delivery
from detector.pipeline.error_policy import ErrorPolicy
from detector.pipeline.offsets import OffsetTracker
from detector.pipeline.processing import BatchProcessor
from detector.pipeline.worker import Worker
from detector.wire.windows import WindowDecoder


def build_worker(*, config: Config, source: Source, sink: Sink, model: ServingModel, metrics: WorkerMetrics,
                 health: Health, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> Worker:
    batch, worker = config.batch, config.worker
    batcher = MicroBatcher(model.width, batch.max_size, batch.max_wait_ms / 1000.0, clock)
    tracker = OffsetTracker()
    policy = ErrorPolicy(config.topics.dead_letter, metrics, clock)
    latencies = Latencies(metrics.end_to_end_seconds)
    delivery = Delivery(sink, tracker, policy, metrics, latencies, clock, wall)
    interval_s = worker.commit_interval_ms / 1000.0
    commits: CommitStrategy
    if config.kafka.exactly_once:
        commits = TransactionalCommits(source, cast(TransactionalSink, sink), batcher, tracker, delivery, policy,
                                       metrics, interval_s, worker.shutdown_timeout_s, clock)
    else:
        commits = OffsetCommits(source, tracker, delivery, policy, metrics, interval_s, clock)
    return Worker(
        config=config, source=source,
        decoder=WindowDecoder(model.window, config.input.format, config.input.max_message_bytes, model.channels),
        batcher=batcher, tracker=tracker,
        processor=BatchProcessor(config, model, tracker, delivery, metrics, latencies, clock, wall),
        delivery=delivery, commits=commits, backpressure=Backpressure(source, batch.max_in_flight, metrics),
        status=ConsumerStatus(source, metrics, health, worker.lag_interval_s, clock), policy=policy,
        latencies=latencies, metrics=metrics, health=health, clock=clock, wall=wall,
    )
