"""A Prometheus histogram that takes a whole array of observations in one call.

prometheus-client's Histogram costs a lock and a Python bucket search per `observe`; the worker observes one score
and one latency per window, so at tens of thousands of windows a second that alone is a large share of the loop.
This collector counts a batch with one `searchsorted` + `bincount` and exposes the standard `_bucket`, `_count` and
`_sum` series through the public custom-collector API.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class BulkHistogram(Collector):
    def __init__(self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry) -> None:
        bounds = [float(b) for b in buckets]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name}: buckets must be strictly increasing")
        if not bounds or bounds[-1] != math.inf:
            bounds.append(math.inf)
        self.name = name
        self.documentation = documentation
        self._bounds = np.array(bounds)
        self._labels = [floatToGoString(b) for b in bounds]
        self._counts = np.zeros(len(bounds), dtype=np.int64)
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe(self, value: float) -> None:
        self.observe_many(np.array([value], dtype=np.float64))

    def observe_many(self, values: np.ndarray | Sequence[float]) -> None:
        v = np.asarray(values, dtype=np.float64).ravel()
        if not v.size:
            return
        # bucket i counts values <= bound i ("le"); searchsorted(side=left) finds exactly that first bound
        counts = np.bincount(np.searchsorted(self._bounds, v, side="left"), minlength=len(self._bounds))
        total = float(v.sum())
        with self._lock:
            self._counts += counts[: len(self._bounds)]
            self._sum += total

    def describe(self) -> Iterable[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation)

    def collect(self) -> Iterable[HistogramMetricFamily]:
        with self._lock:
            cumulative = np.cumsum(self._counts).tolist()
            total = self._sum
        yield HistogramMetricFamily(self.name, self.documentation,
                                    buckets=list(zip(self._labels, cumulative, strict=True)), sum_value=total)
