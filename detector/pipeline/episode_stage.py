"""Episodes in the worker: the tracker fed from scored batches, its records and its state on Kafka.

Where episode state lives: a compacted topic (`topics.episode_state`) keyed by source, with as many partitions as
the input; a source's state goes to the partition number its windows arrive on, so the worker that owns an input
partition owns that state partition too. A state record is an output of the last window of its source in the
batch: at-least-once commits that window only once its state is acknowledged, and exactly-once commits the state
in the same transaction as the window's other outputs and its offset. On assignment (and after an aborted
transaction) the worker reads the state partitions whole; a window re-read after a crash is recognised by its
offset and changes nothing, so an incident never opens a second episode and its close is never lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import orjson

from detector.config import Config
from detector.kafka.seams import InputMessage, OutputRecord, StateReader, StateUnsettled, TopicPartition
from detector.model.serving import ServingModel
from detector.ops.metrics import WorkerMetrics
from detector.pipeline.adaptive import AdaptivePolicy, AdaptiveThresholds
from detector.pipeline.batching import Batch
from detector.pipeline.episodes import EpisodePolicy, EpisodeRecord, EpisodeTracker, SourceRun, SourceState
from detector.wire.columns import as_array, messages_at, pick
from detector.wire.records import iso_times, named_sources

log = logging.getLogger("tsad.episodes")


def sources_of(batch: Batch) -> list[str]:
    """Every window's source, as event records name it, in one pass over the batch's columns."""
    return named_sources(batch.sources, batch.messages)


class EpisodeStage:
    RETRY_S = 1.0  # how often partitions waiting for their state try again

    def __init__(self, config: Config, reader: StateReader, metrics: WorkerMetrics,
                 wall: Callable[[], float] = time.time) -> None:
        e, a = config.episodes, config.adaptive
        # the policies take the config's fields by name (not by position: a reordered field cannot slip through)
        self.tracker = EpisodeTracker(EpisodePolicy(**asdict(e)))
        adaptive = {k: v for k, v in asdict(a).items() if k != "enabled"}
        self.adaptive = AdaptiveThresholds(AdaptivePolicy(**adaptive), self.tracker) if a.enabled else None
        self.events_topic, self.state_topic = config.topics.events, config.state_topic
        self.reader, self.metrics, self.wall = reader, metrics, wall
        self._counts = {kind: metrics.episodes.labels(kind=kind)
                        for kind in ("episode_open", "episode_update", "episode_close")}
        self.pending: set[TopicPartition] = set()  # assigned partitions whose state could not be read yet
        self._retry_at = 0.0

    def thresholds(self, batch: Batch, base: np.ndarray) -> np.ndarray:
        """Adaptive thresholds for the batch's windows (as of the batch's start), from `base` (calibrated)."""
        assert self.adaptive is not None
        return self.adaptive.thresholds(sources_of(batch), base)

    def process(self, batch: Batch, scores: np.ndarray, ratios: np.ndarray, anomalous: np.ndarray,
                segments: Sequence[list[dict[str, Any]] | None], model: ServingModel,
                decided_at: float, thresholds: np.ndarray | None = None) -> list[tuple[int, OutputRecord]]:
        """(position in the batch, record) for every episode and state record this batch produces; `segments`
        is aligned with the anomalous windows; `thresholds` (adaptive mode) are those the windows were decided by."""
        last_of: dict[str, int] = {}
        every: list[str] | None = None  # every window's source, when some step needs them all
        if self.adaptive is not None and thresholds is not None:
            every = sources_of(batch)
            self.adaptive.learn(every, scores, thresholds, [m.partition for m in batch.messages])
            last_of = {s: i for i, s in enumerate(every)}
        candidates = np.flatnonzero(anomalous).tolist()
        by_position = dict(zip(candidates, segments, strict=True))
        if self.tracker.active:  # an episode is open (or about to): its quiet windows count too
            every = every if every is not None else sources_of(batch)
            needed = {s for s in set(every) if self.tracker.needs(s)}  # asked before any window of the batch applies
            candidates = [i for i, s in enumerate(every) if s in needed or i in by_position]
        if not candidates:
            return self._state_records(batch, last_of)
        at = np.asarray(candidates, dtype=np.int64)
        sources = ([every[i] for i in candidates] if every is not None else  # read column-wise: lazy columns
                   named_sources(pick(batch.sources, candidates), pick(batch.messages, candidates)))
        runs, of_run = messages_at(batch.messages, at)
        offsets = np.array([m.offset for m in runs], np.int64)[of_run]
        partitions = np.array([m.partition for m in runs], np.int64)[of_run]
        named = as_array(batch.ts)[at]  # NaN where the window names no time: its message's timestamp counts
        times = np.where(np.isnan(named), np.array([m.timestamp_ms / 1000.0 for m in runs])[of_run], named)
        rows = as_array(batch.rows, np.int64)[at] if batch.rows else np.full(len(at), -1, np.int64)
        picked_scores, picked_ratios = np.asarray(scores, np.float64)[at], np.asarray(ratios, np.float64)[at]
        flagged = np.asarray(anomalous)[at]
        by_source: dict[str, list[int]] = {}  # each source's candidates, in order (indices into `candidates`)
        for k, source in enumerate(sources):
            by_source.setdefault(source, []).append(k)
        records: list[tuple[int, EpisodeRecord]] = []
        for source, ks in by_source.items():
            idx = np.asarray(ks, dtype=np.int64)
            marked = {j: by_position[candidates[ks[j]]] for j in np.flatnonzero(flagged[idx]).tolist()}
            run = SourceRun(source, partitions[idx], offsets[idx], rows[idx], times[idx], picked_scores[idx],
                            picked_ratios[idx], marked)
            records += [(candidates[ks[j]], r) for j, r in self.tracker.apply_run(run, decided_at)]
            last_of[source] = candidates[ks[-1]]
        records.sort(key=lambda pair: pair[0])  # batch order, as the windows came
        return self._episode_records(batch, records, model, decided_at) + self._state_records(batch, last_of)

    def _episode_records(self, batch: Batch, records: list[tuple[int, EpisodeRecord]], model: ServingModel,
                         decided_at: float) -> list[tuple[int, OutputRecord]]:
        if not records:
            return []
        stamps = sorted({t for _, r in records for t in (r.episode.start_time, r.episode.end_time)})
        times = dict(zip(stamps, iso_times(np.array(stamps, dtype=np.float64)), strict=True))
        detected = iso_times(np.array([decided_at]))[0]
        out = []
        for i, r in records:
            self._counts[r.kind].inc()
            threshold = model.threshold.per_source.get(r.episode.source, model.threshold.value)
            body = r.body(times, detected, model.identity.as_dict(), threshold)
            out.append((i, OutputRecord("episode", self.events_topic, r.episode.source.encode(),
                                        orjson.dumps(body), [], batch.messages[i])))
        self.metrics.episodes_active.set(self.tracker.open_episodes)
        return out

    def _state_records(self, batch: Batch, last_of: dict[str, int]) -> list[tuple[int, OutputRecord]]:
        out = []
        for source, state in self.tracker.take_dirty().items():
            if source not in last_of:  # no window of it in this batch to tie the record to: next time
                self.tracker.dirty.add(source)
                continue
            i = last_of[source]
            message = batch.messages[i]
            out.append((i, OutputRecord("episode_state", self.state_topic, source.encode(),
                                        orjson.dumps(state.to_dict()), [], message, partition=message.partition)))
        return out

    def load(self, partitions: set[TopicPartition]) -> None:
        """Read the state of every source of these input partitions (on assignment, after an abort)."""
        numbers = {p for _, p in partitions}
        self.tracker.drop_partitions(numbers)
        for m in self.reader.read(self.state_topic, numbers):
            if m.key is None:
                continue
            source = m.key.decode("utf-8", errors="replace")
            if m.value:
                self.tracker.put(source, SourceState.from_dict(orjson.loads(m.value)))
            else:
                self.tracker.drop_sources({source})
        self.metrics.episodes_active.set(self.tracker.open_episodes)

    def load_pending(self, assignment: set[TopicPartition], now: float) -> set[TopicPartition]:
        """Retry (at most every RETRY_S) the state of assigned partitions that wait for it; returns those loaded.
        A state partition with an earlier owner's transaction still open keeps waiting (StateUnsettled); other
        broker errors propagate to the loop."""
        if now < self._retry_at:
            return set()
        self._retry_at = now + self.RETRY_S
        pending = self.pending & assignment
        try:
            self.load(pending)
        except StateUnsettled as exc:
            log.info("episode state not read yet: %s", exc)
            return set()
        self.pending = set()
        return pending

    def reload(self, partitions: set[TopicPartition]) -> None:
        """After an aborted transaction: read again the state of the partitions served; those still waiting for
        theirs read it when they are retried (one of them may still be held by an earlier owner's transaction)."""
        served = partitions - self.pending
        if served:
            self.load(served)

    def forget(self, partitions: set[TopicPartition]) -> None:
        self.pending -= partitions
        self.tracker.drop_partitions({p for _, p in partitions})
        self.metrics.episodes_active.set(self.tracker.open_episodes)


def state_of(message: InputMessage) -> SourceState:
    """A state record's value, as `load` reads it (for tests and tools)."""
    return SourceState.from_dict(orjson.loads(message.value or b"{}"))
