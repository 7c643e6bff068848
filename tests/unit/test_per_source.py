"""Per-source calibration: thresholds per source in the bundle, a global fallback, and the worker deciding with them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from test_worker import W, ZeroModel, msg

from detector.config import BatchConfig, Config, EventsConfig, TopicsConfig, WorkerConfig
from detector.model.bundle import ModelBundle
from detector.model.scaler import Scaler
from detector.model.scoring import BatchScorer, Scorer
from detector.model.serving import ModelIdentity, ServingModel
from detector.model.threshold import Threshold
from detector.ops.health import Health
from detector.ops.metrics import WorkerMetrics
from detector.pipeline.assembly import build_worker
from detector.testing import MemorySink, MemorySource
from trainer.datasets import WindowDataset
from trainer.pipeline import train
from trainer.presets import get_preset
from trainer.telemetry import SeriesOptions, read_series, series_windows


def _fleet(n: int = 240, seed: int = 0) -> WindowDataset:
    """Three sources with the same shape and different noise: one threshold cannot fit them all."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 4 * np.pi, 64)
    rows, sources = [], []
    for i in range(n):
        noise = (0.02, 0.1, 0.3)[i % 3]
        rows.append(np.sin(t + rng.uniform(0, 6.28)) + noise * rng.normal(size=64))
        sources.append(("quiet", "medium", "noisy")[i % 3])
    return WindowDataset(np.asarray(rows, np.float32), None, "fleet", "0" * 64, sources=np.asarray(sources))


def test_thresholds_are_calibrated_per_source_and_kept_in_the_bundle(tmp_path: Path) -> None:
    config = get_preset("default").replace(epochs=40, patience=0, threshold="fpr_quantile",
                                           threshold_params={"fpr": 0.05}, per_source_thresholds=True,
                                           per_source_min_windows=10)
    result = train(_fleet(480), config, seed=0, on_epoch=None)  # ~25 held-out windows per source
    per_source = result.bundle.threshold.per_source
    assert set(per_source) == {"quiet", "medium", "noisy"}
    assert per_source["quiet"] < per_source["medium"] < per_source["noisy"]
    loaded = ModelBundle.load(result.bundle.save(tmp_path / "b"))
    assert loaded.threshold.per_source == per_source
    thresholds = loaded.threshold.for_sources(["noisy", "new-sensor"])
    assert thresholds[0] == per_source["noisy"] and thresholds[1] == loaded.threshold.value  # global fallback


def test_too_few_windows_keep_the_global_threshold() -> None:
    config = get_preset("default").replace(epochs=5, patience=0, threshold="fpr_quantile",
                                           threshold_params={"fpr": 0.05}, per_source_thresholds=True,
                                           per_source_min_windows=1000)
    assert train(_fleet(), config, seed=0, on_epoch=None).bundle.threshold.per_source == {}
    with pytest.raises(ValueError, match="name their source"):
        train(WindowDataset(_fleet().windows, None, "x", "0" * 64), config, seed=0, on_epoch=None)


def test_the_worker_decides_with_the_source_threshold() -> None:
    config = Config(topics=TopicsConfig(input="in", events="ev", dead_letter="dlq"),
                    batch=BatchConfig(max_size=3, max_wait_ms=0, max_in_flight=64), events=EventsConfig(mode="windows"),
                    worker=WorkerConfig(commit_interval_ms=0))
    threshold = Threshold(0.5, "fpr_quantile", per_source={"quiet": 0.1, "noisy": 2.0})
    model = ServingModel(ModelIdentity("m", "1"), BatchScorer(Scorer(ZeroModel(), Scaler("none"), W), 3, 10),
                         threshold, W)
    source, sink = MemorySource(), MemorySink()
    worker = build_worker(config=config, source=source, sink=sink, model=model,
                          metrics=WorkerMetrics(CollectorRegistry()), health=Health())
    level = np.full(W, 1.0)  # score 1.0 everywhere
    source.add([msg(0, level, key=b"quiet"), msg(1, level, key=b"noisy"), msg(2, level, key=b"unknown")])
    worker.step()
    events = {json.loads(r.value)["source"]: json.loads(r.value) for r in sink.sent if r.kind == "event"}
    assert set(events) == {"quiet", "unknown"}  # noisy's own threshold (2.0) is above its score
    assert events["quiet"]["threshold"] == 0.1 and events["quiet"]["ratio"] == 10.0
    assert events["unknown"]["threshold"] == 0.5


def test_a_long_format_series_is_windowed_per_source(tmp_path: Path) -> None:
    lines = ["timestamp,pump,flow"] + [f"{i // 2},{'ab'[i % 2]},{(i // 2) * (1 + i % 2)}" for i in range(100)]
    (tmp_path / "fleet.csv").write_text("\n".join(lines) + "\n")
    series = read_series(tmp_path / "fleet.csv", SeriesOptions(source_column="pump"))
    assert series.channels == ("flow",)
    ds = series_windows(series, window=10, stride=10)
    assert ds.sources is not None and sorted(set(ds.sources)) == ["a", "b"] and len(ds) == 10
    b_rows = ds.windows[ds.sources == "b"]
    np.testing.assert_array_equal(b_rows[0], 2.0 * np.arange(10))  # b's own rows, not a's interleaved ones
