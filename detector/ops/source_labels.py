"""Bounded label values for per-source metrics.

A fleet of 100k sensors must not become 100k Prometheus series. The first `limit` distinct sources a worker sees
keep their own label value; every later one is counted under `other`. Sums over the label stay exact.
"""

from __future__ import annotations

OTHER = "other"


class SourceLabels:
    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"source label limit must be >= 0, got {limit}")
        self.limit = limit
        self._named: set[str] = set()

    def __call__(self, source: str) -> str:
        if source in self._named:
            return source
        if len(self._named) < self.limit:
            self._named.add(source)
            return source
        return OTHER
