"""The worker loop: poll → decode/validate → micro-batch → process (score, decide, encode) → deliver → commit.

The loop only drives its parts; each is injected (`pipeline.assembly.build_worker` wires them from the config), so
it runs unchanged on Kafka and on in-memory fakes. Broker trouble reaches it as `BrokerError` from whichever part
met it; the loop logs it, waits a moment and turns again: the worker never dies of a broker or of its data.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from detector.config import Config
from detector.kafka.seams import BrokerError, Source, TopicPartition
from detector.ops.consumer_status import ConsumerStatus
from detector.ops.health import Health
from detector.ops.metrics import Latencies, WorkerMetrics
from detector.pipeline.backpressure import Backpressure
from detector.pipeline.batching import MicroBatcher
from detector.pipeline.commits import CommitStrategy
from detector.pipeline.delivery import Delivery
from detector.pipeline.error_policy import ErrorPolicy
from detector.pipeline.ingest import Ingest
from detector.pipeline.model_swap import ModelSwap
from detector.pipeline.offsets import OffsetTracker
from detector.pipeline.processing import BatchProcessor

log = logging.getLogger("tsad.worker")


class Worker:
    def __init__(self, *, config: Config, source: Source, ingest: Ingest, batcher: MicroBatcher,
                 tracker: OffsetTracker, processor: BatchProcessor, delivery: Delivery, commits: CommitStrategy,
                 backpressure: Backpressure, status: ConsumerStatus, policy: ErrorPolicy, latencies: Latencies,
                 metrics: WorkerMetrics, health: Health, model_swap: ModelSwap | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.source, self.ingest, self.batcher, self.tracker = source, ingest, batcher, tracker
        self.processor, self.delivery, self.commits = processor, delivery, commits
        self.backpressure, self.status, self.policy, self.latencies = backpressure, status, policy, latencies
        self.metrics, self.health, self.model_swap = metrics, health, model_swap
        self.clock, self.wall = clock, wall
        w = config.worker
        self.max_poll_records, self.poll_timeout_s = w.max_poll_records, w.poll_timeout_ms / 1000.0
        self.shutdown_timeout_s = w.shutdown_timeout_s
        self.revoke_flush_s = min(5.0, w.shutdown_timeout_s)

    def run(self, stop: threading.Event) -> None:
        log.info("worker started")
        while not stop.is_set():
            try:
                self.step()
            except BrokerError as exc:  # client or broker trouble: keep the process, turn the loop again
                self.policy.broker_failed(exc)
                self.health.broker_connected = False
                stop.wait(1.0)
        self.drain(self.clock() + self.shutdown_timeout_s)

    def step(self) -> None:
        self.commits.recover()
        self._load_pending_state()
        if self.model_swap is not None:  # between two batches: a new bundle (hot reload) takes over here
            self.model_swap.refresh()
        self.delivery.collect()
        self.commits.handle_failed_sends()
        self.backpressure.update(self.tracker.in_flight)
        room = max(1, self.backpressure.limit - self.tracker.in_flight)
        # An empty batcher waits for the first window; a started batch keeps collecting until it is full or due,
        # so at moderate rates the loop turns once per batch rather than once per message.
        filling = len(self.batcher) > 0
        timeout = self.batcher.time_left() if filling else self.poll_timeout_s
        want = min(room, self.max_poll_records)
        if filling:
            want = min(want, self.batcher.max_size - len(self.batcher))
        messages = self.source.poll(timeout, max(1, want), fill=filling)
        self.metrics.last_poll.set(self.wall())
        if messages:
            self.health.broker_connected = True
            self.ingest(messages)  # track, decode, dead-letter, batch (pipeline/ingest.py)
        if self.batcher.ready():
            self.processor.process(self.batcher.take())
        self.delivery.collect()
        self.health.output_wait_s = self.delivery.stalled_for()
        self.commits.commit()
        self.status.refresh()
        self.health.loop_ran()

    def _load_pending_state(self) -> None:
        episodes = self.processor.episodes
        if episodes is None or not episodes.pending:
            return
        loaded = episodes.load_pending(self.source.assignment(), self.clock())
        if loaded and not self.backpressure.active:
            try:
                self.source.resume(loaded)
            except BrokerError:  # still paused: they wait again, and their state is read again before they resume
                episodes.pending |= loaded
                raise

    def drain(self, deadline: float) -> None:
        """Stop taking input; score what is buffered; wait for every output; commit. Called on shutdown."""
        self.health.stopping = True
        try:
            if len(self.batcher):
                self.processor.process(self.batcher.take())
            self.commits.finish(deadline)
        except BrokerError as exc:  # nothing is committed past what is safe: a restart re-reads the rest
            log.warning("shutdown could not finish cleanly: %s", exc)
        if self.tracker.in_flight:
            log.warning("shutdown deadline reached with %d windows not yet safe; they will be re-read",
                        self.tracker.in_flight)

    # ---- rebalance (called from inside source.poll) -----------------------------------------------------------
    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        # Not ready while the flush below waits (up to revoke_flush_s): these partitions are no longer ours to serve,
        # and when the revocation comes from a broker that went away, the loop is stuck here until the flush gives up.
        self.status.assigned(len(self.source.assignment() - partitions))
        if len(self.batcher):
            self.processor.process(self.batcher.take())
        self.delivery.flush(self.revoke_flush_s)
        self.commits.commit(force=True)
        dropped = self.tracker.forget(partitions)
        self.commits.forget(partitions)
        if self.processor.episodes is not None:
            self.processor.episodes.forget(partitions)
        self.backpressure.revoked(partitions)
        self.status.forget(partitions)
        log.info("partitions revoked: %s (%d unfinished windows left to the next owner)", sorted(partitions),
                 dropped)

    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        episodes = self.processor.episodes
        if episodes is not None and partitions:  # state first: no window of these partitions before it is read
            try:
                episodes.load(partitions)
            except BrokerError as exc:  # read it before the next poll; until then nothing of them is fetched
                log.warning("episode state of %s not read (%s); those partitions wait for it", sorted(partitions),
                            exc)
                episodes.pending |= partitions
                self.source.pause(partitions)
        self.backpressure.assigned(partitions)  # after the state: a failed pause here is retried by the next update
        self.status.assigned(len(self.source.assignment()) if partitions else 0)
        log.info("partitions assigned: %s", sorted(partitions))
