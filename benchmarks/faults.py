"""Run every fault-injection scenario against a fresh local broker and print the reconciliation table.

    python benchmarks/faults.py [--kills 12] [--windows 6000] [--seed 0]

Trains a small model on the sample stream first. CI runs the same scenarios with small counts
(tests/integration/test_faults.py); docs/reliability.md holds a table this script printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from fault_scenarios import (
    HEADER,
    FaultEnv,
    broker_outage,
    corrupt_bundle,
    kill9,
    output_unavailable,
    two_workers_one_killed,
)
from harness import train_sample_bundle
from perfdoc import add_client_option

from sample_streams.local_kafka import LocalKafka


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--windows", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    add_client_option(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalKafka() as kafka:
        bundle = train_sample_bundle(Path(tmp) / "bundle", epochs=60, name="faults")
        env = FaultEnv(kafka, bundle, Path(tmp), seed=args.seed, client=args.client)
        rows = []
        try:
            for name, run in [
                ("kill9 at-least-once", lambda: kill9(env, args.kills, args.windows)),
                ("kill9 exactly-once", lambda: kill9(env, args.kills, args.windows, exactly_once=True)),
                ("broker outage", lambda: broker_outage(env, 15, args.windows // 2, rate=200)),
                ("worker loss", lambda: two_workers_one_killed(env, args.windows, rate=400)),
                ("output unavailable", lambda: output_unavailable(env, 10, args.windows // 2)),
                ("corrupt bundle", lambda: corrupt_bundle(env)),
            ]:
                began = time.monotonic()
                rows.append(run())
                print(f"{name}: done in {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
        finally:
            env.cleanup()
    print(f"worker client: {args.client}\n")
    print(HEADER)
    for row in rows:
        print(row.row())
    if any(r.lost for r in rows) or any(r.duplicated for r in rows if r.mode == "exactly-once"):
        sys.exit(1)


if __name__ == "__main__":
    main()
