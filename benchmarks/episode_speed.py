"""The episode tracker's cost per window, alone (no broker, no model): the loop feeds it every window of a source
whose episode is open or pending, so at high rates with many such sources it is a per-window Python cost.

    python benchmarks/episode_speed.py [--windows 200000] [--sources 8] [--rounds 5]

Ratios alternate in runs of 500 windows (30% of runs above the threshold, with ±10% jitter), sources round-robin;
prints the best round's nanoseconds per window, verdict construction included, and the records produced.
"""

from __future__ import annotations

import argparse
import random
import time

from detector.pipeline.episodes import EpisodePolicy, EpisodeTracker, WindowVerdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=200_000)
    parser.add_argument("--sources", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(1)
    ratios, level = [], 0.5
    for i in range(args.windows):
        if i % 500 == 0:
            level = 1.5 if rng.random() < 0.3 else 0.5
        ratios.append(level * (0.9 + 0.2 * rng.random()))
    sources = [f"s{i}" for i in range(args.sources)]
    best, records = float("inf"), 0
    for _ in range(args.rounds):
        tracker = EpisodeTracker(EpisodePolicy())
        records = 0
        start = time.perf_counter()
        for i, ratio in enumerate(ratios):
            verdict = WindowVerdict(sources[i % args.sources], 0, i, float(i), ratio * 0.1, ratio)
            records += len(tracker.apply(verdict, float(i)))
        best = min(best, time.perf_counter() - start)
    print(f"{best / args.windows * 1e9:,.0f} ns per window (best of {args.rounds}), {records} records")


if __name__ == "__main__":
    main()
