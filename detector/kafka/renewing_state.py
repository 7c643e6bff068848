"""A state reader that makes its client anew after a failed read.

Once a state partition's leader was killed or paused, both clients' idle assign-mode consumers kept asking the old
leader for offsets long after a new one was elected (kafka-python: "Failed to get offsets by timestamps" every
30 s; librdkafka: watermark queries timing out), holding the episode state, and with it the partitions' input,
back (tests/integration/test_cluster_faults.py on the three-node cluster). A new client finds the new leader.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from detector.kafka.seams import BrokerError, InputMessage, StateReader, StateUnsettled

log = logging.getLogger("tsad.kafka")


class RenewingStateReader:
    """Delegates to a reader made by `make`; after a BrokerError (other than StateUnsettled, which is not the
    client's fault) the next call gets a new one."""

    def __init__(self, make: Callable[[], StateReader]) -> None:
        self.make = make
        self.reader: StateReader | None = make()

    def _current(self) -> StateReader:
        if self.reader is None:
            self.reader = self.make()
        return self.reader

    def _renew(self, exc: BrokerError) -> None:
        log.warning("state reader failed (%s); a new client will read next time", exc)
        old, self.reader = self.reader, None
        if old is not None:
            try:
                old.close()
            except BrokerError as close_exc:
                log.debug("state reader close: %s", close_exc)

    def read(self, topic: str, partitions: set[int]) -> list[InputMessage]:
        try:
            return self._current().read(topic, partitions)
        except StateUnsettled:
            raise
        except BrokerError as exc:
            self._renew(exc)
            raise

    def partitions(self, topic: str) -> int | None:
        try:
            return self._current().partitions(topic)
        except BrokerError as exc:
            self._renew(exc)
            raise

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
