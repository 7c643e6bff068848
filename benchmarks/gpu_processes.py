"""Several worker loops sharing one GPU, one per process (how deploy/kubernetes/overlays/gpu-shared runs them: each
pod its own consumer-group member), each fed messages from its own in-memory source; needs CUDA.

    python benchmarks/gpu_processes.py [--batched 1,2,4] [--json 1,8,16] [--windows 2000000] [--json-windows 400000]

Every process trains nothing (one sample bundle is trained first and loaded by all), builds its own messages, runs
the whole stream once untimed, then sets up its timed run and waits at a barrier so that all timed runs start
together. The aggregate is every process's windows over the span from the first start to the last finish (not a sum
of rates: a process that ran alone at the end cannot inflate it), against the pinned host-to-device limit measured
in the same run. Batched: Arrow messages of `--rows` windows, events only (an event per anomalous window). JSON:
per-window JSON messages through the columnar path, events only. Each process gets `cores / processes` threads
(model.threads), at most 8 (more spin against each other in one process, docs/performance.md §6), unless --threads
is given. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from gpu_batched import Setup, json_messages, messages, run, windows_pool
from gpu_scoring import h2d_limit
from harness import train_sample_bundle

from detector.model.bundle import ModelBundle
from detector.model.serving import use_cpu_threads

WAIT_S = 240.0  # for the slowest process to get ready, and for all reports: well inside a device call's 10 minutes


@dataclass(frozen=True)
class Job:
    """What every process of one measurement runs."""

    bundle: Path
    fmt: str  # "batch" or "json"
    windows: int
    rows: int
    batch: int
    threads: int
    anomalous: float
    device: str = "cuda"


def child(job: Job, barrier: Any, results: Any) -> None:
    """One worker process: prepare, warm up, wait for the others, run timed; report (start, end, windows/s), or
    the error (and break the barrier, so that the others do not wait for it)."""
    try:
        use_cpu_threads(job.threads)
        bundle = ModelBundle.load(job.bundle)
        pool = windows_pool(bundle, job.anomalous)
        inputs = messages(pool, job.windows, job.rows) if job.fmt == "batch" else json_messages(pool, job.windows)
        setup = Setup(job.device, job.batch, job.threads)
        run(bundle, setup, job.fmt, inputs, job.windows, None)  # untimed: the first pass runs at half speed
        started: list[float] = []

        def start_together() -> None:
            barrier.wait(timeout=WAIT_S)
            started.append(time.monotonic())  # CLOCK_MONOTONIC: one clock for every process of the host

        rate = run(bundle, setup, job.fmt, inputs, job.windows, None, before=start_together)
        results.put((started[0], time.monotonic(), rate))
    except BaseException:
        barrier.abort()
        results.put(traceback.format_exc())
        raise


def together(job: Job, processes: int) -> tuple[float, list[float]]:
    """Aggregate windows/s of `processes` copies of `job` started at one barrier, and each one's own rate."""
    context = mp.get_context("spawn")  # CUDA cannot be used in a forked child
    barrier, results = context.Barrier(processes), context.Queue()
    procs = [context.Process(target=child, args=(job, barrier, results)) for _ in range(processes)]
    for p in procs:
        p.start()
    reports: list[tuple[float, float, float]] = []
    deadline = time.monotonic() + 2 * WAIT_S
    try:
        while len(reports) < processes:
            try:
                report = results.get(timeout=5)
            except queue.Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    why = f"worker processes exited with {dead}" if dead else "no report in time"
                    raise RuntimeError(why) from None
                continue
            if isinstance(report, str):
                raise RuntimeError(f"a worker process failed:\n{report}")
            reports.append(report)
    finally:
        for p in procs:
            p.join(30 if len(reports) == processes else 0.1)
            if p.is_alive():
                p.terminate()
    span = max(end for _, end, _ in reports) - min(start for start, _, _ in reports)
    return processes * job.windows / span, sorted(rate for _, _, rate in reports)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batched", default="1,2,4", help="process counts for batched messages ('' skips)")
    parser.add_argument("--json", default="1,8,16", help="process counts for per-window JSON ('' skips)")
    parser.add_argument("--windows", type=int, default=2_000_000, help="batched windows per process")
    parser.add_argument("--json-windows", type=int, default=400_000, help="per-window JSON windows per process")
    parser.add_argument("--rows", type=int, default=4096, help="windows per batched message")
    parser.add_argument("--batch", type=int, default=65536, help="batch.max_size")
    parser.add_argument("--threads", type=int, default=0,
                        help="model.threads per process (0: cores / processes, at most 8)")
    parser.add_argument("--anomalous", type=float, default=0.001, help="share of windows the model flags")
    parser.add_argument("--device", default="cuda", help="cpu: a smoke test of the script itself")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        bundle = train_sample_bundle(Path(tmp) / "bundle")
        cuda = args.device.startswith("cuda")
        limit = h2d_limit(args.batch) if cuda else float("nan")
        print(f"device: {torch.cuda.get_device_name() if cuda else 'cpu'}, {cores} cores, torch {torch.__version__}; "
              f"{args.anomalous:.2%} of windows flagged; pinned host-to-device limit {limit:,.0f} windows/s\n")
        print("| input | processes | threads each | windows each | per process, windows/s | all together, windows/s"
              " | share of the limit | vs one process (when 1 is among the counts, first) |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for fmt, counts, windows in (("batch", args.batched, args.windows // args.rows * args.rows),
                                     ("json", args.json, args.json_windows)):
            single = None
            for processes in [int(c) for c in counts.split(",") if c]:
                threads = args.threads or max(1, min(8, cores // processes))
                job = Job(bundle, fmt, windows, args.rows, args.batch, threads, args.anomalous, args.device)
                total, each = together(job, processes)
                single = single or (total if processes == 1 else None)
                label = f"batched ({args.rows}/message)" if fmt == "batch" else "per-window JSON"
                print(f"| {label}, events only | {processes} | {threads} | {windows:,} | "
                      f"{', '.join(f'{r:,.0f}' for r in each)} | {total:,.0f} | {total / limit:.3f} | "
                      f"{f'{total / single:.2f}' if single else ''} |", flush=True)

if __name__ == "__main__":
    main()
