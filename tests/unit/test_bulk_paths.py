"""The vectorised helpers agree with the one-at-a-time versions they replace."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from detector.ops.bulk_histogram import BulkHistogram
from detector.wire.records import iso_times


def test_bulk_histogram_matches_prometheus_histogram() -> None:
    buckets = (0.005, 0.01, 0.1, 1.0, 2.5)
    values = np.concatenate([np.array([0.0, 0.005, 0.01, 0.0100001, 1.0, 2.5, 2.6, 100.0, -1.0]),
                             np.random.default_rng(0).exponential(0.3, 500)])
    bulk_registry, reference_registry = CollectorRegistry(), CollectorRegistry()
    bulk = BulkHistogram("h", "doc", buckets, bulk_registry)
    reference = Histogram("h", "doc", buckets=buckets, registry=reference_registry)
    bulk.observe_many(values[:100])
    bulk.observe_many(values[100:])
    bulk.observe_many([])
    for v in values:
        reference.observe(float(v))
    for le in ("0.005", "0.01", "0.1", "1.0", "2.5", "+Inf"):
        assert bulk_registry.get_sample_value("h_bucket", {"le": le}) == \
            reference_registry.get_sample_value("h_bucket", {"le": le}), le
    assert bulk_registry.get_sample_value("h_count") == len(values)
    assert bulk_registry.get_sample_value("h_sum") == pytest.approx(reference_registry.get_sample_value("h_sum"))


def test_bulk_histogram_rejects_unsorted_buckets() -> None:
    with pytest.raises(ValueError, match="increasing"):
        BulkHistogram("h", "doc", (1.0, 0.5), CollectorRegistry())


def test_iso_times_match_datetime_formatting() -> None:
    rng = np.random.default_rng(1)
    seconds = np.concatenate([[0.0, 1_700_000_000.0, 1_700_000_000.5, 1_700_000_000.9999, 1_700_000_000.0004999],
                              rng.uniform(0, 4e9, 2000), np.round(rng.uniform(1.6e9, 1.8e9, 2000), 3)])
    expected = [datetime.fromtimestamp(s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
                for s in seconds.tolist()]
    assert iso_times(seconds) == expected
