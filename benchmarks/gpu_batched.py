"""The worker loop fed batched window messages from an in-memory source, on the GPU, against the pinned
host-to-device copy limit measured in the same run (needs CUDA; falls back to the CPU with --device cpu).

    python benchmarks/gpu_batched.py [--windows 2000000] [--rows 4096] [--batch 65536] [--device cuda]

Runs, each timed from the first step until every window is scored and every output acknowledged:
  - the pinned host-to-device limit, in windows/s of 140 float32 (560 bytes),
  - the worker on per-window f32 messages (all scores as JSON records),
  - the worker on per-window JSON messages (`--json N`), events only and all scores: the columnar JSON path,
  - the worker on batched messages (Arrow, `--rows` windows each): events only (`windows` mode: an event per
    anomalous window, no score records; the generator makes 10% of windows anomalous, so this is mostly the cost
    of 200,000 JSON events), all scores as one Arrow record per message, and episodes (the default `events.mode`:
    records per incident and source, not per window).
A sink that acknowledges at once stands in for Kafka, so this is the loop's own ceiling: decode, batch, copy,
model, threshold, outputs, offsets. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from gpu_scoring import h2d_limit
from harness import train_sample_bundle
from prometheus_client import CollectorRegistry
from worker_loop import AckingSink

from detector.config import BatchConfig, Config, EventsConfig, InputConfig, ModelConfig, TopicsConfig, WorkerConfig
from detector.kafka.seams import InputMessage
from detector.model.bundle import ModelBundle
from detector.model.scoring import BatchScorer
from detector.model.serving import ModelIdentity, ServingModel, use_cpu_threads
from detector.ops.health import Health
from detector.ops.metrics import WorkerMetrics
from detector.pipeline.assembly import build_worker
from detector.testing import MemorySink, MemorySource, MemoryStateReader
from detector.wire.batch import encode_batch
from detector.wire.windows import encode_f32, encode_json
from sample_streams.generator import generate

SOURCES = 16


def messages(pool: np.ndarray, n: int, rows: int) -> list[InputMessage]:
    out = []
    for j in range(n // rows):
        take = pool[np.arange(j * rows, (j + 1) * rows) % len(pool)]
        source = f"ecg-{j % SOURCES:02d}"
        value = encode_batch(take, [f"w{j * rows + i}" for i in range(rows)], [source] * rows,
                             (np.arange(rows, dtype=np.float64) + j * rows).tolist())
        out.append(InputMessage("in", j % 4, j // 4, source.encode(), value, [], 1_700_000_000_000))
    return out


def windows_pool(bundle: ModelBundle, anomalous: float | None) -> np.ndarray:
    """5,000 generator windows; with `anomalous`, re-drawn so that this share of them is flagged by the model."""
    pool = np.asarray([r.values for r in generate(5000, kind="ecg", seed=1)], np.float32)
    if anomalous is None:
        return pool
    flagged = BatchScorer(bundle.scorer(torch.device("cpu"), torch.float32), len(pool), 10).score(pool).scores \
        > bundle.threshold.value
    normal, odd = pool[~flagged], pool[flagged]
    n_odd = round(anomalous * len(pool))
    rng = np.random.default_rng(0)
    picked = np.concatenate([normal[rng.integers(0, len(normal), len(pool) - n_odd)],
                             odd[rng.integers(0, len(odd), n_odd)]])
    return picked[rng.permutation(len(pool))]


def per_window_messages(pool: np.ndarray, n: int) -> list[InputMessage]:
    payloads = [encode_f32(row) for row in pool]
    return [InputMessage("in", i % 4, i // 4, b"ecg-%02d" % (i % SOURCES), payloads[i % len(payloads)],
                         [], 1_700_000_000_000) for i in range(n)]


def json_messages(pool: np.ndarray, n: int) -> list[InputMessage]:
    """Per-window JSON messages as producers write them (id, source, time, 140 numbers with 6 decimals)."""
    payloads = [encode_json(row, id=f"w{i}", source=f"ecg-{i % SOURCES:02d}", ts=1_700_000_000.0 + i)
                for i, row in enumerate(pool)]
    return [InputMessage("in", i % 4, i // 4, None, payloads[i % len(payloads)], [], 1_700_000_000_000)
            for i in range(n)]


@dataclass(frozen=True)
class Setup:
    device: str
    batch: int  # batch.max_size
    threads: int  # model.threads (the batcher copies into pinned memory on torch's threads when above 1)


def run(bundle: ModelBundle, setup: Setup, fmt: str, inputs: list[InputMessage], windows: int,
        scores: str | None, mode: str = "windows", before: Callable[[], None] | None = None) -> float:
    """Windows/s of one worker over `inputs`, timed from its first step (`before` is called just ahead of that)."""
    device, batch = setup.device, setup.batch
    source = MemorySource()
    source.add(inputs)
    config = Config(input=InputConfig(format=fmt, max_batch_bytes=64 << 20),
                    topics=TopicsConfig(input="in", events="ev", dead_letter="dlq", scores="sc" if scores else None),
                    batch=BatchConfig(max_size=batch, max_wait_ms=20, max_in_flight=4 * batch),
                    worker=WorkerConfig(max_poll_records=64 if fmt == "batch" else 8192, commit_interval_ms=1000),
                    events=EventsConfig(mode=mode, scores_format=scores or "json"),
                    model=ModelConfig(threads=setup.threads))
    model = ServingModel(ModelIdentity(bundle.name, bundle.version),
                         BatchScorer(bundle.scorer(torch.device(device), torch.float32), batch, 10),
                         bundle.threshold, bundle.window, pinned=device.startswith("cuda"))
    registry = CollectorRegistry()
    worker = build_worker(config=config, source=source, sink=AckingSink(), model=model,
                          metrics=WorkerMetrics(registry), health=Health(),
                          state=MemoryStateReader(MemorySink()))  # episodes: no earlier state
    source.listener = worker
    gc.collect()
    gc.freeze()
    if before is not None:
        before()
    start = time.perf_counter()
    while any(source.lag().values()) or worker.tracker.in_flight:
        worker.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    gc.unfreeze()
    assert registry.get_sample_value("tsad_windows_scored_total") == windows
    return windows / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=2_000_000)
    parser.add_argument("--per-window", type=int, default=400_000, help="windows for the per-window f32 run")
    parser.add_argument("--rows", type=int, default=4096, help="windows per batched message")
    parser.add_argument("--batch", type=int, default=65536, help="batch.max_size")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--threads", type=int, default=0, help="model.threads: torch's CPU threads and above 1 "
                        "BLAS's too, and the batcher's copy into pinned memory on them (0: the libraries' defaults)")
    parser.add_argument("--anomalous", type=float, default=None, metavar="SHARE",
                        help="make this share of the windows ones the model flags (default: the generator's "
                        "stream as it comes, ~11%% flagged)")
    parser.add_argument("--json", type=int, default=400_000, metavar="N",
                        help="windows for the per-window JSON runs (events only, and all scores); 0 skips them")
    parser.add_argument("--json-only", action="store_true", help="only the per-window JSON runs (e.g. to compare "
                        "another tree's decoder: PYTHONPATH=OTHER_TREE)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also profile one more events-only run and print its N costliest functions")
    args = parser.parse_args()
    n = args.windows // args.rows * args.rows
    use_cpu_threads(args.threads)
    setup = Setup(args.device, args.batch, args.threads)
    bundle = ModelBundle.load(train_sample_bundle(Path(tempfile.mkdtemp()) / "bundle"))
    pool = windows_pool(bundle, args.anomalous)
    flagged = float(np.mean(BatchScorer(bundle.scorer(torch.device("cpu"), torch.float32), len(pool), 10)
                            .score(pool).scores > bundle.threshold.value))
    cuda = args.device.startswith("cuda")
    limit = h2d_limit(args.batch) if cuda else float("nan")
    label = torch.cuda.get_device_name() if cuda else "cpu"
    json_rates = []
    if args.json:
        inputs = json_messages(pool, args.json)
        warm = min(50_000, args.json)
        run(bundle, setup, "json", inputs[:warm], warm, None)  # untimed warm-up
        json_rates = [("worker, per-window JSON, events only", run(bundle, setup, "json", inputs,
                                                                    args.json, None)),
                      ("worker, per-window JSON, all scores (JSON)", run(bundle, setup, "json",
                                                                         inputs, args.json, "json"))]
    if args.json_only:
        import detector.wire.windows as decoder_tree

        print(f"device: {label}; decoder from {Path(decoder_tree.__file__).parent}; {args.json:,} windows\n")
        print("| run | windows/s | share of the pinned H2D limit |\n| --- | --- | --- |")
        print(f"| pinned host-to-device limit | {limit:,.0f} | 1.00 |")
        for name, rate in json_rates:
            print(f"| {name} | {rate:,.0f} | {rate / limit:.3f} |")
        return
    per_window = run(bundle, setup, "f32", per_window_messages(pool, args.per_window),
                     args.per_window, "json")
    batched = messages(pool, n, args.rows)
    # untimed, once over the whole stream: the first pass over it ran at half speed in every run (allocator and
    # page set-up of the first large batches), which is not the loop's steady state
    run(bundle, setup, "batch", batched, n, None)
    events_only = run(bundle, setup, "batch", batched, n, None)
    arrow = run(bundle, setup, "batch", batched, n, "arrow")
    episodes = run(bundle, setup, "batch", batched, n, None, mode="episodes")
    print(f"device: {label}, torch {torch.__version__}; {n:,} windows in messages of {args.rows}, "
          f"batch.max_size {args.batch}, flagged by the model {flagged:.3%}\n")
    print("| run | windows/s | share of the pinned H2D limit | vs per-window f32 |")
    print("| --- | --- | --- | --- |")
    print(f"| pinned host-to-device limit | {limit:,.0f} | 1.00 | |")
    for name, rate in [("worker, per-window f32, all scores (JSON)", per_window),
                       ("worker, batched, events only", events_only),
                       ("worker, batched, all scores (Arrow per message)", arrow),
                       ("worker, batched, episodes (the default events mode)", episodes), *json_rates]:
        print(f"| {name} | {rate:,.0f} | {rate / limit:.3f} | {rate / per_window:.2f} |")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        rate = run(bundle, setup, "batch", batched, n, None)
        profiler.disable()
        print(f"\nProfile of one more events-only run ({rate:,.0f} windows/s under the profiler), by own time:\n")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
