"""Processing a batch: score it, decide against the threshold, encode its records and hand them to delivery.

Scoring and deciding stay apart (river's rule): the model's scorer returns scores, the threshold decides. The
model is one `ServingModel`, swapped whole between batches when a new one is served.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from detector.config import Config
from detector.kafka.seams import OutputRecord
from detector.model.segments import segment_bounds
from detector.model.serving import ServingModel
from detector.ops.metrics import Latencies, WorkerMetrics
from detector.pipeline.batching import Batch
from detector.pipeline.delivery import Delivery
from detector.pipeline.offsets import OffsetTracker
from detector.wire.records import RecordEncoder


class BatchProcessor:
    def __init__(self, config: Config, model: ServingModel, tracker: OffsetTracker, delivery: Delivery,
                 metrics: WorkerMetrics, latencies: Latencies, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.cfg = config
        self.tracker, self.delivery, self.metrics, self.latencies = tracker, delivery, metrics, latencies
        self.clock, self.wall = clock, wall
        self.events_topic = config.topics.events
        self.scores_topic = config.topics.scores
        self.use(model)

    def use(self, model: ServingModel) -> None:
        """Score every batch from now on with `model`."""
        self.model = model
        events = self.cfg.events
        self.encoder = RecordEncoder(model=model.identity.as_dict(), threshold=model.threshold.value,
                                     bounds=segment_bounds(model.window, events.segments), top=events.top_segments,
                                     all_scores=bool(self.scores_topic), channels=model.channels)
        self.metrics.threshold.set(model.threshold.value)

    def process(self, batch: Batch) -> None:
        started = self.clock()
        result = self.model.scorer.score(batch.windows)
        scores = result.scores
        self.metrics.inference_seconds.observe(self.clock() - started)
        self.metrics.batch_size.observe(len(batch))
        self.metrics.scored.inc(len(batch))
        self.metrics.score.observe_many(scores)
        anomalous = self.model.threshold.is_anomaly(scores)
        decided_at = self.wall()  # one clock read per batch: the detection time, and when windows without outputs close
        shares = result.shares(np.flatnonzero(anomalous))
        records = self.encoder.encode(batch, scores, anomalous, shares, decided_at)
        if len(shares):
            self._count_channels(shares)
        outputs = anomalous.astype(np.int64) + (1 if self.scores_topic else 0)
        processed = self.tracker.processed
        self.latencies.closed_many(decided_at, [processed(m.tp, m.offset, n)
                                                for m, n in zip(batch.messages, outputs.tolist(), strict=True)])
        by_source: dict[str, int] = {}
        send, events_topic, scores_topic = self.delivery.send, self.events_topic, self.scores_topic
        for r in records:
            message = batch.messages[r.position]
            key = r.source.encode()
            if r.anomaly:
                by_source[r.source] = by_source.get(r.source, 0) + 1
                send(OutputRecord("event", events_topic, key, r.value, [], message))
            if scores_topic:
                send(OutputRecord("score", scores_topic, key, r.value, [], message))
        self.metrics.count_anomalies(by_source)

    def _count_channels(self, shares: np.ndarray) -> None:
        """Which channel carries the largest share of each anomalous window's error."""
        top = np.argmax(shares, axis=1) // self.cfg.events.segments
        for channel, n in zip(*np.unique(top, return_counts=True), strict=True):
            self.metrics.anomaly_channels.labels(channel=self.model.channels[int(channel)]).inc(int(n))
