"""The transaction bracket of both exactly-once sinks: a coordinator call that hangs (librdkafka#5456: a dead group
coordinator; kafka-python: no timeout at all) wedges the producer, which is replaced instead of holding the loop."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from detector.kafka.seams import BrokerError, InputMessage, OutputRecord
from detector.kafka.transactions import TransactionBracket
from detector.testing import MemorySink

REF = InputMessage("in", 0, 0, None, b"", [], 0)


@dataclass
class ClientSink(TransactionBracket, MemorySink):
    """A sink whose client calls can be made to hang (until `release`) or fail, on the producer in use."""

    hang_in: str | None = None
    fail_in: dict[str, int] = field(default_factory=dict)  # call -> how many more times it raises
    producers: int = 1
    producer: object = "producer 1"
    calls: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    client_errors = (RuntimeError,)
    call_timeout_s = 0.2

    def _call(self, name: str) -> None:
        self.calls.append(f"{name}@{self.producers}")
        if self.fail_in.get(name, 0) > 0:
            self.fail_in[name] -= 1
            raise RuntimeError(f"{name} refused")
        if self.hang_in == name:
            self.release.wait(10)

    def _begin(self) -> None:
        self._call("begin")

    def _send_offsets(self, positions: dict, group_metadata: object) -> None:
        self._call("send_offsets")

    def _commit(self) -> None:
        self._call("commit")

    def _abort(self) -> None:
        self._call("abort")

    def _new_producer(self) -> object:
        self._call("new_producer")
        self.producers += 1
        self.hang_in = None
        return f"producer {self.producers}"


def record() -> OutputRecord:
    return OutputRecord("score", "sc", None, b"{}", [], REF)


def send(sink: ClientSink) -> Exception | None:
    outcome: list[Exception | None] = []
    sink.send(record(), lambda _r, error: outcome.append(error))
    return outcome[0]


def test_a_hanging_send_offsets_wedges_the_producer_and_the_abort_replaces_it() -> None:
    sink = ClientSink(hang_in="send_offsets")
    assert send(sink) is None
    began = time.monotonic()
    with pytest.raises(BrokerError, match="send offsets to transaction did not return within"):
        sink.commit_transaction({("in", 0): 1}, object())
    assert time.monotonic() - began < 2.0  # the watchdog, not the client, ended the wait
    error = send(sink)  # a wedged producer takes no records: the loop sees failed sends and aborts
    assert isinstance(error, BrokerError) and "being replaced" in str(error)
    sink.abort_transaction()
    assert "abort@1" not in sink.calls  # the hung producer is not asked again
    assert sink.producers == 2 and sink.producer == "producer 2"
    assert send(sink) is None
    sink.commit_transaction({("in", 0): 1}, object())
    assert sink.calls[-3:] == ["begin@2", "send_offsets@2", "commit@2"]
    sink.release.set()


def test_a_commit_refused_by_the_client_is_aborted_on_the_same_producer() -> None:
    sink = ClientSink(fail_in={"commit": 1})
    send(sink)
    with pytest.raises(BrokerError, match="commit transaction: RuntimeError: commit refused"):
        sink.commit_transaction({}, object())
    sink.abort_transaction()
    assert "abort@1" in sink.calls and sink.producers == 1


def test_a_failed_abort_replaces_the_producer() -> None:
    sink = ClientSink(fail_in={"abort": 1})
    send(sink)
    sink.abort_transaction()
    assert sink.producers == 2
    assert send(sink) is None


def test_a_replacement_that_fails_is_tried_again_by_the_next_abort() -> None:
    sink = ClientSink(fail_in={"abort": 1, "new_producer": 1})
    send(sink)
    with pytest.raises(BrokerError, match="new transactional producer: RuntimeError"):
        sink.abort_transaction()
    assert isinstance(send(sink), BrokerError)  # still wedged: nothing is sent on the old producer
    sink.abort_transaction()
    assert sink.producers == 2 and send(sink) is None


def test_an_idle_bracket_commits_nothing() -> None:
    sink = ClientSink()
    sink.commit_transaction({}, object())
    sink.abort_transaction()
    assert sink.calls == []
