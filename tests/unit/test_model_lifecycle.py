"""A model's life without restarts: hot reload between batches, refused bundles, the shadow model, drift."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from test_worker import W, msg, zero_model

from detector.config import BatchConfig, Config, EventsConfig, ModelConfig, TopicsConfig, WorkerConfig
from detector.model.bundle import BundleError
from detector.model.reload import BundleWatcher, Refusal
from detector.model.serving import ServingModel
from detector.ops.drift import ScoreDrift
from detector.ops.health import Health
from detector.ops.metrics import WorkerMetrics
from detector.pipeline.assembly import build_worker
from detector.testing import MemorySink, MemorySource


def _bundle_dir(root: Path, name: str, payload: bytes = b"{}") -> Path:
    d = root / name
    d.mkdir()
    (d / "bundle.json").write_bytes(payload)
    (d / "model.safetensors").write_bytes(b"weights-" + name.encode())
    return d


def _point(link: Path, target: Path) -> None:
    tmp = link.with_name(link.name + ".new")
    tmp.symlink_to(target)
    os.replace(tmp, link)  # atomic, as the training job moves the pointer


def _loader(models: dict[str, ServingModel]):
    def load(location: str) -> ServingModel:
        target = Path(location).resolve().name
        if target not in models:
            raise BundleError(f"{Path(location).resolve() / 'model.safetensors'}: sha256 mismatch")
        return models[target]
    return load


def test_the_watcher_prepares_a_new_bundle_and_refuses_broken_or_misshapen_ones(tmp_path: Path) -> None:
    v1, v2, wide = zero_model(4, version="v1"), zero_model(4, version="v2"), zero_model(4, version="wide")
    wide = ServingModel(wide.identity, wide.scorer, wide.threshold, W * 2)
    for name in ("v1", "v2", "broken", "wide"):
        _bundle_dir(tmp_path, name)
    link = tmp_path / "current"
    link.symlink_to(tmp_path / "v1")
    watcher = BundleWatcher(link, _loader({"v1": v1, "v2": v2, "wide": wide}), v1)
    watcher.check()
    assert watcher.take() is None  # nothing changed
    _point(link, tmp_path / "v2")
    watcher.check()
    assert watcher.take() is v2 and watcher.current is v2
    _point(link, tmp_path / "broken")
    watcher.check()
    refusal = watcher.take()
    assert isinstance(refusal, Refusal) and "sha256 mismatch" in refusal.problem and watcher.current is v2
    _point(link, tmp_path / "wide")
    watcher.check()
    refusal = watcher.take()
    assert isinstance(refusal, Refusal) and "needs a restart" in refusal.problem


def test_a_swap_happens_between_batches_and_every_record_names_its_model(tmp_path: Path) -> None:
    v1, v2 = zero_model(4, version="v1"), zero_model(4, version="v2")
    for name in ("v1", "v2", "half"):
        _bundle_dir(tmp_path, name)
    link = tmp_path / "current"
    link.symlink_to(tmp_path / "v1")
    watcher = BundleWatcher(link, _loader({"v1": v1, "v2": v2}), v1)
    config = Config(topics=TopicsConfig(input="in", events="ev", dead_letter="dlq", scores="sc"),
                    batch=BatchConfig(max_size=4, max_wait_ms=0, max_in_flight=64), events=EventsConfig(mode="windows"),
                    worker=WorkerConfig(commit_interval_ms=0))
    source, sink, registry = MemorySource(), MemorySink(), CollectorRegistry()
    worker = build_worker(config=config, source=source, sink=sink, model=v1, metrics=WorkerMetrics(registry),
                          health=Health(), watcher=watcher)
    source.add([msg(i) for i in range(4)])
    worker.step()
    _point(link, tmp_path / "v2")
    watcher.check()  # prepared off the loop (here: by the test), swapped in at the next turn
    source.add([msg(i) for i in range(4, 8)])
    worker.step()
    _point(link, tmp_path / "half")  # a half-written bundle: refused, v2 keeps serving
    watcher.check()
    source.add([msg(i) for i in range(8, 12)])
    worker.step()
    scores = [json.loads(r.value) for r in sink.sent if r.kind == "score"]
    assert [s["input"]["offset"] for s in scores] == list(range(12))  # none lost, none scored twice
    assert [s["model"]["version"] for s in scores] == ["v1"] * 4 + ["v2"] * 8
    lifecycle = [json.loads(r.value) for r in sink.sent if r.kind == "model"]
    assert [e["type"] for e in lifecycle] == ["model_loaded", "model_refused"]
    assert lifecycle[0]["previous"]["version"] == "v1" and "sha256 mismatch" in lifecycle[1]["problem"]
    assert registry.get_sample_value("tsad_model_reloads_total", {"result": "refused"}) == 1
    assert registry.get_sample_value("tsad_model_info", {"name": "m", "version": "v2", "device": "auto",
                                                         "dtype": "float32", "package_version": "0.1.0"}) == 1
    assert source.committed() == {("in", 0): 12}


def test_the_shadow_model_reports_without_deciding() -> None:
    live, shadow = zero_model(4, threshold=0.5), zero_model(4, threshold=2.0, version="candidate")
    config = Config(topics=TopicsConfig(input="in", events="ev", dead_letter="dlq"),
                    batch=BatchConfig(max_size=4, max_wait_ms=0, max_in_flight=64), events=EventsConfig(mode="windows"),
                    worker=WorkerConfig(commit_interval_ms=0))
    source, sink, registry = MemorySource(), MemorySink(), CollectorRegistry()
    worker = build_worker(config=config, source=source, sink=sink, model=live, metrics=WorkerMetrics(registry),
                          health=Health(), shadow=shadow)
    source.add([msg(0, np.full(W, 0.1)), msg(1, np.full(W, 1.0)), msg(2, np.full(W, 3.0)), msg(3, np.full(W, 0.2))])
    worker.step()
    assert [r.offset for r in (x.ref for x in sink.sent if x.kind == "event")] == [1, 2]
    shadow_records = [json.loads(r.value) for r in sink.sent if r.kind == "shadow"]
    assert [r["input"]["offset"] for r in shadow_records] == [2] and all(r.topic == "ev-shadow" for r in sink.sent
                                                                         if r.kind == "shadow")
    assert shadow_records[0]["model"]["version"] == "candidate" and shadow_records[0]["live"]["anomaly"] is True
    value = lambda **labels: registry.get_sample_value("tsad_shadow_agreement_total", labels)  # noqa: E731
    assert (value(verdicts="both"), value(verdicts="live_only"), value(verdicts="neither")) == (1, 1, 2)
    assert registry.get_sample_value("tsad_model_anomalies_total", {"role": "shadow"}) == 1


def test_drift_is_near_zero_on_the_reference_and_large_when_scores_move() -> None:
    rng = np.random.default_rng(0)
    reference = rng.lognormal(0, 0.5, 20_000)
    drift = ScoreDrift(np.quantile(reference, np.arange(1, 10) / 10), window=5_000)
    drift.observe(rng.lognormal(0, 0.5, 5_000))
    assert drift.psi() < 0.02
    drift.observe(rng.lognormal(1.0, 0.5, 20_000))  # scores doubled and more: the model no longer fits
    assert drift.psi() > 0.25
    assert np.isnan(ScoreDrift([]).psi())


def test_a_missing_shadow_bundle_stops_start_up(tmp_path: Path) -> None:
    from detector.service import _shadow

    live = zero_model(4)
    config = Config(model=ModelConfig(shadow_bundle=str(tmp_path / "nowhere")))
    with pytest.raises(BundleError, match="bundle directory not found"):
        _shadow(config, live)


def test_promote_verifies_then_swaps_the_pointer_atomically(tmp_path: Path) -> None:
    from detector.model.promote import promote
    from trainer.datasets import WindowDataset
    from trainer.pipeline import train
    from trainer.presets import get_preset

    rng = np.random.default_rng(0)
    ds = WindowDataset(rng.normal(size=(200, 16)).astype(np.float32), None, "x", "0" * 64)
    good = train(ds, get_preset("default").replace(epochs=2, patience=0, threshold="mean_std"), on_epoch=None)
    good.bundle.save(tmp_path / "versions" / "a")
    link = tmp_path / "current"
    assert "tsad-model" in promote(tmp_path / "versions" / "a", link)
    assert link.is_symlink() and link.resolve() == (tmp_path / "versions" / "a").resolve()
    broken = tmp_path / "versions" / "b"
    broken.mkdir()
    (broken / "bundle.json").write_text("{")
    with pytest.raises(BundleError, match="not valid JSON"):
        promote(broken, link)
    assert link.resolve() == (tmp_path / "versions" / "a").resolve()  # the pointer never moved to it


def test_model_threads_size_torch_and_then_blas_alike() -> None:
    """model.threads: 1 sets torch alone (BLAS keeps its pool: no torch pool to spin against); more sets both, so
    the pinned-memory copy (torch) and the NaN check (BLAS) do not each start a pool as large as the node."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from detector.model.serving import use_cpu_threads

    def blas() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = torch.get_num_threads()
    with threadpool_limits(limits=3, user_api="blas"):  # restored on leaving, whatever use_cpu_threads did
        try:
            use_cpu_threads(1)
            assert torch.get_num_threads() == 1 and set(blas()) == {3}
            use_cpu_threads(2)
            assert torch.get_num_threads() == 2 and set(blas()) == {2}
            use_cpu_threads(0)  # the libraries decide: nothing is changed
            assert torch.get_num_threads() == 2 and set(blas()) == {2}
        finally:
            torch.set_num_threads(before)
