"""The transaction bracket shared by the exactly-once sinks of both Kafka clients.

A transaction opens with the first record sent after a commit (or with the offsets, when a commit has only offsets
to carry) and commits together with the input offsets it completes. The clients differ only in the calls below and
in the errors they raise, which leave here as `BrokerError`.

Every call that waits on a transaction or group coordinator runs under a watchdog. Both clients can wait on a
coordinator for longer than any timeout they are given: librdkafka's `send_offsets_to_transaction` ignores its
timeout while the group coordinator's broker is down (confluentinc/librdkafka#5456, #5511, open), and kafka-python's
`commit_transaction` and `abort_transaction` take no timeout at all. A call that has not returned after
`call_timeout_s` leaves the producer *wedged*: it is abandoned, and a new producer with the same transactional id
takes its place (its `init_transactions` fences the old one, and the coordinator aborts the old transaction), so
the loop turns again instead of hanging behind a dead broker. The abandoned call's thread is left to finish or fail
on its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from detector.kafka.seams import BrokerError, DoneCallback, OutputRecord, TopicPartition, translated
from detector.kafka.settings import COMMIT_TIMEOUT_S

log = logging.getLogger("tsad.kafka")
T = TypeVar("T")


class TransactionBracket:
    """Mixed in before a Sink: every send joins the open transaction (opening one if needed)."""

    client_errors: tuple[type[BaseException], ...] = ()
    call_timeout_s = 2 * COMMIT_TIMEOUT_S  # a coordinator call not back by then is taken as hung
    _in_transaction = False
    _wedged: str | None = None  # why the producer must be replaced before the next transaction
    producer: Any  # the client's producer, made by the Sink this is mixed into

    def send(self, record: OutputRecord, on_done: DoneCallback) -> None:
        try:
            self._open()
        except BrokerError as exc:  # a failed send as far as the loop is concerned: it aborts and re-reads
            on_done(record, exc)
            return
        super().send(record, on_done)  # type: ignore[misc]  # the Sink this is mixed into

    def _begin(self) -> None:
        raise NotImplementedError

    def _send_offsets(self, positions: dict[TopicPartition, int], group_metadata: object) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _abort(self) -> None:
        raise NotImplementedError

    def _new_producer(self) -> object:
        """A new transactional producer (same settings, same transactional id), its `init_transactions` done; the
        client's errors may escape."""
        raise NotImplementedError

    def _retire(self, producer: object) -> None:
        """Let go of a replaced producer (its records belong to the abandoned transaction)."""

    def _open(self) -> None:
        if self._wedged is not None:
            raise BrokerError(f"the transactional producer is being replaced ({self._wedged})")
        if not self._in_transaction:
            with translated("begin transaction", *self.client_errors):
                self._begin()
            self._in_transaction = True

    def commit_transaction(self, positions: dict[TopicPartition, int], group_metadata: object) -> None:
        if not self._in_transaction and not positions:
            return
        self._open()
        if positions:
            self._watched("send offsets to transaction", lambda: self._send_offsets(positions, group_metadata))
        self._watched("commit transaction", self._commit)
        self._in_transaction = False

    def abort_transaction(self) -> None:
        """Abort the open transaction. If the abort fails or hangs, or an earlier call hung, the producer is replaced;
        raises BrokerError while that cannot be done (the next call tries again)."""
        if self._in_transaction and self._wedged is None:
            try:
                self._watched("abort transaction", self._abort)
            except BrokerError as exc:
                self._wedged = str(exc)
        self._in_transaction = False
        if self._wedged is not None:
            log.warning("replacing the transactional producer: %s", self._wedged)
            new = self._watched("new transactional producer", self._new_producer)
            old, self.producer = self.producer, new  # here, not on the helper thread: a late one is never used
            self._retire(old)
            log.warning("transactional producer replaced; the old one's transaction is aborted by the coordinator")
            self._wedged = None

    def _watched(self, what: str, call: Callable[[], T]) -> T:
        """Run `call` on a helper thread and return its result; a client error leaves as BrokerError, a call still
        running after `call_timeout_s` wedges the producer."""
        finished = threading.Event()
        failure: list[BaseException] = []
        result: list[T] = []

        def run() -> None:
            try:
                result.append(call())
            except BaseException as exc:  # handed to the caller's thread
                failure.append(exc)
            finally:
                finished.set()

        threading.Thread(target=run, name="tsad-txn-call", daemon=True).start()
        if not finished.wait(self.call_timeout_s):
            self._wedged = f"{what} did not return within {self.call_timeout_s:.0f} s"
            raise BrokerError(self._wedged)
        if failure:
            with translated(what, *self.client_errors):
                raise failure[0]
        return result[0]
