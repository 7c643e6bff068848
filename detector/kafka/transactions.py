"""The transaction bracket shared by the exactly-once sinks of both Kafka clients.

A transaction opens with the first record sent after a commit (or with the offsets, when a commit has only offsets
to carry) and commits together with the input offsets it completes. The clients differ only in the four calls and
in the errors they raise, which leave here as `BrokerError`.
"""

from __future__ import annotations

from detector.kafka.seams import BrokerError, DoneCallback, OutputRecord, TopicPartition, translated


class TransactionBracket:
    """Mixed in before a Sink: every send joins the open transaction (opening one if needed)."""

    client_errors: tuple[type[BaseException], ...] = ()
    _in_transaction = False

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

    def _open(self) -> None:
        if not self._in_transaction:
            with translated("begin transaction", *self.client_errors):
                self._begin()
            self._in_transaction = True

    def commit_transaction(self, positions: dict[TopicPartition, int], group_metadata: object) -> None:
        if not self._in_transaction and not positions:
            return
        self._open()
        with translated("commit transaction", *self.client_errors):
            if positions:
                self._send_offsets(positions, group_metadata)
            self._commit()
        self._in_transaction = False

    def abort_transaction(self) -> None:
        if self._in_transaction:
            try:
                with translated("abort transaction", *self.client_errors):
                    self._abort()
            finally:
                self._in_transaction = False
