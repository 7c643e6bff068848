"""Fuzz the window decoder/validator with mutated and random payloads (default 200k), checking that every one
is either a valid window or an InvalidWindow with a known reason — never any other exception.

    python benchmarks/fuzz_decoder.py [--n 200000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from collections.abc import Iterator

import numpy as np

from detector.wire.invalid import REASONS, InvalidWindow
from detector.wire.windows import WindowDecoder, encode_f32, encode_json

WINDOW = 140


def _random_json(rng: random.Random, depth: int = 0) -> object:
    choice = rng.randrange(9 if depth < 4 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 2**63, -(2**200), 10**400, rng.randrange(-1000, 1000)])
    if choice == 3:
        return rng.choice([0.0, -0.0, 1e308, -1e308, 3.5e38, 1e-320, float("nan"), float("inf"), rng.random()])
    if choice == 4:
        return rng.choice(["", "x", "1.5", "NaN", "\u0000", "é" * 3])
    if choice == 5:
        return rng.random() * 10
    if choice == 6:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    if choice == 7:
        return {rng.choice(["values", "id", "source", "ts", "label", "x"]): _random_json(rng, depth + 1)
                for _ in range(rng.randrange(0, 5))}
    n = rng.choice([0, 1, WINDOW - 1, WINDOW, WINDOW + 1])
    return {"values": [_random_json(rng, depth + 1) if rng.random() < 0.02 else rng.gauss(0, 1) for _ in range(n)]}


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        op = rng.randrange(6)
        if op == 0 and buf:  # flip a bit
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # truncate
            del buf[rng.randrange(len(buf)):]
        elif op == 2:  # insert random bytes
            i = rng.randrange(len(buf) + 1)
            buf[i:i] = rng.randbytes(rng.randrange(1, 8))
        elif op == 3 and buf:  # duplicate a slice
            i = rng.randrange(len(buf))
            buf[i:i] = buf[i : i + rng.randrange(1, 64)]
        elif op == 4:  # NaN / huge / nesting into JSON text
            token = rng.choice([b"NaN", b"Infinity", b"1e999", b"[[[[", b'"a"', b"true", b"null", b"-"])
            i = rng.randrange(len(buf) + 1)
            buf[i:i] = token
        elif op == 5 and len(buf) >= 4:  # a non-finite float32 into binary payloads
            i = rng.randrange(0, len(buf) - 3)
            buf[i : i + 4] = np.array([rng.choice([np.nan, np.inf, -np.inf])], "<f4").tobytes()
    return bytes(buf)


def payloads(n: int, seed: int = 0) -> Iterator[bytes]:
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    for _ in range(n):
        kind = rng.randrange(6)
        valid = nrng.normal(size=WINDOW).astype(np.float32)
        if kind == 0:
            yield rng.randbytes(rng.choice([0, 1, 13, 559, 560, 561, 1000, rng.randrange(0, 3000)]))
        elif kind == 1:
            yield _mutate(rng, encode_json(valid))
        elif kind == 2:
            yield _mutate(rng, encode_f32(valid))
        elif kind == 3:
            yield json.dumps(_random_json(rng)).encode()
        elif kind == 4:
            yield rng.choice([b"", b"{}", b"[]", b"null", b"{" * 5000, b"[" * 100_000 + b"]" * 100_000,
                              b" " * 70_000, encode_json(valid) + b"garbage"])
        else:
            yield encode_json(valid) if rng.random() < 0.5 else encode_f32(valid)


def check(payload: bytes, decoder: WindowDecoder) -> str:
    """'valid' or the InvalidWindow reason; anything else raised is a bug and propagates."""
    try:
        window = decoder.decode(payload)
    except InvalidWindow as err:
        if err.reason not in REASONS:
            raise AssertionError(f"unknown reason {err.reason!r} for {payload[:80]!r}") from None
        return err.reason
    values = window.values
    if values.shape != (WINDOW,) or values.dtype != np.float32 or not np.all(np.isfinite(values)):
        raise AssertionError(f"accepted an invalid window from {payload[:80]!r}")
    return "valid"


def run(n: int, seed: int) -> tuple[Counter, float]:
    decoder = WindowDecoder(WINDOW, "auto", max_bytes=65536)
    verdicts: Counter = Counter()
    start = time.perf_counter()
    for payload in payloads(n, seed):
        verdicts[check(payload, decoder)] += 1
    return verdicts, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    verdicts, seconds = run(args.n, args.seed)
    print(f"{args.n} payloads in {seconds:.1f} s ({args.n / seconds:,.0f}/s), no unexpected exception")
    print("| verdict | payloads |\n| --- | --- |")
    for reason, count in verdicts.most_common():
        print(f"| {reason} | {count} |")


if __name__ == "__main__":
    main()
