"""Wiring only: build the worker's parts from the config, run it, and close everything from one ExitStack."""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import threading
from datetime import datetime

from prometheus_client import CollectorRegistry

from detector import __version__
from detector.config import Config
from detector.kafka.factory import kafka_clients, state_reader
from detector.kafka.preflight import check_kafka
from detector.kafka.seams import TopicPartition
from detector.kafka.state_topic import ensure_state_topic
from detector.model.bundle import BundleError
from detector.model.reload import BundleWatcher
from detector.model.serving import ServingModel, load_serving_model, use_cpu_threads
from detector.ops.health import Health
from detector.ops.http_server import make_server, serve_in_background
from detector.ops.metrics import WorkerMetrics
from detector.pipeline.assembly import build_worker
from detector.pipeline.worker import Worker
from detector.wire.batch import warm_up as warm_arrow

log = logging.getLogger("tsad.service")

CONNECT_TIMEOUT_S = 5.0  # connecting the producer to its topics is an optimisation: start-up does not wait longer


class _Rebalance:
    """Forwards rebalance callbacks to the worker, which is built after the consumer that needs the listener."""

    worker: Worker | None = None

    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        if self.worker is not None:
            self.worker.on_revoked(partitions)

    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        if self.worker is not None:
            self.worker.on_assigned(partitions)


def run(config: Config, stop: threading.Event | None = None, registry: CollectorRegistry | None = None,
        install_signals: bool = True) -> int:
    stop = stop or threading.Event()
    registry = registry or CollectorRegistry()
    metrics = WorkerMetrics(registry, config.metrics.source_labels)
    health = Health(max_loop_age_s=config.worker.health_max_loop_age_s)
    if install_signals:
        def on_signal(signum: int, _frame: object) -> None:
            log.info("signal %d: stopping", signum)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
    with contextlib.ExitStack() as stack:
        server = make_server(config.http.host, config.http.port, registry, health)
        stack.callback(server.server_close)
        stack.callback(server.shutdown)
        serve_in_background(server)
        log.info("serving /metrics, /healthz, /readyz on %s:%d", config.http.host, server.server_address[1])

        use_cpu_threads(config.model.threads)
        model, device = load_serving_model(config)
        if config.input.format in ("batch", "auto") or config.events.scores_format == "arrow":
            warm_arrow(model.width)  # before readiness: the first batched message should not pay pyarrow's set-up
        metrics.model_info.info({"name": model.identity.name, "version": model.identity.version,
                                 "device": str(device), "dtype": config.model.dtype,
                                 "package_version": __version__})
        created = _timestamp(model.created)
        if created is not None:
            metrics.model_created.set(created)
        health.model_ready = True
        writable = check_kafka(config)  # reachable, TLS, login, topic ACLs: a problem stops start-up here (exit 2)

        state = None
        if config.events.mode != "windows":  # episodes: their state topic, checked (or created) before joining
            state = state_reader(config)
            stack.callback(state.close)
            ensure_state_topic(config, state)
        rebalance = _Rebalance()
        source, sink = kafka_clients(config, rebalance)
        stack.callback(sink.close)
        stack.callback(source.close)
        # the first outputs should not wait for metadata
        sink.connect([t for t in config.hot_topics if t in writable], CONNECT_TIMEOUT_S)
        shadow = _shadow(config, model)
        watcher = None
        if config.model.reload_interval_s > 0:  # hot reload: a new bundle at the location is swapped in
            watcher = BundleWatcher(config.model.bundle, lambda path: load_serving_model(config, path)[0], model,
                                    config.model.reload_interval_s).start()
            stack.callback(watcher.close)
        worker = build_worker(config=config, source=source, sink=sink, model=model, metrics=metrics, health=health,
                              state=state, watcher=watcher, shadow=shadow)
        rebalance.worker = worker
        # Everything made so far (torch, the model, clients) lives as long as the loop: move it out of the cyclic
        # collector's view, or every full collection walks it again (measured: up to 1.5x throughput). Unfrozen
        # when the loop ends, so interpreter shutdown collects it as usual (extension modules such as triton's,
        # imported by torch.optim in a process that also trained, report frozen objects as leaks at exit).
        gc.collect()
        gc.freeze()
        stack.callback(gc.unfreeze)
        worker.run(stop)
    log.info("worker stopped cleanly")
    return 0


def _shadow(config: Config, live: ServingModel) -> ServingModel | None:
    """The candidate model of model.shadow_bundle, if any; it must take the same windows as the live one."""
    if not config.model.shadow_bundle:
        return None
    shadow, _ = load_serving_model(config, config.model.shadow_bundle)
    if (shadow.window, shadow.channels) != (live.window, live.channels):
        raise BundleError(f"{config.model.shadow_bundle}: the shadow model takes {list(shadow.channels)} x "
                          f"{shadow.window}, the live one {list(live.channels)} x {live.window}")
    log.info("shadow model %s %s: verdicts to %s", shadow.identity.name, shadow.identity.version,
             config.topics.shadow_topic)
    return shadow


def _timestamp(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
