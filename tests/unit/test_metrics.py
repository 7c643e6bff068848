"""Metric families that must stay bounded and say what they count."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from detector.ops.metrics import WorkerMetrics
from detector.ops.source_labels import OTHER, SourceLabels


def test_per_source_anomaly_series_are_bounded_and_sums_stay_exact() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, source_labels=3)
    metrics.count_anomalies({f"pump-{i}": i + 1 for i in range(100)})  # a fleet of 100 sources
    metrics.count_anomalies({"pump-1": 10, "pump-99": 5})
    series = {s.labels["source"]: s.value for m in registry.collect() if m.name == "tsad_anomalies"
              for s in m.samples if s.name == "tsad_anomalies_total"}
    assert set(series) == {"pump-0", "pump-1", "pump-2", OTHER}  # the first three seen, then "other"
    assert series["pump-1"] == 2 + 10
    assert sum(series.values()) == sum(range(1, 101)) + 15


def test_source_labels_can_be_turned_off() -> None:
    labels = SourceLabels(0)
    assert {labels(s) for s in ("a", "b")} == {OTHER}
    with pytest.raises(ValueError, match="source label limit"):
        SourceLabels(-1)


def test_published_records_are_named_for_what_they_count() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    for kind in ("event", "score", "dead_letter"):
        metrics.published.labels(kind=kind).inc()
    assert registry.get_sample_value("tsad_records_published_total", {"kind": "dead_letter"}) == 1
    assert registry.get_sample_value("tsad_events_published_total", {"kind": "event"}) is None
    family = next(m for m in registry.collect() if m.name == "tsad_records_published")
    assert "dead_letter" in family.documentation and "score" in family.documentation
