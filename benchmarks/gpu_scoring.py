"""GPU scoring path against the physical limits measured in the same run (needs CUDA).

    python benchmarks/gpu_scoring.py [--batches 1024,16384,65536,262144]

Prints, in windows/s of 140 float32 (560 bytes):
- the pinned host-to-device copy limit (bandwidth / 560 B),
- the model alone on device-resident data (fp32 and bf16),
- BatchScorer (the worker's scoring call: host array → pinned buffer → device → scores and segment shares back),
- the per-message worker loop with an in-memory source (decode, batch, score, decide, commit), for comparison.
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


if __name__ == "__main__":
    main()
