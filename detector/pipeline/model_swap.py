"""Between two batches: take the model hot reload prepared (or its refusal), swap it in, say so.

Every swap and every refusal is logged, counted (`tsad_model_reloads_total{result}`), reflected in
`tsad_model_info`, and published to the events topic as a model lifecycle record (`model_loaded`,
`model_refused`), so whoever reads the events sees from which point on another model decides. Those records are
not tied to an input window: they are sent once, and a failed send is logged, not retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from detector import __version__
from detector.kafka.seams import InputMessage, OutputRecord
from detector.model.reload import BundleWatcher, Refusal
from detector.ops.metrics import WorkerMetrics
from detector.pipeline.delivery import Delivery
from detector.pipeline.processing import BatchProcessor
from detector.wire.records import iso_times

log = logging.getLogger("tsad.model")
NO_INPUT = InputMessage("", -1, -1, None, None, [], -1)  # the reference of a record no input window owns


class ModelSwap:
    def __init__(self, watcher: BundleWatcher, processor: BatchProcessor, delivery: Delivery,
                 metrics: WorkerMetrics, events_topic: str, device: str, dtype: str,
                 wall: Callable[[], float] = time.time) -> None:
        self.watcher, self.processor, self.delivery, self.metrics = watcher, processor, delivery, metrics
        self.events_topic, self.device, self.dtype, self.wall = events_topic, device, dtype, wall

    def refresh(self) -> None:
        ready = self.watcher.take()
        if ready is None:
            return
        previous = self.processor.model.identity.as_dict()
        body: dict[str, Any] = {"schema": 1, "previous": previous,
                                "time": iso_times(np.array([self.wall()]))[0]}
        if isinstance(ready, Refusal):
            self.metrics.model_reloads.labels(result="refused").inc()
            body |= {"type": "model_refused", "path": ready.path, "problem": ready.problem, "model": previous}
            log.warning("bundle at %s refused: %s (%s %s keeps serving)", ready.path, ready.problem,
                        previous["name"], previous["version"])
        else:
            self.processor.use(ready)
            self.metrics.model_reloads.labels(result="loaded").inc()
            self.metrics.model_info.info({**ready.identity.as_dict(), "device": self.device, "dtype": self.dtype,
                                          "package_version": __version__})
            body |= {"type": "model_loaded", "model": ready.identity.as_dict()}
            log.info("now serving %s %s (was %s)", ready.identity.name, ready.identity.version, previous["version"])
        self.delivery.send(OutputRecord("model", self.events_topic, b"tsad-model", orjson.dumps(body), [], NO_INPUT))
