"""`tsad serve` (also `python -m detector serve`): run the detector worker."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any


def cmd_serve(args: argparse.Namespace) -> int:
    from detector.config import ConfigError, load_config
    from detector.kafka.preflight import StartupCheckError
    from detector.kafka.seams import BrokerError
    from detector.model.bundle import BundleError
    from detector.service import run

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"tsad serve: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("tsad.service").info("config: %s", json.dumps(config.redacted(), sort_keys=True))
    try:
        return run(config)
    except ConfigError as exc:  # found once the broker could be asked (e.g. the episode-state topic's layout)
        print(f"tsad serve: configuration error: {exc}", file=sys.stderr)
        return 2
    except BundleError as exc:
        print(f"tsad serve: model bundle error: {exc}", file=sys.stderr)
        return 2
    except StartupCheckError as exc:  # brokers unreachable, TLS or SASL refused, no READ on the input topic
        print(f"tsad serve: kafka start-up check failed: {exc}", file=sys.stderr)
        return 2
    except BrokerError as exc:  # a Kafka client that cannot even be made (e.g. a malformed bootstrap address)
        print(f"tsad serve: kafka error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # e.g. device 'cuda' requested without a GPU
        print(f"tsad serve: {exc}", file=sys.stderr)
        return 2


def register(sub: Any) -> None:
    s = sub.add_parser("serve", help="run the detector worker (Kafka in, anomaly events out)")
    s.add_argument("--config", help="YAML config (every key can also be set as TSAD_<SECTION>_<KEY>)")
    s.add_argument("--log-level", default="info")
    s.set_defaults(func=cmd_serve)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m detector")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))
