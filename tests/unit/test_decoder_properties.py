"""Property-based tests of the decoder/validator: whatever arrives, the answer is a valid window or an
InvalidWindow with a known reason."""

from __future__ import annotations

import json
import math

import numpy as np
from fuzz_decoder import check, run
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.wire.invalid import InvalidWindow
from detector.wire.windows import WindowDecoder, encode_f32

DECODER = WindowDecoder(140, "auto")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=30,
)


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes(payload: bytes) -> None:
    check(payload, DECODER)


@settings(max_examples=1500, deadline=None)
@given(json_values)
def test_random_json_documents(doc: object) -> None:
    check(json.dumps(doc).encode(), DECODER)


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3)


@settings(max_examples=300, deadline=None)
@given(st.integers(139, 141), st.dictionaries(st.integers(0, 140), scalars | st.lists(scalars, max_size=2),
                                               max_size=3),
       st.dictionaries(st.sampled_from(["id", "source", "ts", "label"]), scalars, max_size=4))
def test_window_shaped_json_with_random_members(n: int, odd: dict, extra: dict) -> None:
    values: list = [0.5] * n
    for i, v in odd.items():
        if i < n:
            values[i] = v
    check(json.dumps({"values": values, **extra}).encode(), DECODER)


finite32 = st.floats(min_value=-3.4e38, max_value=3.4e38, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(finite32, min_size=140, max_size=140))
def test_every_valid_window_is_accepted_exactly(values: list[float]) -> None:
    window = DECODER.decode(json.dumps({"values": values}).encode())
    np.testing.assert_array_equal(window.values, np.asarray(values, dtype=np.float32))
    np.testing.assert_array_equal(DECODER.decode(encode_f32(values)).values, np.asarray(values, np.float32))


@settings(max_examples=300, deadline=None)
@given(st.lists(finite32, min_size=140, max_size=140), st.integers(0, 139),
       st.sampled_from([math.nan, math.inf, -math.inf]))
def test_one_non_finite_value_is_always_caught(values: list[float], i: int, bad: float) -> None:
    values[i] = bad
    for payload in (json.dumps({"values": values}).encode(), encode_f32(values)):
        try:
            DECODER.decode(payload)
        except InvalidWindow as err:
            assert err.reason == "non_finite"
        else:
            raise AssertionError("accepted a non-finite value")


def test_mutation_fuzzer_small_run() -> None:
    verdicts, _ = run(5000, seed=1)
    assert sum(verdicts.values()) == 5000
    assert verdicts["valid"] > 0 and len(verdicts) >= 8


def _same_as_one_by_one(decoder: WindowDecoder, payloads: list[bytes]) -> None:
    """decode_many must agree with decode on every payload: same verdict, reason, values and fields, in order."""
    many = decoder.decode_many(payloads)
    expected_rows, expected_errors = [], []
    for i, payload in enumerate(payloads):
        try:
            expected_rows.append((i, decoder.decode(payload)))
        except InvalidWindow as err:
            expected_errors.append((i, err.reason))
    assert many.index == [i for i, _ in expected_rows]
    assert [(i, e.reason) for i, e in many.errors] == expected_errors
    assert many.windows.shape == (len(expected_rows), decoder.width) and many.windows.dtype == np.float32
    for row, (_, w) in enumerate(expected_rows):
        np.testing.assert_array_equal(many.windows[row], w.values)
        assert (many.ids[row], many.sources[row], many.ts[row]) == (w.id, w.source, w.ts)


window_docs = st.builds(
    lambda values, extra: json.dumps({"values": values, **extra}).encode(),
    st.lists(finite32 | st.integers(-10**6, 10**6), min_size=139, max_size=141),
    st.dictionaries(st.sampled_from(["id", "source", "ts", "label"]), scalars, max_size=4))
payload_mix = st.lists(window_docs | st.binary(max_size=600) | json_values.map(lambda d: json.dumps(d).encode())
                       | st.lists(finite32, min_size=140, max_size=140).map(encode_f32), max_size=12)


@settings(max_examples=400, deadline=None)
@given(payload_mix, st.sampled_from(["json", "f32", "auto"]))
def test_decode_many_agrees_with_decode(payloads: list[bytes], fmt: str) -> None:
    _same_as_one_by_one(WindowDecoder(140, fmt), payloads)


def test_decode_many_mostly_valid_poll_with_a_few_bad() -> None:
    good = [json.dumps({"values": [float(i % 7)] * 140, "id": f"w{i}", "ts": 1.5 * i}).encode() for i in range(50)]
    payloads = [*good[:10], b'{"values": [' + b"1.0," * 139 + b"true]}", *good[10:30],
                json.dumps({"values": [1e39] * 140}).encode(), *good[30:], b""]
    _same_as_one_by_one(WindowDecoder(140, "json"), payloads)
    f32 = [encode_f32(np.full(140, i, np.float32)) for i in range(20)]  # i = 0: all NUL bytes, kept exactly
    _same_as_one_by_one(WindowDecoder(140, "f32"), [*f32[:5], b"\x00" * 10, *f32[5:],
                                                    np.full(140, np.inf, np.float32).tobytes()])
