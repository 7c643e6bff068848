"""The worker loop: poll → decode/validate → micro-batch → score → decide → publish → commit when safe.

Everything outside is injected (source, sink, scorer, metrics, health, clocks), so the loop runs unchanged on
Kafka and on in-memory fakes. Output acknowledgements arrive on the producer's thread and are handed to the loop
through a queue; all bookkeeping happens on the loop's thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, cast

import numpy as np
from kafka.errors import KafkaError

from detector.batching import Batch, MicroBatcher
from detector.config import Config
from detector.error_policy import ErrorPolicy
from detector.events import RecordEncoder, segment_bounds
from detector.health import Health
from detector.io import BrokerError, InputMessage, OutputRecord, Sink, Source, TopicPartition, TransactionalSink
from detector.metrics import WorkerMetrics
from detector.offsets import OffsetTracker
from detector.scoring import ScoredBatch
from detector.threshold import Threshold
from detector.window_format import WindowDecoder

log = logging.getLogger("tsad.worker")
RETRY_BACKOFF_S = 0.5


class BatchScoring(Protocol):
    def score(self, windows: np.ndarray) -> ScoredBatch: ...


class Worker:
    def __init__(self, *, config: Config, source: Source, sink: Sink, scorer: BatchScoring, threshold: Threshold,
                 model: dict[str, str], window: int, metrics: WorkerMetrics, health: Health,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.cfg = config
        self.source, self.sink, self.scorer = source, sink, scorer
        self.threshold, self.model = threshold, model
        self.metrics, self.health = metrics, health
        self.clock, self.wall = clock, wall
        self.decoder = WindowDecoder(window, config.input.format, config.input.max_message_bytes)
        self.batcher = MicroBatcher(window, config.batch.max_size, config.batch.max_wait_ms / 1000.0, clock)
        self.tracker = OffsetTracker()
        self.policy = ErrorPolicy(config.topics.dead_letter, metrics, clock)
        self.encoder = RecordEncoder(model=model, threshold=threshold.value,
                                     bounds=segment_bounds(window, config.events.segments),
                                     top=config.events.top_segments, all_scores=bool(config.topics.scores))
        # acknowledgements, appended from any thread (deque appends and pops are atomic)
        self._done: deque[tuple[OutputRecord, Exception | None, float]] = deque()
        self._latencies: list[float] = []  # end-to-end seconds of windows closed since the last bulk observe
        self._retry: deque[tuple[float, OutputRecord]] = deque()
        self._committed: dict[TopicPartition, int] = {}
        self._last_commit = clock()
        self._last_periodic = -float("inf")
        self._paused = False
        self._consumed = metrics.consumed.labels(topic=config.topics.input)
        self._published = {kind: metrics.published.labels(kind=kind) for kind in ("event", "score", "dead_letter")}
        # exactly-once: outputs since the last commit form one transaction with the offsets they cover
        self.transactional = config.kafka.exactly_once
        self._epoch = 0
        self._txn_failed = False
        self._txn_dirty = False
        self._outstanding = 0  # records sent in this epoch and not yet acknowledged or failed
        metrics.threshold.set(threshold.value)

    # ---- the loop ---------------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        log.info("worker started: input %s, events %s", self.cfg.topics.input, self.cfg.topics.events)
        while not stop.is_set():
            try:
                self.step()
            except (KafkaError, BrokerError) as exc:  # transient broker trouble: keep the process, retry the loop
                log.warning("kafka error in the main loop, retrying: %s", exc)
                self.health.broker_connected = False
                stop.wait(1.0)
        self.drain(self.clock() + self.cfg.worker.shutdown_timeout_s)

    def step(self) -> None:
        self._drain_completions()
        self._retry_failed()
        self._backpressure()
        room = max(1, self.cfg.batch.max_in_flight - self.tracker.in_flight)
        # An empty batcher waits for the first window; a started batch keeps collecting until it is full or due,
        # so at moderate rates the loop turns once per batch rather than once per message.
        filling = len(self.batcher) > 0
        timeout = self.batcher.time_left() if filling else self.cfg.worker.poll_timeout_ms / 1000.0
        want = min(room, self.cfg.worker.max_poll_records)
        if filling:
            want = min(want, self.cfg.batch.max_size - len(self.batcher))
        messages = self.source.poll(timeout, max(1, want), fill=filling)
        self.metrics.last_poll.set(self.wall())
        if messages:
            self.health.broker_connected = True
            self._ingest(messages)
        if self.batcher.ready():
            self._process(self.batcher.take())
        self._drain_completions()
        self._maybe_commit()
        self._periodic()
        self.health.loop_ran()

    def drain(self, deadline: float) -> None:
        """Stop taking input; score what is buffered; wait for every output; commit. Called on shutdown."""
        self.health.stopping = True
        if len(self.batcher):
            self._process(self.batcher.take())
        while self.tracker.in_flight and self.clock() < deadline and not self._txn_failed:
            self.sink.flush(max(0.05, min(1.0, deadline - self.clock())))
            self._drain_completions()
            self._retry_failed()
            if self.tracker.in_flight and self._retry:
                time.sleep(0.05)
        self._maybe_commit(force=True)
        if self.tracker.in_flight:
            log.warning("shutdown deadline reached with %d windows not yet safe; they will be re-read",
                        self.tracker.in_flight)

    # ---- input ------------------------------------------------------------------------------------------------
    def _ingest(self, messages: list[InputMessage]) -> None:
        """Track, decode and batch a whole poll; dead-letter the invalid messages."""
        self._consumed.inc(len(messages))
        self.tracker.begin_many(messages)
        decoded = self.decoder.decode_many([m.value for m in messages])
        for i, error in decoded.errors:
            message = messages[i]
            self._emit(self.policy.invalid_input(message, error))
            self._release(message.tp, message.offset)
        chosen = [messages[i] for i in decoded.index]
        ids = decoded.ids
        for j, message in enumerate(chosen):
            if ids[j] is None and message.headers:
                header_id = dict(message.headers).get("tsad-id")
                if header_id:
                    ids[j] = header_id.decode("utf-8", errors="replace")
        start = 0
        while start < len(chosen):
            start += self.batcher.add(decoded.windows[start:], chosen[start:], ids[start:], decoded.sources[start:],
                                      decoded.ts[start:])
            if self.batcher.full:
                self._process(self.batcher.take())
        self._observe_latencies()

    # ---- scoring and deciding ---------------------------------------------------------------------------------
    def _process(self, batch: Batch) -> None:
        started = self.clock()
        result = self.scorer.score(batch.windows)
        scores = result.scores
        self.metrics.inference_seconds.observe(self.clock() - started)
        self.metrics.batch_size.observe(len(batch))
        self.metrics.scored.inc(len(batch))
        self.metrics.score.observe_many(scores)
        anomalous = self.threshold.is_anomaly(scores)
        decided_at = self.wall()  # one clock read per batch: the detection time, and when windows without outputs close
        records = self.encoder.encode(batch, scores, anomalous, result.shares(np.flatnonzero(anomalous)), decided_at)
        scores_topic = self.cfg.topics.scores
        outputs = anomalous.astype(np.int64) + (1 if scores_topic else 0)
        for message, n in zip(batch.messages, outputs.tolist(), strict=True):
            closed = self.tracker.processed(message.tp, message.offset, n)
            if closed is not None and closed >= 0:
                self._latencies.append(decided_at - closed / 1000.0)
        by_source: dict[str, int] = {}
        events = self.cfg.topics.events
        for r in records:
            message = batch.messages[r.position]
            key = r.source.encode()
            if r.anomaly:
                by_source[r.source] = by_source.get(r.source, 0) + 1
                self._dispatch(OutputRecord("event", events, key, r.value, [], message))
            if scores_topic:
                self._dispatch(OutputRecord("score", scores_topic, key, r.value, [], message))
        for source, n in by_source.items():
            self.metrics.anomalies.labels(source=source).inc(n)

    # ---- output -----------------------------------------------------------------------------------------------
    def _emit(self, record: OutputRecord) -> None:
        self.tracker.add_outputs((record.ref.topic, record.ref.partition), record.ref.offset)
        self._dispatch(record)

    def _dispatch(self, record: OutputRecord) -> None:
        record.attempts += 1
        record.epoch = self._epoch
        self._txn_dirty = True
        self._outstanding += 1
        self.sink.send(record, self._on_done)

    def _on_done(self, record: OutputRecord, error: Exception | None) -> None:  # any thread
        self._done.append((record, error, self.wall()))

    def _drain_completions(self) -> None:
        self.sink.serve()
        done = self._done
        if not done:
            return
        published = dict.fromkeys(self._published, 0)
        while done:
            record, error, at = done.popleft()
            if record.epoch != self._epoch:
                continue  # belongs to an aborted transaction: its window is being re-read
            self._outstanding -= 1
            if error is not None:
                self.policy.publish_failed(record, error)
                if self.transactional:
                    self._txn_failed = True  # a transaction cannot retry one send: abort and re-read instead
                else:
                    self._retry.append((self.clock() + RETRY_BACKOFF_S, record))
                continue
            published[record.kind] += 1
            self._release((record.ref.topic, record.ref.partition), record.ref.offset, at)
        for kind, n in published.items():
            if n:
                self._published[kind].inc(n)
        self._observe_latencies()

    def _retry_failed(self) -> None:
        now = self.clock()
        for _ in range(len(self._retry)):
            due, record = self._retry[0]
            if due > now:
                break
            self._retry.popleft()
            if self.tracker.is_open((record.ref.topic, record.ref.partition), record.ref.offset):
                self._dispatch(record)

    def _release(self, tp: TopicPartition, offset: int, at: float | None = None) -> None:
        timestamp_ms = self.tracker.release(tp, offset)
        if timestamp_ms is not None and timestamp_ms >= 0:
            self._latencies.append((at or self.wall()) - timestamp_ms / 1000.0)

    def _observe_latencies(self) -> None:
        if self._latencies:
            self.metrics.end_to_end_seconds.observe_many(np.maximum(self._latencies, 0.0))
            self._latencies = []

    # ---- flow control and commits -----------------------------------------------------------------------------
    def _backpressure(self) -> None:
        in_flight = self.tracker.in_flight
        self.metrics.in_flight.set(in_flight)
        limit = self.cfg.batch.max_in_flight
        if not self._paused and in_flight >= limit:
            assigned = self.source.assignment()
            self.source.pause(assigned)
            self._paused = True
            self.metrics.paused_partitions.set(len(assigned))
            log.info("backpressure: %d windows in flight, paused %d partitions", in_flight, len(assigned))
        elif self._paused and in_flight <= limit // 2:
            self.source.resume(self.source.assignment())
            self._paused = False
            self.metrics.paused_partitions.set(0)
            log.info("backpressure released: %d windows in flight", in_flight)

    def _maybe_commit(self, force: bool = False) -> None:
        if not force and self.clock() - self._last_commit < self.cfg.worker.commit_interval_ms / 1000.0:
            return
        self._last_commit = self.clock()
        if self.transactional:
            self._commit_transaction()
            return
        positions = self._new_positions()
        if not positions:
            return
        try:
            self.source.commit(positions)
        except Exception as exc:  # CommitFailedError on rebalance, broker away: retried at the next interval
            self.policy.commit_failed(exc)
            return
        self._committed.update(positions)
        self.metrics.commits.inc()

    def _new_positions(self) -> dict[TopicPartition, int]:
        assigned = self.source.assignment()
        return {tp: pos for tp, pos in self.tracker.committable().items()
                if tp in assigned and self._committed.get(tp) != pos}

    def _commit_transaction(self) -> None:
        """Flush the open transaction's records, then commit them together with the offsets they complete."""
        sink = cast(TransactionalSink, self.sink)
        self.sink.flush(self.cfg.worker.shutdown_timeout_s)
        self._drain_completions()
        if self._txn_failed:
            self._abort("an output send failed")
            return
        if self._outstanding:
            return  # the flush timed out: commit once every record of the transaction is acknowledged
        positions = self._new_positions()
        if not positions and not self._txn_dirty:
            return
        try:
            sink.commit_transaction(positions, self.source.group_metadata())
        except Exception as exc:  # fenced, coordinator moved, broker away: abort and re-read from the last commit
            self.policy.commit_failed(exc)
            self._abort(f"commit failed: {exc}")
            return
        self._txn_dirty = False
        self._committed.update(positions)
        self.metrics.commits.inc()
        self.metrics.transactions.labels(result="committed").inc()

    def _abort(self, reason: str) -> None:
        """Abort the open transaction and rewind every assigned partition to its last committed offset."""
        log.warning("aborting the transaction (%s); re-reading from the last committed offsets", reason)
        try:
            cast(TransactionalSink, self.sink).abort_transaction()
        except Exception as exc:  # the producer may be unusable; the re-read below still loses nothing
            log.warning("abort_transaction failed: %s", exc)
        self.metrics.transactions.labels(result="aborted").inc()
        self._epoch += 1
        self._txn_failed = self._txn_dirty = False
        self._outstanding = 0
        self._retry.clear()
        assigned = self.source.assignment()
        self.batcher.drop_partitions(assigned)
        self.tracker.forget(assigned)
        self.source.rewind(assigned)

    def _periodic(self) -> None:
        now = self.clock()
        if now - self._last_periodic < self.cfg.worker.lag_interval_s:
            return
        self._last_periodic = now
        self.health.broker_connected = self.source.connected()
        self.health.assigned_partitions = len(self.source.assignment())
        self.metrics.assigned_partitions.set(self.health.assigned_partitions)
        self.metrics.ready.set(1 if self.health.ready()[0] else 0)
        for (topic, partition), lag in self.source.lag().items():
            self.metrics.lag.labels(topic=topic, partition=str(partition)).set(lag)

    # ---- rebalance (called from inside source.poll) -----------------------------------------------------------
    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        if len(self.batcher):
            self._process(self.batcher.take())
        self.sink.flush(min(5.0, self.cfg.worker.shutdown_timeout_s))
        self._drain_completions()
        self._maybe_commit(force=True)
        dropped = self.tracker.forget(partitions)
        for tp in partitions:
            self._committed.pop(tp, None)
            with contextlib.suppress(KeyError):
                self.metrics.lag.remove(tp[0], str(tp[1]))
        log.info("partitions revoked: %s (%d unfinished windows left to the next owner)", sorted(partitions),
                 dropped)

    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        if self._paused and partitions:
            self.source.pause(partitions)
        self.health.assigned_partitions = len(self.source.assignment()) if partitions else 0
        self.metrics.assigned_partitions.set(self.health.assigned_partitions)
        log.info("partitions assigned: %s", sorted(partitions))
