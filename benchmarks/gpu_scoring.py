"""GPU scoring path against the physical limits measured in the same run (needs CUDA).

    python benchmarks/gpu_scoring.py [--batches 16384,65536,262144] [--doc docs/performance.md]

Prints, in windows/s of 140 float32 (560 bytes):
- the pinned host-to-device copy limit (bandwidth / 560 B),
- the model alone on device-resident data (fp32 and bf16),
- BatchScorer (the worker's scoring call: host array → pinned buffer → device → scores back),
- staging variants: numpy copy into the pinned buffer (one core), torch's threaded copy (what BatchScorer does),
  and a pageable `.to(device)` with no staging,
- the full path to JSON events at 0.1% and 1% anomalous, (i) from a list of f32 payloads through the worker's own
  decode_many → batch → BatchScorer → threshold → RecordEncoder, and (ii) from one contiguous block of windows
  (no per-message Python; validation on the device through the scores), pageable or a pinned ring buffer.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from perfdoc import Report

from detector.kafka.seams import InputMessage
from detector.model.architectures import build_model
from detector.model.scaler import Scaler
from detector.model.scoring import BatchScorer, Scorer
from detector.model.segments import segment_bounds
from detector.model.threshold import Threshold
from detector.pipeline.batching import Batch
from detector.wire.records import RecordEncoder
from detector.wire.windows import WindowDecoder

ARCH = {"kind": "dense", "window": 140, "hidden": [32, 16, 8], "activation": "relu", "output_activation": "sigmoid"}
WINDOW_BYTES = 140 * 4


def timed(fn, repeats: int) -> float:
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def h2d_limit(n: int) -> float:
    host = torch.empty((n, 140), dtype=torch.float32, pin_memory=True)
    dev = torch.empty((n, 140), dtype=torch.float32, device="cuda")
    seconds = timed(lambda: dev.copy_(host, non_blocking=True), 20)
    return n / seconds


def model_only(n: int, dtype: torch.dtype) -> float:
    model = build_model(ARCH).cuda().to(dtype).eval()
    x = torch.rand((n, 140), device="cuda", dtype=dtype)

    @torch.inference_mode()
    def run() -> None:
        (model(x) - x).abs().mean(1)

    return n / timed(run, 20)


def batch_scorer(n: int, dtype: torch.dtype) -> float:
    scorer = BatchScorer(Scorer(build_model(ARCH), Scaler("none"), 140, "cuda", dtype), n, 10)
    x = np.random.default_rng(0).random((n, 140), dtype=np.float32)
    return n / timed(lambda: scorer.score(x), 10)


def staging_numpy(n: int) -> float:
    """The first BatchScorer: numpy assignment into the pinned buffer (single-threaded), then the copy."""
    host = torch.empty((n, 140), dtype=torch.float32, pin_memory=True)
    x = np.random.default_rng(0).random((n, 140), dtype=np.float32)

    def run() -> None:
        host.numpy()[:] = x
        host.to("cuda", non_blocking=True)

    return n / timed(run, 10)


def staging_pageable(n: int) -> float:
    x = np.random.default_rng(0).random((n, 140), dtype=np.float32)
    return n / timed(lambda: torch.from_numpy(x).to("cuda"), 10)


def _encoder_setup(batch: int, anomaly_rate: float) -> tuple[np.ndarray, BatchScorer, Threshold, RecordEncoder]:
    rng = np.random.default_rng(1)
    base = rng.random((batch, 140), dtype=np.float32)
    scorer = BatchScorer(Scorer(build_model(ARCH), Scaler("none"), 140, "cuda"), batch, 10)
    scorer.warm_up(2)
    scores = scorer.score(base).scores
    threshold = Threshold(float(np.quantile(scores, 1 - anomaly_rate)), "fpr_quantile")
    encoder = RecordEncoder(model={"name": "m", "version": "1"}, threshold=threshold.value,
                            bounds=segment_bounds(140, 10), top=3, all_scores=False)
    return base, scorer, threshold, encoder


def full_path_payloads(batch: int, total: int, anomaly_rate: float) -> tuple[float, int]:
    """The worker's own steps on a list of f32 payloads (bytes, as a consumer hands them over): decode_many →
    columnar batch → BatchScorer → threshold → RecordEncoder (JSON events). Returns (windows/s, events)."""
    base, scorer, threshold, encoder = _encoder_setup(batch, anomaly_rate)
    payloads = [row.tobytes() for row in base]  # one batch of distinct payloads, reused
    messages = [InputMessage("in", 0, i, b"s", p, [], 0) for i, p in enumerate(payloads)]
    decoder = WindowDecoder(140, "f32")
    events = 0
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(0, total, batch):
        decoded = decoder.decode_many(payloads)
        none: list[None] = [None] * len(decoded.index)
        chunk = Batch(np.asarray(decoded.windows), messages, none, none, none)
        result = scorer.score(chunk.windows)
        anomalous = threshold.is_anomaly(result.scores)
        events += len(encoder.encode(chunk, result.scores, anomalous, result.shares(np.flatnonzero(anomalous)),
                                     time.time()))
    return total / (time.perf_counter() - start), events


def full_path_block(batch: int, total: int, anomaly_rate: float, pinned: bool = False) -> tuple[float, int]:
    """The same from one contiguous block of f32 windows (a memory-mapped .f32 stream file, or a fetch buffer):
    no per-message Python at all. Validation moves to the device: a non-finite input makes a non-finite score,
    so `isfinite(scores)` on the small score vector replaces a host pass over every value."""
    base, scorer, threshold, encoder = _encoder_setup(batch, anomaly_rate)
    block: bytes | np.ndarray = base.tobytes()
    if pinned:  # the source fills a pinned ring buffer: BatchScorer copies it to the device without staging
        ring = torch.empty((batch, 140), dtype=torch.float32, pin_memory=True)
        ring.copy_(torch.from_numpy(base))
        block = ring.numpy()
    messages = [InputMessage("in", 0, i, b"s", None, [], 0) for i in range(batch)]
    none: list[None] = [None] * batch
    events = 0
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(0, total, batch):
        windows = block if isinstance(block, np.ndarray) else np.frombuffer(block, np.float32).reshape(batch, 140)
        result = scorer.score(windows)
        anomalous = threshold.is_anomaly(result.scores) & np.isfinite(result.scores)
        events += len(encoder.encode(Batch(windows, messages, none, none, none), result.scores, anomalous,
                                     result.shares(np.flatnonzero(anomalous)), time.time()))
    return total / (time.perf_counter() - start), events


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", default="16384,65536,262144")
    parser.add_argument("--doc", default=None, help="write the tables into this copy of docs/performance.md "
                        "(block 'gpu'); on a GPU machine, point it at a file you bring back")
    args = parser.parse_args()
    sizes = [int(b) for b in args.batches.split(",")]
    report = Report("gpu")
    device = f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    report.line(f"device: {device}")
    report.line()
    rows = []
    for n in sizes:
        rates = [h2d_limit(n), model_only(n, torch.float32), model_only(n, torch.bfloat16),
                 batch_scorer(n, torch.float32), batch_scorer(n, torch.bfloat16)]
        rows.append([str(n), *(f"{v / 1e6:,.2f} M/s" for v in rates)])
    report.table(["batch", "H2D pinned limit", "model fp32", "model bf16", "BatchScorer fp32", "BatchScorer bf16"],
                 rows)
    report.line(f"(H2D at the largest batch: {h2d_limit(sizes[-1]) * WINDOW_BYTES / 1e9:.1f} GB/s)")
    report.line()
    report.table(["batch", "staging: numpy copy + H2D", "staging: pageable .to()"],
                 [[str(n), f"{staging_numpy(n) / 1e6:,.2f} M/s", f"{staging_pageable(n) / 1e6:,.2f} M/s"]
                  for n in sizes])
    limit = h2d_limit(sizes[-1])
    report.line()
    report.line(f"Full path to JSON events (pinned H2D limit {limit / 1e6:,.1f} M windows/s in this run):")
    report.line()
    rows = []
    for rate in (0.001, 0.01):
        for n in sizes:
            total = max(n * 8, 2_000_000)
            listed, _ = full_path_payloads(n, total, rate)
            block, _ = full_path_block(n, total, rate)
            ring, events = full_path_block(n, total, rate, pinned=True)
            rows.append([str(n), f"{rate:.1%} ({events} events)", f"{listed / 1e6:,.2f} M/s", f"{listed / limit:.0%}",
                         f"{block / 1e6:,.2f} M/s", f"{block / limit:.0%}", f"{ring / 1e6:,.2f} M/s",
                         f"{ring / limit:.0%}"])
    report.table(["batch", "anomalous", "payload list (decode_many)", "% of limit", "contiguous block",
                  "% of limit", "pinned ring buffer", "% of limit"], rows)
    if args.doc:
        report.save(device=device, doc=Path(args.doc))


if __name__ == "__main__":
    main()
