"""Exactly-once mode of the worker on the transactional in-memory sink: outputs become visible only with the
offsets they cover; a failed send or commit aborts and re-reads from the last commit, never duplicating."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
from prometheus_client import CollectorRegistry
from test_worker import Clock, W, msg, zero_model

from detector.config import BatchConfig, Config, EventsConfig, KafkaConfig, TopicsConfig, WorkerConfig
from detector.kafka.seams import BrokerError
from detector.ops.health import Health
from detector.ops.metrics import WorkerMetrics
from detector.pipeline.assembly import build_worker
from detector.testing import MemorySource, MemoryTransactionalSink


def make(auto_ack: bool = True):
    config = Config(kafka=KafkaConfig(exactly_once=True),
                    topics=TopicsConfig(input="in", events="ev", dead_letter="dlq", scores="sc"),
                    batch=BatchConfig(max_size=4, max_wait_ms=0, max_in_flight=64),
                    events=EventsConfig(mode="windows"), worker=WorkerConfig(commit_interval_ms=0))
    source = MemorySource()
    sink = MemoryTransactionalSink(auto_ack=auto_ack, source=source)
    registry = CollectorRegistry()
    clock = Clock()
    worker = build_worker(config=config, source=source, sink=sink, model=zero_model(4, version="1"),
                          metrics=WorkerMetrics(registry), health=Health(clock=clock), clock=clock, wall=lambda: 1.0)
    source.listener = worker
    return worker, source, sink, registry


def _ids(records) -> Counter:
    return Counter(json.loads(r.value)["id"] for r in records if r.kind == "score")


def test_outputs_become_visible_with_their_offsets() -> None:
    worker, source, sink, registry = make()
    source.add([msg(i, np.full(W, 3.0) if i % 3 == 0 else None) for i in range(8)])
    worker.step()
    assert len(sink.visible) == sum(1 for i in range(8) if i % 3 == 0) + 8  # events + one score each
    assert source.committed() == {("in", 0): 8}
    assert registry.get_sample_value("tsad_transactions_total", {"result": "committed"}) == 1


def test_failed_send_aborts_and_rereads_without_duplicates() -> None:
    worker, source, sink, registry = make(auto_ack=False)
    source.add([msg(i) for i in range(4)])
    worker.step()  # the batch is scored; its records wait for acknowledgement
    assert sink.pending
    sink.fail(RuntimeError("broker away"))
    worker.step()  # the commit finds the failure: abort, rewind
    assert sink.aborts == 1 and sink.visible == []
    assert registry.get_sample_value("tsad_transactions_total", {"result": "aborted"}) == 1
    sink.auto_ack = True
    for _ in range(3):
        worker.step()
    assert _ids(sink.visible) == Counter({f"in-0-{i}": 1 for i in range(4)})
    assert source.committed() == {("in", 0): 4}


def test_failed_commit_aborts_and_the_retry_is_exactly_once() -> None:
    worker, source, sink, _ = make()
    source.add([msg(i) for i in range(6)])
    sink.fail_next("commit_transaction", BrokerError("coordinator moved"))
    worker.step()
    assert sink.visible == [] and sink.aborts == 1
    for _ in range(3):
        worker.step()
    assert _ids(sink.visible) == Counter({f"in-0-{i}": 1 for i in range(6)})


def test_late_callbacks_of_an_aborted_transaction_are_ignored() -> None:
    worker, source, sink, _ = make(auto_ack=False)
    source.add([msg(i) for i in range(4)])
    worker.step()
    stale = list(sink.pending)
    sink.pending.clear()
    sink.fail_next("commit_transaction", BrokerError("fenced"))
    for record, on_done in stale:
        on_done(record, None)  # acknowledged, but the commit then fails
    worker.step()
    assert sink.aborts == 1
    for record, on_done in stale:  # a duplicate callback from the old epoch
        on_done(record, None)
    sink.auto_ack = True
    for _ in range(3):
        worker.step()
        sink.ack()
    assert _ids(sink.visible) == Counter({f"in-0-{i}": 1 for i in range(4)})


def _run_until(worker, done, timeout: float = 10.0) -> None:
    """worker.run() on its own thread, as the service runs it, until `done()`; the loop must still be alive."""
    import threading
    import time

    stop = threading.Event()
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            worker.run(stop)
        except BaseException as exc:  # would end the worker
            errors.append(exc)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.01)
    alive = thread.is_alive()
    stop.set()
    thread.join(5)
    assert not errors, f"an exception escaped the loop: {errors[0]!r}"
    assert alive, "the loop ended by itself"
    assert done(), "timed out"


def test_a_rewind_that_fails_during_an_abort_does_not_end_the_worker_nor_skip_windows() -> None:
    worker, source, sink, registry = make(auto_ack=False)
    source.add([msg(i) for i in range(8)])
    worker.step()
    sink.fail(BrokerError("broker away"))  # the transaction cannot commit: abort and rewind...
    source.fail_next("rewind")  # ...and the rewind itself fails once (a KafkaException in the client)
    sink.auto_ack = True
    _run_until(worker, lambda: len(_ids(sink.visible)) == 8)
    assert _ids(sink.visible) == Counter({f"in-0-{i}": 1 for i in range(8)})  # nothing lost, nothing twice
    assert registry.get_sample_value("tsad_transactions_total", {"result": "aborted"}) >= 1


def test_a_failing_abort_and_a_failing_commit_do_not_end_the_worker() -> None:
    worker, source, sink, _ = make()
    source.add([msg(i) for i in range(12)])
    sink.fail_next("commit_transaction", BrokerError("coordinator moved"))
    sink.fail_next("abort_transaction", BrokerError("producer fenced"))
    _run_until(worker, lambda: len(_ids(sink.visible)) == 12)
    assert _ids(sink.visible) == Counter({f"in-0-{i}": 1 for i in range(12)})
