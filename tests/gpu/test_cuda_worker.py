"""The same worker on a CUDA device: skipped cleanly without a GPU (CI never has one)."""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest
import torch
from prometheus_client import CollectorRegistry

from detector.config import BatchConfig, Config, EventsConfig, InputConfig, TopicsConfig
from detector.kafka.seams import InputMessage
from detector.model.architectures import build_model
from detector.model.scaler import Scaler
from detector.model.scoring import BatchScorer, Scorer
from detector.model.serving import ModelIdentity, ServingModel
from detector.model.threshold import Threshold
from detector.ops.health import Health
from detector.ops.metrics import WorkerMetrics
from detector.pipeline.assembly import build_worker
from detector.testing import MemorySink, MemorySource
from detector.wire.windows import encode_f32

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")]
ARCH = {"kind": "dense", "window": 140, "hidden": [32, 16, 8], "activation": "relu", "output_activation": "sigmoid"}


def _scorers(dtype: torch.dtype = torch.float32) -> tuple[BatchScorer, BatchScorer]:
    torch.manual_seed(0)
    model = build_model(ARCH)
    scaler = Scaler("global_minmax", {"min": -4.0, "max": 4.0})
    cpu = BatchScorer(Scorer(model, scaler, 140, "cpu"), 1024, 10)
    gpu = BatchScorer(Scorer(build_model(ARCH), scaler, 140, "cuda", dtype), 1024, 10)
    gpu.scorer.model.load_state_dict(model.state_dict())
    return cpu, gpu


def test_cuda_scores_match_cpu() -> None:
    cpu, gpu = _scorers()
    x = np.random.default_rng(0).normal(size=(1000, 140)).astype(np.float32)
    rows = np.arange(len(x))
    (s_cpu, sh_cpu), (s_gpu, sh_gpu) = ((r.scores, r.shares(rows)) for r in (cpu.score(x), gpu.score(x)))
    np.testing.assert_allclose(s_gpu, s_cpu, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(sh_gpu, sh_cpu, rtol=1e-3, atol=1e-5)
    assert gpu._host.is_pinned()


def test_pinned_input_skips_staging_and_scores_the_same() -> None:
    _, gpu = _scorers()
    x = np.random.default_rng(3).normal(size=(1024, 140)).astype(np.float32)
    ring = torch.empty((1024, 140), dtype=torch.float32, pin_memory=True)
    ring.copy_(torch.from_numpy(x))
    staged, direct = gpu.score(x), gpu.score(ring.numpy())
    np.testing.assert_array_equal(direct.scores, staged.scores)
    rows = np.array([0, 17, 1023])
    np.testing.assert_array_equal(direct.shares(rows), staged.shares(rows))


def test_bf16_scores_are_close() -> None:
    cpu, _ = _scorers()
    _, bf16 = _scorers(torch.bfloat16)
    x = np.random.default_rng(1).normal(size=(1000, 140)).astype(np.float32)
    np.testing.assert_allclose(bf16.score(x).scores, cpu.score(x).scores, rtol=0.05)


def test_worker_runs_on_cuda_and_reports_throughput() -> None:
    _, gpu = _scorers()
    gpu.warm_up(3)
    n = 50_000
    rng = np.random.default_rng(2)
    payloads = [encode_f32(v) for v in rng.normal(size=(n, 140)).astype(np.float32)]
    config = Config(topics=TopicsConfig(input="in", events="ev", dead_letter="dlq"), input=InputConfig(format="f32"),
                    events=EventsConfig(mode="windows"),
                    batch=BatchConfig(max_size=1024, max_wait_ms=5, max_in_flight=8192))
    source, sink = MemorySource(), MemorySink()
    source.add([InputMessage("in", i % 4, i // 4, b"s", p, [], 0) for i, p in enumerate(payloads)])
    registry = CollectorRegistry()
    model = ServingModel(ModelIdentity("m", "1"), gpu, Threshold(0.2, "mean_std"), 140)
    worker = build_worker(config=config, source=source, sink=sink, model=model, metrics=WorkerMetrics(registry),
                          health=Health())
    gc.collect()
    gc.freeze()  # as the service does after start-up
    started = time.perf_counter()
    while any(source.lag().values()):
        worker.step()
    worker.drain(time.monotonic() + 10)
    seconds = time.perf_counter() - started
    assert registry.get_sample_value("tsad_windows_scored_total") == n
    assert source.committed() == {("in", p): n // 4 for p in range(4)}
    print(f"\nworker on {torch.cuda.get_device_name(0)}: {n} f32 windows in {seconds:.2f} s = "
          f"{n / seconds:,.0f} windows/s (in-memory source/sink, {len(sink.sent)} events)")


@pytest.mark.parametrize("copy_threads", [1, 4])  # numpy's copy; torch's on its threads (model.threads > 1)
def test_a_cuda_batcher_fills_pinned_memory_that_the_scorer_sends_without_staging(copy_threads: int) -> None:
    from detector.pipeline.batching import MicroBatcher
    from detector.wire.columns import RowBlocks

    _, gpu = _scorers()
    batcher = MicroBatcher(140, 1024, 0.01, time.monotonic, pinned=True, copy_threads=copy_threads)
    rows = np.random.default_rng(0).normal(size=(700, 140)).astype(np.float32)
    message = InputMessage("in", 0, 0, None, b"", [], 0)
    batcher.add(RowBlocks([rows[:300], rows[300:]], 140), [message] * 700, [None] * 700, [None] * 700,
                [None] * 700)
    batch = batcher.take()
    assert torch.from_numpy(batch.windows).is_pinned()
    np.testing.assert_array_equal(batch.windows, rows)
    np.testing.assert_allclose(gpu.score(batch.windows).scores, gpu.score(rows.copy()).scores, rtol=1e-6)
