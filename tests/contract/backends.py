"""The three implementations of the Kafka seams behind one test-facing interface: the in-memory fakes, and the
kafka-python and librdkafka backends against the real broker (built by the same factory the service uses)."""

from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

from harness import read_until

from detector.config import Config, KafkaConfig, TopicsConfig
from detector.kafka.factory import kafka_clients
from detector.kafka.seams import InputMessage, Sink, Source, TopicPartition
from detector.testing import MemorySink, MemorySource, MemoryTransactionalSink


class NoRebalance:
    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        pass

    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        pass


class Assignments(NoRebalance):
    """Counts the assignments a source's rebalance callbacks delivered; runs `on_revoke` (if set) in a revocation."""

    def __init__(self) -> None:
        self.count = 0
        self.on_revoke: Callable[[set[TopicPartition]], None] | None = None

    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        if self.on_revoke is not None and partitions:
            self.on_revoke(partitions)

    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        self.count += 1


def poll_until(source: Source, n: int, max_records: int = 1000, timeout: float = 30.0) -> list[InputMessage]:
    """Poll until `n` messages arrived (each poll at most `max_records`) or the timeout."""
    out: list[InputMessage] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        got = source.poll(0.2, max_records)
        assert len(got) <= max_records, f"poll returned {len(got)} > max_records {max_records}"
        out.extend(got)
    return out


class Failing:
    """A proxy of a client object whose named methods raise `error` once, then behave again."""

    def __init__(self, target: Any, methods: list[str], error: BaseException) -> None:
        self._target, self._methods, self._error = target, set(methods), error

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if name in self._methods:
            def fail(*_args: Any, **_kwargs: Any) -> Any:
                self._methods.discard(name)
                raise self._error
            return fail
        return attr


class MemoryBackend:
    name = "memory"

    def __init__(self) -> None:
        self.sources: dict[str, MemorySource] = {}
        self.sinks: list[MemorySink] = []

    def source(self, topic: str, exactly_once: bool = False) -> Source:
        self.sources[topic] = MemorySource()
        return self.sources[topic]

    def sink(self, transactional: bool = False, source: Source | None = None) -> Sink:
        sink: MemorySink = (MemoryTransactionalSink(source=source)  # type: ignore[arg-type]
                            if transactional else MemorySink())
        self.sinks.append(sink)
        return sink

    def topic(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    def produce(self, topic: str, values: list[bytes]) -> None:
        source = self.sources[topic]
        start = len(source.logs.get((topic, 0), []))
        source.add([InputMessage(topic, 0, start + i, b"k", v, [], 0) for i, v in enumerate(values)])

    def committed_outputs(self, topic: str, expect: int, timeout: float = 3.0) -> list[bytes]:
        return [r.value for s in self.sinks if isinstance(s, MemoryTransactionalSink) for r in s.visible
                if r.topic == topic]

    def committed_offset(self, source: Source, tp: TopicPartition) -> int | None:
        assert isinstance(source, MemorySource)
        return source.committed().get(tp)

    def on_revoke(self, source: Source, hook: Callable[[set[TopicPartition]], None]) -> None:
        assert isinstance(source, MemorySource)
        source.listener = Assignments()
        source.listener.on_revoke = hook

    def rebalance(self, source: Source) -> list[InputMessage]:
        """Take every partition from `source` and give it back (as a member joining and leaving the group does)."""
        assert isinstance(source, MemorySource)
        partitions = source.assignment()
        source.revoke(partitions)
        source.assign(partitions)
        return []

    def break_source(self, source: Source, method: str) -> None:
        assert isinstance(source, MemorySource)
        source.fail_next(method)

    def break_sink(self, sink: Sink, method: str) -> None:
        assert isinstance(sink, MemorySink)
        sink.fail_next(method)

    def close(self) -> None:
        pass


class KafkaBackend:
    """A real client backend on the session broker; `native` builds the client library's own error."""

    def __init__(self, client: str, bootstrap: str, new_topic: Callable[..., str]) -> None:
        self.name = client
        self.bootstrap = bootstrap
        self.new_topic = new_topic
        self.made: list[Any] = []
        self._sinks: dict[int, Sink] = {}
        self._members: dict[int, tuple[Config, Assignments]] = {}  # source -> its config and its assignments

    def _config(self, topic: str, exactly_once: bool) -> Config:
        tag = uuid.uuid4().hex[:8]
        return Config(kafka=KafkaConfig(client=self.name, bootstrap_servers=self.bootstrap, group_id=f"g-{tag}",
                                        client_id=f"c-{tag}", exactly_once=exactly_once,
                                        session_timeout_ms=6000),
                      topics=TopicsConfig(input=topic, events=f"ev-{tag}", dead_letter=f"dlq-{tag}"))

    def topic(self, prefix: str) -> str:
        return self.new_topic(prefix)

    def source(self, topic: str, exactly_once: bool = False) -> Source:
        config, assignments = self._config(topic, exactly_once), Assignments()
        source, sink = kafka_clients(config, assignments)
        self.made += [source, sink]
        self._sinks[id(source)] = sink
        self._members[id(source)] = config, assignments
        return source

    def on_revoke(self, source: Source, hook: Callable[[set[TopicPartition]], None]) -> None:
        self._members[id(source)][1].on_revoke = hook

    def rebalance(self, source: Source, timeout: float = 60.0) -> list[InputMessage]:
        """A second member joins `source`'s group and leaves it again: both clients' default assignors are eager,
        so `source` gives up all its partitions twice and ends with all of them assigned again. Returns what
        `source` polled after that last assignment."""
        config, assignments = self._members[id(source)]
        before = source.assignment()
        other_assignments = Assignments()
        other, other_sink = kafka_clients(dataclasses.replace(config, kafka=dataclasses.replace(
            config.kafka, client_id=f"{config.kafka.client_id}-other")), other_assignments)
        deadline = time.monotonic() + timeout
        seen = assignments.count
        try:
            while other_assignments.count == 0 or assignments.count == seen:  # both in the new generation
                assert time.monotonic() < deadline, "the second member never joined"
                source.poll(0.1, 1000)
                other.poll(0.1, 1000)
            # The test's premise: `source` keeps its partitions through the join (the range assignor gives a
            # single partition to the member id that sorts first, and "c-<tag>-<uuid>" sorts before
            # "c-<tag>-other-<uuid>"), so they come back to the same member that paused them.
            assert source.assignment() == before, "the first member did not keep its partitions through the join"
        finally:
            other.close()
            other_sink.close()
        seen = assignments.count
        final: list[InputMessage] = []
        while assignments.count == seen or source.assignment() != before:  # the group without the other member
            assert time.monotonic() < deadline, "the partitions never came back"
            got = source.poll(0.1, 1000)
            if assignments.count != seen:
                final += got
        return final

    def sink(self, transactional: bool = False, source: Source | None = None) -> Sink:
        """With a source: the sink built beside it (same group, so transactional offsets land in its group)."""
        if source is not None:
            return self._sinks[id(source)]
        _, sink = kafka_clients(self._config(self.new_topic("unused"), transactional), NoRebalance())
        self.made.append(sink)
        return sink

    def produce(self, topic: str, values: list[bytes]) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        for v in values:
            producer.send(topic, value=v, key=b"k", partition=0)
        producer.flush()
        producer.close()

    def committed_outputs(self, topic: str, expect: int, timeout: float = 3.0) -> list[bytes]:
        got = read_until(self.bootstrap, topic, lambda out: len(out) > expect, timeout,
                         isolation_level="read_committed")
        return [m.value for m in got]

    def committed_offset(self, source: Source, tp: TopicPartition) -> int | None:
        consumer = source.consumer  # type: ignore[attr-defined]
        if self.name == "confluent":
            from confluent_kafka import TopicPartition as KafkaTP

            committed = consumer.committed([KafkaTP(*tp)], timeout=10)
            return committed[0].offset if committed[0].offset >= 0 else None
        from kafka.structs import TopicPartition as KafkaTP  # type: ignore[assignment]

        return consumer.committed(KafkaTP(*tp), timeout_ms=10_000)

    def native(self) -> BaseException:
        if self.name == "confluent":
            from confluent_kafka import KafkaError, KafkaException

            return KafkaException(KafkaError(KafkaError._STATE, "injected"))
        from kafka.errors import KafkaError as KafkaPythonError

        return KafkaPythonError("injected")

    SOURCE_CALLS: ClassVar[dict[str, dict[str, list[str]]]] = {
        "kafka-python": {"poll": ["poll"], "pause": ["pause"], "resume": ["resume"], "assignment": ["assignment"],
                         "commit": ["commit"], "rewind": ["committed"], "group_metadata": ["group_metadata"],
                         "lag": ["assignment"]},
        "confluent": {"poll": ["poll", "consume"], "pause": ["pause"], "resume": ["resume"],
                      "assignment": ["assignment"], "commit": ["commit"], "rewind": ["committed"],
                      "group_metadata": ["consumer_group_metadata"], "lag": ["position"]},
    }
    SINK_CALLS: ClassVar[dict[str, dict[str, list[str]]]] = {
        "kafka-python": {"flush": ["flush"], "commit_transaction": ["commit_transaction"],
                         "abort_transaction": ["abort_transaction"], "send": ["send"]},
        "confluent": {"flush": ["flush"], "commit_transaction": ["commit_transaction"],
                      "abort_transaction": ["abort_transaction"], "send": ["produce"]},
    }

    def break_source(self, source: Source, method: str) -> None:
        real = source.consumer  # type: ignore[attr-defined]
        source.consumer = Failing(real, self.SOURCE_CALLS[self.name][method], self.native())  # type: ignore[attr-defined]

    def break_sink(self, sink: Sink, method: str) -> None:
        real = sink.producer  # type: ignore[attr-defined]
        sink.producer = Failing(real, self.SINK_CALLS[self.name][method], self.native())  # type: ignore[attr-defined]

    def close(self) -> None:
        for thing in reversed(self.made):
            with contextlib.suppress(Exception):  # a test's leftover client: closing is best effort
                thing.close()

