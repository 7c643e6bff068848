"""The `tsad` command: one parser, each subcommand registered by the package it belongs to (imported lazily at
run time, so `tsad train` never needs Kafka and `tsad serve` never imports training code)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from detector import __version__


def build_parser() -> argparse.ArgumentParser:
    from detector.cli import register as register_serve
    from detector.model.promote import register as register_promote
    from sample_streams.cli import register as register_streams
    from trainer.cli import register as register_training

    parser = argparse.ArgumentParser(prog="tsad", description="Streaming anomaly detection for telemetry.")
    parser.add_argument("--version", action="version", version=f"tsad {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    register_training(sub)
    register_serve(sub)
    register_promote(sub)
    register_streams(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from detector.model.bundle import BundleError
    from sample_streams.local_kafka import KafkaLauncherError
    from trainer.datasets import DatasetError

    try:
        return int(args.func(args))
    except (DatasetError, BundleError, KafkaLauncherError, ValueError) as exc:
        print(f"tsad {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
