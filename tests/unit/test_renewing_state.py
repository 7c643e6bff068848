"""RenewingStateReader: after a client failure the next call gets a new client; an open transaction is not one."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from detector.kafka.renewing_state import RenewingStateReader
from detector.kafka.seams import BrokerError, InputMessage, StateUnsettled


@dataclass
class Client:
    number: int
    fail_with: list[BrokerError] = field(default_factory=list)
    closed: bool = False

    def read(self, topic: str, partitions: set[int]) -> list[InputMessage]:
        if self.fail_with:
            raise self.fail_with.pop(0)
        return [InputMessage(topic, p, self.number, None, b"", [], 0) for p in sorted(partitions)]

    def partitions(self, topic: str) -> int | None:
        if self.fail_with:
            raise self.fail_with.pop(0)
        return 2

    def close(self) -> None:
        self.closed = True


def factory(*first_failures: BrokerError):
    made: list[Client] = []

    def make() -> Client:
        made.append(Client(len(made), list(first_failures) if not made else []))
        return made[-1]

    return make, made


def test_a_failed_read_makes_a_new_client_for_the_next_one() -> None:
    make, made = factory(BrokerError("offsets timed out against the old leader"))
    reader = RenewingStateReader(make)
    with pytest.raises(BrokerError, match="old leader"):
        reader.read("state", {0})
    assert made[0].closed
    assert [m.offset for m in reader.read("state", {0, 1})] == [1, 1]  # read by the second client
    assert len(made) == 2


def test_an_open_transaction_keeps_the_client() -> None:
    make, made = factory(StateUnsettled("transaction still open"))
    reader = RenewingStateReader(make)
    with pytest.raises(StateUnsettled):
        reader.read("state", {0})
    assert reader.read("state", {0})[0].offset == 0 and len(made) == 1 and not made[0].closed


def test_metadata_failures_renew_too_and_close_closes_the_current_client() -> None:
    make, made = factory(BrokerError("metadata timed out"))
    reader = RenewingStateReader(make)
    with pytest.raises(BrokerError):
        reader.partitions("state")
    assert reader.partitions("state") == 2 and len(made) == 2
    reader.close()
    assert made[1].closed
