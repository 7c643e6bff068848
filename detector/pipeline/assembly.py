"""Wiring only: the worker's parts built from the config, around an injected source, sink, model, metrics,
health and clocks (so tests run it on in-memory fakes with a fake clock)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

from detector.config import Config
from detector.kafka.seams import Sink, Source, StateReader, TopicPartition, TransactionalSink
from detector.model.reload import BundleWatcher
from detector.model.serving import ServingModel
from detector.ops.consumer_status import ConsumerStatus
from detector.ops.health import Health
from detector.ops.metrics import Latencies, WorkerMetrics
from detector.pipeline.backpressure import Backpressure
from detector.pipeline.batching import MicroBatcher
from detector.pipeline.commits import CommitStrategy, OffsetCommits, TransactionalCommits
from detector.pipeline.delivery import Delivery
from detector.pipeline.episode_stage import EpisodeStage
from detector.pipeline.error_policy import ErrorPolicy
from detector.pipeline.ingest import Ingest
from detector.pipeline.model_swap import ModelSwap
from detector.pipeline.offsets import OffsetTracker
from detector.pipeline.processing import BatchProcessor
from detector.pipeline.shadow import ShadowStage
from detector.pipeline.worker import Worker
from detector.wire.windows import WindowDecoder


def build_worker(*, config: Config, source: Source, sink: Sink, model: ServingModel, metrics: WorkerMetrics,
                 health: Health, state: StateReader | None = None, watcher: BundleWatcher | None = None,
                 shadow: ServingModel | None = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> Worker:
    """`state` reads the episode-state topic (needed unless events.mode is `windows`); `watcher` prepares new
    bundles for hot reload; `shadow` is a candidate model scored beside the live one."""
    batch, worker = config.batch, config.worker
    batcher = MicroBatcher(model.width, batch.max_size, batch.max_wait_ms / 1000.0, clock, pinned=model.pinned,
                           copy_threads=config.model.threads)
    tracker = OffsetTracker()
    policy = ErrorPolicy(config.topics.dead_letter, metrics, clock)
    latencies = Latencies(metrics.end_to_end_seconds)
    delivery = Delivery(sink, tracker, policy, metrics, latencies, clock, wall)
    interval_s = worker.commit_interval_ms / 1000.0
    episodes = None
    if config.events.mode != "windows":
        if state is None:
            raise ValueError(f"events.mode {config.events.mode!r} needs a reader of the episode-state topic")
        episodes = EpisodeStage(config, state, metrics, wall)
    commits: CommitStrategy
    if config.kafka.exactly_once:
        commits = TransactionalCommits(source, cast(TransactionalSink, sink), batcher, tracker, delivery, policy,
                                       metrics, interval_s, worker.shutdown_timeout_s, clock,
                                       on_rewind=episodes.reload if episodes else None)
    else:
        commits = OffsetCommits(source, tracker, delivery, policy, metrics, interval_s, clock)
    processor = BatchProcessor(config, model, tracker, delivery, metrics, latencies, clock, wall, episodes,
                               ShadowStage(shadow, config.topics.shadow_topic, metrics) if shadow else None)
    swap = None if watcher is None else ModelSwap(watcher, processor, delivery, metrics, config.topics.events,
                                                  config.model.device, config.model.dtype, wall)
    # newly assigned partitions wait paused for their episode state, backpressure or not
    held: Callable[[], set[TopicPartition]] = (lambda: episodes.pending) if episodes is not None else set
    decoder = WindowDecoder(model.window, config.input.format, config.input.max_message_bytes, model.channels,
                            config.input.max_batch_bytes)
    ingest = Ingest(decoder, batcher, tracker, processor, delivery, policy, latencies, metrics, config.topics.input,
                    wall)
    return Worker(model_swap=swap,
        config=config, source=source, ingest=ingest,
        batcher=batcher, tracker=tracker,
        processor=processor,
        delivery=delivery, commits=commits, backpressure=Backpressure(source, batch.max_in_flight, metrics, held),
        status=ConsumerStatus(source, metrics, health, worker.lag_interval_s, clock), policy=policy,
        latencies=latencies, metrics=metrics, health=health, clock=clock, wall=wall,
    )
