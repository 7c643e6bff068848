"""Every Prometheus metric the worker exports (prefix `tsad_`), registered on an injected registry."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from detector.ops.bulk_histogram import BulkHistogram
from detector.ops.source_labels import SourceLabels

SCORE_BUCKETS = (0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry, source_labels: int = 50) -> None:
        self.registry = registry
        self.source_label = SourceLabels(source_labels)
        self.consumed = Counter("tsad_windows_consumed", "Input messages consumed", ["topic"], registry=registry)
        self.scored = Counter("tsad_windows_scored", "Windows scored", registry=registry)
        self.invalid = Counter("tsad_windows_invalid", "Malformed input messages sent to the dead-letter topic",
                               ["reason"], registry=registry)
        self.anomalies = Counter("tsad_anomalies", "Windows scored above the threshold, by source (the first "
                                 "metrics.source_labels sources by name, the rest as 'other')", ["source"],
                                 registry=registry)
        self.anomaly_channels = Counter("tsad_anomalies_by_channel", "Anomalous windows by the channel carrying "
                                        "the largest share of their reconstruction error", ["channel"],
                                        registry=registry)
        self.model_reloads = Counter("tsad_model_reloads", "Bundles the worker tried to swap in, by result (loaded, "
                                     "refused)", ["result"], registry=registry)
        for result in ("loaded", "refused"):  # exported from the start: an alert's signal exists before a reload
            self.model_reloads.labels(result=result)
        self.model_anomalies = Counter("tsad_model_anomalies", "Anomalous windows by model role (live, shadow)",
                                       ["role"], registry=registry)
        self.shadow_agreement = Counter("tsad_shadow_agreement", "Windows by the verdicts of the live and the shadow "
                                        "model: both, live_only, shadow_only, neither", ["verdicts"],
                                        registry=registry)
        self.shadow_score = BulkHistogram("tsad_shadow_score", "Anomaly score per window under the shadow model",
                                          SCORE_BUCKETS, registry)
        self.score_drift = Gauge("tsad_score_drift_psi", "Population stability index of recent scores against the "
                                 "bundle's held-out normal scores (>0.25: the model no longer fits)",
                                 registry=registry)
        self.episodes = Counter("tsad_episodes", "Alert-episode records by kind (episode_open, episode_update, "
                                "episode_close)", ["kind"], registry=registry)
        self.episodes_active = Gauge("tsad_episodes_active", "Alert episodes open on this worker", registry=registry)
        self.published = Counter("tsad_records_published", "Output records acknowledged by Kafka, by kind: event "
                                 "(anomaly events), score (all-scores records), dead_letter (refused input), episode "
                                 "(episode records), episode_state (saved episode state), shadow (shadow-model "
                                 "verdicts), model (model lifecycle records)",
                                 ["kind"], registry=registry)
        self.publish_failures = Counter("tsad_publish_failures", "Output sends that failed and were retried",
                                        ["kind"], registry=registry)
        self.score = BulkHistogram("tsad_score", "Anomaly score (reconstruction MAE) per window",
                                   SCORE_BUCKETS, registry)
        self.threshold = Gauge("tsad_threshold", "Current anomaly threshold", registry=registry)
        self.batch_size = Histogram("tsad_batch_size", "Windows per scoring batch", buckets=BATCH_BUCKETS,
                                    registry=registry)
        self.inference_seconds = Histogram("tsad_inference_seconds", "Scoring time per batch (copy in, model, "
                                           "copy out)", buckets=SECONDS_BUCKETS, registry=registry)
        self.end_to_end_seconds = BulkHistogram("tsad_end_to_end_latency_seconds", "Kafka timestamp of the "
                                                "input to the broker's acknowledgement of its output",
                                                SECONDS_BUCKETS, registry)
        self.lag = Gauge("tsad_consumer_lag", "Messages behind the partition end", ["topic", "partition"],
                         registry=registry)
        self.commits = Counter("tsad_commits", "Offset commits", registry=registry)
        self.commit_failures = Counter("tsad_commit_failures", "Offset commits that failed", registry=registry)
        self.transactions = Counter("tsad_transactions", "Exactly-once transactions by result", ["result"],
                                    registry=registry)
        self.paused_partitions = Gauge("tsad_paused_partitions", "Partitions paused for backpressure",
                                       registry=registry)
        self.in_flight = Gauge("tsad_windows_in_flight", "Windows consumed and not yet safe to commit",
                               registry=registry)
        self.model_info = Info("tsad_model", "Model in use", registry=registry)
        self.model_created = Gauge("tsad_model_created_timestamp_seconds", "Creation time of the model bundle",
                                  registry=registry)
        self.last_poll = Gauge("tsad_last_successful_poll_timestamp_seconds", "Unix time of the last poll",
                               registry=registry)
        self.ready = Gauge("tsad_ready", "1 when the worker is ready (model warm, broker reachable, partitions "
                           "assigned)", registry=registry)
        self.assigned_partitions = Gauge("tsad_assigned_partitions", "Input partitions assigned",
                                         registry=registry)

    def count_anomalies(self, by_source: Mapping[str, int]) -> None:
        """Anomalous windows per source, under bounded label values."""
        for source, n in by_source.items():
            self.anomalies.labels(source=self.source_label(source)).inc(n)


class Latencies:
    """End-to-end seconds (input timestamp to the moment its last output was safe) of windows as they close,
    observed into the histogram in bulk, once per batch of closures."""

    def __init__(self, histogram: BulkHistogram) -> None:
        self.histogram = histogram
        self._pending: list[float] = []

    def closed(self, at: float, timestamp_ms: int | None) -> None:
        if timestamp_ms is not None and timestamp_ms >= 0:
            self._pending.append(at - timestamp_ms / 1000.0)

    def closed_many(self, at: float, timestamps_ms: list[int | None]) -> None:
        """`closed` for many windows at once (None: the window is not closed yet)."""
        self._pending.extend([at - t / 1000.0 for t in timestamps_ms if t is not None and t >= 0])

    def observe(self) -> None:
        if self._pending:
            self.histogram.observe_many(np.maximum(self._pending, 0.0))
            self._pending = []
