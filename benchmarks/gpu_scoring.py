"""GPU scoring path against the physical limits measured in the same run (needs CUDA).

    python benchmarks/gpu_scoring.py [--batches 1024,16384,65536,262144]

Prints, in windows/s of 140 float32 (560 bytes):
- the pinned host-to-device copy limit (bandwidth / 560 B),
- the model alone on device-resident data (fp32 and bf16),
- BatchScorer (the worker's scoring call: host array → pinned buffer → device → scores and segment shares back),
- staging variants: numpy copy into the pinned buffer (one core), torch's threaded copy (what BatchScorer does),
  and a pageable `.to(device)` with no staging,
- the full bulk path: f32 payloads (a list of bytes, as a consumer hands them over) → vectorised decode →
  BatchScorer → decide → JSON events for the anomalous ~1%, with no per-message Python except in the join.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from detector.model import build_model
from detector.scaler import Scaler
from detector.scoring import BatchScorer, Scorer

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


def full_bulk_path(batch: int, total: int) -> tuple[float, int]:
    """windows/s from payload bytes to scores and anomaly events; returns (rate, events)."""
    from detector.batching import InputRef
    from detector.events import build_record, encode_record, segment_bounds, top_segments
    from detector.window_format import WindowDecoder

    rng = np.random.default_rng(1)
    base = rng.random((batch, 140), dtype=np.float32)
    payloads = [row.tobytes() for row in base]  # one batch of distinct payloads, reused
    decoder = WindowDecoder(140, "f32")
    scorer = BatchScorer(Scorer(build_model(ARCH), Scaler("none"), 140, "cuda"), batch, 10)
    scorer.warm_up(2)
    scores, _ = scorer.score(base)
    threshold = float(np.quantile(scores, 0.99))  # about 1% anomalous
    bounds = segment_bounds(140, 10)
    events = 0
    torch.cuda.synchronize()
    start = time.perf_counter()
    for first in range(0, total, batch):
        windows, _ = decoder.decode_f32_batch(payloads)
        scores, shares = scorer.score(windows)
        for i in np.flatnonzero(scores > threshold):
            ref = InputRef("in", 0, first + int(i), 0, b"s")
            encode_record(build_record(ref=ref, window=decoder.decode(payloads[i]), window_id=None,
                                       score=float(scores[i]), threshold=threshold, anomalous=True,
                                       model={"name": "m", "version": "1"},
                                       segments=top_segments(shares[i], bounds, 3), detected_at=time.time()))
            events += 1
    seconds = time.perf_counter() - start
    return total / seconds, events


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", default="1024,16384,65536,262144")
    args = parser.parse_args()
    sizes = [int(b) for b in args.batches.split(",")]
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    print("| batch | H2D pinned limit | model fp32 | model bf16 | BatchScorer fp32 | BatchScorer bf16 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n in sizes:
        row = [h2d_limit(n), model_only(n, torch.float32), model_only(n, torch.bfloat16),
               batch_scorer(n, torch.float32), batch_scorer(n, torch.bfloat16)]
        print(f"| {n} | " + " | ".join(f"{v / 1e6:,.2f} M/s" for v in row) + " |")
    print(f"(H2D at the largest batch: {h2d_limit(sizes[-1]) * WINDOW_BYTES / 1e9:.1f} GB/s)")
    print("\n| batch | staging: numpy copy + H2D | staging: pageable .to() | full bulk path (f32 bytes → events) |")
    print("| --- | --- | --- | --- |")
    for n in sizes:
        rate, events = full_bulk_path(n, max(n * 8, 1_000_000))
        print(f"| {n} | {staging_numpy(n) / 1e6:,.2f} M/s | {staging_pageable(n) / 1e6:,.2f} M/s | "
              f"{rate / 1e6:,.2f} M/s ({events} events) |")


if __name__ == "__main__":
    main()
