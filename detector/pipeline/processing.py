"""Processing a batch: score it, decide against the threshold, encode its records and hand them to delivery.

Scoring and deciding stay apart (river's rule): the model's scorer returns scores, the threshold decides. The
model is one `ServingModel`, swapped whole between batches when a new one is served.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from detector.config import Config
from detector.kafka.seams import OutputRecord
from detector.model.segments import segment_bounds
from detector.model.serving import ServingModel
from detector.ops.drift import ScoreDrift
from detector.ops.metrics import Latencies, WorkerMetrics
from detector.pipeline.batching import Batch
from detector.pipeline.delivery import Delivery
from detector.pipeline.episode_stage import EpisodeStage, sources_of
from detector.pipeline.offsets import OffsetTracker
from detector.pipeline.shadow import ShadowStage
from detector.wire.columns import Repeated, message_runs, pick, to_arrow
from detector.wire.records import EncodedRecord, RecordEncoder, key_source, named_sources
from detector.wire.score_batch import encode_scores


class BatchProcessor:
    def __init__(self, config: Config, model: ServingModel, tracker: OffsetTracker, delivery: Delivery,
                 metrics: WorkerMetrics, latencies: Latencies, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, episodes: EpisodeStage | None = None,
                 shadow: ShadowStage | None = None) -> None:
        self.cfg = config
        self.episodes = episodes  # None: per-window events only (events.mode: windows)
        self.shadow = shadow  # a candidate model scored beside the live one (model.shadow_bundle)
        self.window_events = config.events.mode in ("windows", "both")
        self.tracker, self.delivery, self.metrics, self.latencies = tracker, delivery, metrics, latencies
        self.clock, self.wall = clock, wall
        self.events_topic = config.topics.events
        self.scores_topic = config.topics.scores
        self.json_scores = bool(self.scores_topic) and config.events.scores_format == "json"  # else Arrow, bulk
        self.use(model)

    def use(self, model: ServingModel) -> None:
        """Score every batch from now on with `model` (called between batches: a batch is scored by one model)."""
        self.model = model
        self.drift = ScoreDrift(model.reference, self.cfg.model.drift_window)
        events = self.cfg.events
        self.encoder = RecordEncoder(model=model.identity.as_dict(), threshold=model.threshold.value,
                                     bounds=segment_bounds(model.window, events.segments), top=events.top_segments,
                                     all_scores=self.json_scores, channels=model.channels,
                                     window_events=self.window_events)
        self.metrics.threshold.set(model.threshold.value)

    def process(self, batch: Batch) -> None:
        started = self.clock()
        result = self.model.scorer.score(batch.windows)
        scores = result.scores
        self.metrics.inference_seconds.observe(self.clock() - started)
        self.metrics.batch_size.observe(len(batch))
        self.metrics.scored.inc(len(batch))
        self.metrics.score.observe_many(scores)
        self.drift.observe(scores)
        if self.drift.available:
            self.metrics.score_drift.set(self.drift.psi())
        thresholds = self._thresholds(batch)
        if self.episodes is not None and self.episodes.adaptive is not None:
            base = np.full(len(batch), self.model.threshold.value) if thresholds is None else thresholds
            thresholds = self.episodes.thresholds(batch, base)
        anomalous = np.asarray(scores) > (self.model.threshold.value if thresholds is None else thresholds)
        decided_at = self.wall()  # one clock read per batch: the detection time, and when windows without outputs close
        shares = result.shares(np.flatnonzero(anomalous))
        records = self.encoder.encode(batch, scores, anomalous, shares, decided_at, thresholds)
        extra: list[tuple[int, OutputRecord]] = []  # episode, state and shadow records, each tied to its window
        if len(shares):
            self._count_channels(shares)
        if self.episodes is not None:
            applied = self.model.threshold.value if thresholds is None else thresholds
            ratios = np.asarray(scores, dtype=np.float64) / np.maximum(applied, 1e-12)
            extra = self.episodes.process(batch, scores, ratios, anomalous, self.encoder.segments(shares),
                                                    self.model, decided_at, thresholds)
        if self.shadow is not None:
            self.metrics.model_anomalies.labels(role="live").inc(int(anomalous.sum()))
            extra += self.shadow.process(batch, self.model, scores, anomalous)
        if self.scores_topic and not self.json_scores:
            extra += self._score_batches(batch, scores, anomalous, thresholds)
        self._close_inputs(batch, anomalous, extra, decided_at)
        self._send(batch, records, extra, anomalous)

    def _thresholds(self, batch: Batch) -> np.ndarray | None:
        """Per-window thresholds when the bundle calibrated some per source; None: one threshold for all."""
        if not self.model.threshold.per_source:
            return None
        return self.model.threshold.for_sources(sources_of(batch))

    def _close_inputs(self, batch: Batch, anomalous: np.ndarray, extra: list[tuple[int, OutputRecord]],
                      decided_at: float) -> None:
        """Each window is processed: it now waits for its outputs' acknowledgements (or is safe at once)."""
        outputs = (anomalous.astype(np.int64) if self.window_events else np.zeros(len(batch), np.int64)) + (
            1 if self.json_scores else 0)
        for i, _ in extra:
            outputs[i] += 1
        # one settlement per run of a message's windows (a batched message is one run; a per-window one, one window)
        messages, counts = message_runs(batch.messages)
        totals = np.add.reduceat(outputs, np.cumsum([0, *counts[:-1]])).tolist() if messages else []
        settle = self.tracker.settle
        self.latencies.closed_many(decided_at, [settle(m.tp, m.offset, k, n)
                                                for m, k, n in zip(messages, counts, totals, strict=True)])

    def _send(self, batch: Batch, records: list[EncodedRecord], extra: list[tuple[int, OutputRecord]],
              anomalous: np.ndarray) -> None:
        by_source: dict[str, int] = {}
        send, events_topic, scores_topic = self.delivery.send, self.events_topic, self.json_scores and self.scores_topic
        window_events = self.window_events
        for r in records:
            message = r.message
            key = r.source.encode()
            if r.anomaly:
                by_source[r.source] = by_source.get(r.source, 0) + 1
                if window_events:
                    send(OutputRecord("event", events_topic, key, r.value, [], message))
            if scores_topic:
                send(OutputRecord("score", scores_topic, key, r.value, [], message))
        for _, record in extra:
            send(record)
        if not window_events and not scores_topic:  # no per-window records: count the anomalies by their source
            flagged = np.flatnonzero(anomalous).tolist()
            for source in named_sources(pick(batch.sources, flagged), pick(batch.messages, flagged)):
                by_source[source] = by_source.get(source, 0) + 1
        self.metrics.count_anomalies(by_source)

    def _score_batches(self, batch: Batch, scores: np.ndarray, anomalous: np.ndarray,
                       thresholds: np.ndarray | None) -> list[tuple[int, OutputRecord]]:
        """One Arrow score record per input message of the batch, tied to its last window here."""
        applied = np.full(len(batch), self.model.threshold.value) if thresholds is None else thresholds
        rows = batch.rows or Repeated([-1], [len(batch)])
        identity = self.model.identity.as_dict()
        out = []
        start = 0
        for m, k in zip(*message_runs(batch.messages), strict=True):
            end = start + k
            prefix = f"{m.topic}-{m.partition}-{m.offset}"
            part_rows = to_arrow(rows[start:end], pa.int32())
            batched = part_rows[0].as_py() >= 0  # a run is one message: all its rows are batched or none is
            ids = (pc.binary_join_element_wise(prefix + "-", pc.cast(part_rows, pa.string()), "") if batched
                   else pa.array([prefix] * k, pa.string()))
            sources = pc.fill_null(to_arrow(batch.sources[start:end], pa.string()), key_source(m))
            value = encode_scores(ids, to_arrow(batch.ids[start:end], pa.string()), sources, part_rows,
                                  scores[start:end], applied[start:end], anomalous[start:end], identity)
            out.append((end - 1, OutputRecord("score", str(self.scores_topic), sources[0].as_py().encode(), value,
                                              [], m)))
            start = end
        return out

    def _count_channels(self, shares: np.ndarray) -> None:
        """Which channel carries the largest share of each anomalous window's error."""
        top = np.argmax(shares, axis=1) // self.cfg.events.segments
        for channel, n in zip(*np.unique(top, return_counts=True), strict=True):
            self.metrics.anomaly_channels.labels(channel=self.model.channels[int(channel)]).inc(int(n))
