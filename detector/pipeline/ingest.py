"""Ingest a whole poll: track every message, decode and validate them together, dead-letter what is refused, and
hand the valid windows to the batcher (a full batch is processed at once).

A message normally carries one window. A batched message (wire/batch.py) carries many: its offset stays open until
every one of its windows is processed and their outputs are safe (one tracking token per window), and a row refused
on its own is dead-lettered as a one-row batch while the other rows go on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from detector.kafka.seams import InputMessage
from detector.ops.metrics import Latencies, WorkerMetrics
from detector.pipeline.batching import MicroBatcher
from detector.pipeline.delivery import Delivery
from detector.pipeline.error_policy import ErrorPolicy
from detector.pipeline.offsets import OffsetTracker
from detector.pipeline.processing import BatchProcessor
from detector.wire.batch import row_of
from detector.wire.columns import Repeated
from detector.wire.windows import DecodedBatch, WindowDecoder, header_ids


class Ingest:
    def __init__(self, decoder: WindowDecoder, batcher: MicroBatcher, tracker: OffsetTracker,
                 processor: BatchProcessor, delivery: Delivery, policy: ErrorPolicy, latencies: Latencies,
                 metrics: WorkerMetrics, input_topic: str, wall: Callable[[], float] = time.time) -> None:
        self.decoder, self.batcher, self.tracker, self.processor = decoder, batcher, tracker, processor
        self.delivery, self.policy, self.latencies, self.wall = delivery, policy, latencies, wall
        self._consumed = metrics.consumed.labels(topic=input_topic)

    def __call__(self, messages: list[InputMessage]) -> None:
        self._consumed.inc(len(messages))
        self.tracker.begin_many(messages)
        decoded = self.decoder.decode_many([m.value for m in messages])
        now = self.wall()
        for i, error in decoded.errors:
            message = messages[i]
            self.delivery.emit(self.policy.invalid_input(message, error))
            self.latencies.closed(now, self.tracker.release(message.tp, message.offset))
        if decoded.rows is not None:
            self._batched(messages, decoded, now)
        chosen = by_window(messages, decoded.index)
        ids = decoded.ids if decoded.rows is not None else header_ids(chosen, decoded.ids)
        rows = decoded.rows
        start = 0
        while start < len(chosen):
            start += self.batcher.add(decoded.windows[start:], chosen[start:], ids[start:], decoded.sources[start:],
                                      decoded.ts[start:], None if rows is None else rows[start:])
            if self.batcher.full:
                self.processor.process(self.batcher.take())
        self.latencies.observe()

    def _batched(self, messages: list[InputMessage], decoded: DecodedBatch, now: float) -> None:
        """One token per window of each batched message (it was begun with one); refused rows dead-lettered."""
        for i, total in decoded.batch_rows.items():
            message = messages[i]
            if total == 0:  # an empty batch: nothing to wait for
                self.latencies.closed(now, self.tracker.release(message.tp, message.offset))
            elif total > 1:
                self.tracker.add_outputs(message.tp, message.offset, total - 1)
        for i, row, error in decoded.row_errors:
            message = messages[i]
            self.delivery.emit(self.policy.invalid_input(message, error, row, row_of(message.value or b"", row)))
            self.latencies.closed(now, self.tracker.release(message.tp, message.offset))


def by_window(messages: list[InputMessage], index: Sequence[int]) -> Sequence[InputMessage]:
    """The message of each decoded window; a run of one batched message's windows stays one entry."""
    if isinstance(index, Repeated):
        return Repeated([messages[i] for i in index.values], index.counts)
    return [messages[i] for i in index]
