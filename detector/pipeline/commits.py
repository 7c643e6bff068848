"""Commit strategies: when input offsets are committed, and what a failed output send leads to.

- `OffsetCommits` (at-least-once): commit the positions whose outputs are all acknowledged; a failed send is
  resent after a backoff (its input stays uncommitted meanwhile).
- `TransactionalCommits` (exactly-once): the outputs sent since the last commit and the offsets they complete
  commit in one Kafka transaction; a failed send or commit aborts it, and every assigned partition is re-read from
  its last committed offset.

The loop calls the same four methods on either, so it holds no exactly-once branches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from detector.kafka.seams import BrokerError, Source, TopicPartition, TransactionalSink
from detector.ops.metrics import WorkerMetrics
from detector.pipeline.batching import MicroBatcher
from detector.pipeline.delivery import Delivery
from detector.pipeline.error_policy import ErrorPolicy
from detector.pipeline.offsets import OffsetTracker

log = logging.getLogger("tsad.worker")


class CommitStrategy(Protocol):
    def recover(self) -> None:
        """Before the next poll: finish anything a failure interrupted (raises BrokerError while it cannot)."""

    def handle_failed_sends(self) -> None:
        """React to output sends that failed."""

    def commit(self, force: bool = False) -> None:
        """Commit what is safe, once the commit interval has passed (at once with `force`)."""

    def finish(self, deadline: float) -> None:
        """On shutdown or revocation: wait (until `deadline`) for outstanding outputs, then commit."""

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Partitions given up in a rebalance: their next owner commits them from now on."""


class _IntervalCommits:
    """What both strategies share: the commit interval and the positions already committed."""

    def __init__(self, source: Source, tracker: OffsetTracker, delivery: Delivery, policy: ErrorPolicy,
                 metrics: WorkerMetrics, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.source, self.tracker, self.delivery, self.policy, self.metrics = source, tracker, delivery, policy, metrics
        self.interval_s = interval_s
        self.clock = clock
        self._last = clock()
        self._committed: dict[TopicPartition, int] = {}

    def commit(self, force: bool = False) -> None:
        if not force and self.clock() - self._last < self.interval_s:
            return
        self._last = self.clock()
        self._commit()

    def _commit(self) -> None:
        raise NotImplementedError

    def _new_positions(self) -> dict[TopicPartition, int]:
        assigned = self.source.assignment()
        return {tp: pos for tp, pos in self.tracker.committable().items()
                if tp in assigned and self._committed.get(tp) != pos}

    def _committed_now(self, positions: dict[TopicPartition, int]) -> None:
        self._committed.update(positions)
        self.metrics.commits.inc()

    def forget(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self._committed.pop(tp, None)


class OffsetCommits(_IntervalCommits):
    """At-least-once: plain offset commits of what every output has made safe."""

    def recover(self) -> None:
        """Nothing is ever left half done."""

    def handle_failed_sends(self) -> None:
        self.delivery.resend_due()

    def _commit(self) -> None:
        positions = self._new_positions()
        if not positions:
            return
        try:
            self.source.commit(positions)
        except BrokerError as exc:  # a rebalance under way, the broker away: retried at the next interval
            self.policy.commit_failed(exc)
            return
        self._committed_now(positions)

    def finish(self, deadline: float) -> None:
        while self.tracker.in_flight and self.clock() < deadline:
            self.delivery.flush(max(0.05, min(1.0, deadline - self.clock())))
            self.delivery.resend_due()
            if self.tracker.in_flight and self.delivery.has_failed:
                time.sleep(0.05)
        self.commit(force=True)


class TransactionalCommits(_IntervalCommits):
    """Exactly-once: outputs and the offsets they complete commit in one transaction, or not at all."""

    def __init__(self, source: Source, sink: TransactionalSink, batcher: MicroBatcher, tracker: OffsetTracker,
                 delivery: Delivery, policy: ErrorPolicy, metrics: WorkerMetrics, interval_s: float,
                 flush_timeout_s: float, clock: Callable[[], float] = time.monotonic,
                 on_rewind: Callable[[set[TopicPartition]], None] | None = None) -> None:
        super().__init__(source, tracker, delivery, policy, metrics, interval_s, clock)
        self.sink, self.batcher = sink, batcher
        self.on_rewind = on_rewind  # state kept beside the offsets (episodes) goes back to the last commit too
        self.flush_timeout_s = flush_timeout_s
        self._sent_mark = delivery.sent  # sends counted when the last transaction ended
        self._abort_pending = self._rewind_pending = False

    def handle_failed_sends(self) -> None:
        """A transaction cannot resend one record: the failure aborts it at the next commit."""

    def _commit(self) -> None:
        self.delivery.flush(self.flush_timeout_s)
        if self.delivery.has_failed:
            self._abort("an output send failed")
            return
        if self.delivery.outstanding:
            return  # the flush timed out: commit once every record of the transaction is acknowledged
        positions = self._new_positions()
        if not positions and self.delivery.sent == self._sent_mark:
            return
        try:
            self.sink.commit_transaction(positions, self.source.group_metadata())
        except BrokerError as exc:  # fenced, coordinator moved, broker away: abort and re-read from the last commit
            self.policy.commit_failed(exc)
            self._abort(f"commit failed: {exc}")
            return
        self._sent_mark = self.delivery.sent
        self._committed_now(positions)
        self.metrics.transactions.labels(result="committed").inc()

    def _abort(self, reason: str) -> None:
        """Abort the open transaction and rewind every assigned partition to its last committed offset."""
        log.warning("aborting the transaction (%s); re-reading from the last committed offsets", reason)
        self.metrics.transactions.labels(result="aborted").inc()
        self.delivery.abandon()
        self._sent_mark = self.delivery.sent
        self._abort_pending = self._rewind_pending = True
        try:
            self.recover()
        except BrokerError as exc:  # the producer could not be aborted or replaced yet: retried before the next poll
            log.warning("transaction abort not finished: %s", exc)

    def recover(self) -> None:
        """Finish the abort, drop what was read since the last commit and seek back to it; until both succeed,
        nothing more is polled (reading on from the current position would skip the aborted windows)."""
        if self._abort_pending:
            self.sink.abort_transaction()  # raises BrokerError while the producer can be neither aborted nor replaced
            self._abort_pending = False
        if not self._rewind_pending:
            return
        assigned = self.source.assignment()
        self.batcher.drop_partitions(assigned)
        self.tracker.forget(assigned)
        self.source.rewind(assigned)
        if self.on_rewind is not None:
            self.on_rewind(assigned)
        self._rewind_pending = False

    def finish(self, deadline: float) -> None:
        while self.tracker.in_flight and self.clock() < deadline and not self.delivery.has_failed:
            self.delivery.flush(max(0.05, min(1.0, deadline - self.clock())))
        self.commit(force=True)
