"""The columnar JSON path (wire/json_columns.py) against the per-message decoder: it must take the plain case and
set aside exactly what it cannot prove plain, so decode_many's verdicts, values and fields stay decode's."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_decoder_properties import _same_as_one_by_one

from detector.wire.json_columns import JsonColumns
from detector.wire.windows import WindowDecoder, encode_json

L = 8
CH = ("flow", "pressure")


def _agree(decoder: WindowDecoder, payloads: list[bytes]) -> None:
    _same_as_one_by_one(decoder, payloads)


def _values(n: int = L, first: str = "0.5") -> str:
    return "[" + ",".join([first] + ["1.25"] * (n - 1)) + "]"


PLAIN = [
    encode_json(np.arange(L) / 3, id="w1", source="pump-1", ts=1.7e9),
    encode_json(np.arange(L) * 1e30),
    ('{"values":' + _values(first="-7") + ',"ts":12,"label":1,"meta":{"site":"a"}}').encode(),  # extra object: ok
    ('{"values":' + _values(first="18446744073709551615") + ',"label":0.0}').encode(),  # u64 and a float label
]
ASIDE = {  # payload -> why the columnar path must not take it (decode gives the verdict, valid or not)
    ('{"values":' + _values() + ',"id":"caf\\u00e9"}').encode(): "an escape",
    ('{"values":' + _values(first="[2]") + "}").encode(): "a nested array (the export would flatten it)",
    ('{"values":' + _values() + ',"tags":["a"]}').encode(): "an extra array",
    ('{"values":' + _values() + ',"values":' + _values(first="9") + "}").encode(): "a duplicate key",
    ('{"id":"a","values":' + _values() + ',"id":7}').encode(): "a duplicate field of the wrong type",
    ('{"values":' + _values(first="true") + "}").encode(): "a boolean value",
    ('{"values":' + _values() + ',"label":true}').encode(): "a boolean label",
    ('{"values":' + _values() + ',"label":2}').encode(): "a label not 0 or 1",
    ('{"values":' + _values() + ',"ts":"now"}').encode(): "a string time",
    ('{"values":' + _values() + ',"source":5}').encode(): "a number source",
    ('{"values":' + _values(first="1e39") + "}").encode(): "beyond float32",
    ('{"values":' + _values(first="1e400") + "}").encode(): "beyond float64",
    ('{"values":' + _values(first="123456789012345678901234567890") + "}").encode(): "a big integer",
    ('{"values":' + _values(first="NaN") + "}").encode(): "NaN (not JSON)",
    ('{"values":' + _values(n=L - 1) + "}").encode(): "a short window",
    ('{"values":' + _values(first="null") + "}").encode(): "a null",
    b'["values"]': "not an object",
    b'{"values":' + _values().encode() + b"} trailing": "trailing bytes",
    b'{"values":[1,2,3' + b"\xff" + b"]}": "invalid UTF-8",
    b"": "empty",
}


def test_plain_payloads_are_taken_and_everything_else_set_aside() -> None:
    columns = JsonColumns(L, ("value",), 65536)
    payloads = [*PLAIN, *ASIDE]
    taken = columns.decode(payloads, range(len(payloads)))
    assert taken.positions == list(range(len(PLAIN)))
    assert taken.aside == list(range(len(PLAIN), len(payloads))), [
        why for payload, why in ASIDE.items() if payloads.index(payload) not in taken.aside]
    assert taken.windows.dtype == np.float32 and taken.windows.shape == (len(PLAIN), L)
    assert (taken.ids[0], taken.sources[0], taken.ts[0]) == ("w1", "pump-1", 1.7e9)


@pytest.mark.parametrize("fmt", ["json", "auto"])
def test_decode_many_agrees_with_decode_on_every_edge_case(fmt: str) -> None:
    _agree(WindowDecoder(L, fmt), [*PLAIN, *ASIDE, *PLAIN])


def test_oversized_payloads_are_left_to_decode() -> None:
    payload = encode_json(np.zeros(L), id="x" * 200)
    assert JsonColumns(L, ("value",), 100).decode([payload], [0]).aside == [0]
    _agree(WindowDecoder(L, "json", max_bytes=100), [payload, encode_json(np.zeros(L))])


def test_several_channels() -> None:
    row = np.arange(2 * L, dtype=np.float32)
    good = encode_json(row, channels=CH, source="pump-1", decimals=None)
    odd = [
        ('{"values":{"flow":' + _values() + ',"pressure":' + _values() + ',"flow":' + _values() + "}}").encode(),
        ('{"values":{"flow":' + _values() + "}}").encode(),
        ('{"values":{"flow":' + _values() + ',"pressure":' + _values() + ',"temp":' + _values() + "}}").encode(),
        ('{"values":{"flow":' + _values() + ',"pressure":' + _values(first="[1]") + "}}").encode(),
        ('{"values":' + _values(n=2 * L) + "}").encode(),
    ]
    columns = JsonColumns(L, CH, 65536)
    taken = columns.decode([good, *odd], range(1 + len(odd)))
    assert taken.positions == [0] and taken.aside == list(range(1, 1 + len(odd)))
    np.testing.assert_array_equal(taken.windows[0], row)
    _agree(WindowDecoder(L, "json", channels=CH), [good, *odd, good])


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4)
finite = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**70), 2**70)
documents = st.builds(
    lambda values, extra: json.dumps({"values": values, **extra}, allow_nan=True).encode(),
    st.lists(finite | scalars, min_size=L - 1, max_size=L + 1),
    st.dictionaries(st.sampled_from(["id", "source", "ts", "label", "x"]), scalars | st.lists(scalars, max_size=2),
                    max_size=4))


@settings(max_examples=500, deadline=None)
@given(st.lists(documents, max_size=10), st.sampled_from(["json", "auto"]))
def test_property_columnar_and_per_message_paths_agree(payloads: list[bytes], fmt: str) -> None:
    _agree(WindowDecoder(L, fmt), payloads)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.floats(-3.4e38, 3.4e38, allow_nan=False) | st.integers(-(10**9), 10**9),
                         min_size=L, max_size=L), min_size=1, max_size=10),
       st.text(max_size=6))
def test_property_plain_windows_take_the_columnar_path(rows: list[list[float]], source: str) -> None:
    payloads = [json.dumps({"values": row, "source": source, "ts": 1.5}).encode() for row in rows]
    taken = JsonColumns(L, ("value",), 65536).decode(payloads, range(len(payloads)))
    if "\\" not in json.dumps(source) and "[" not in source:
        assert taken.aside == []
    _agree(WindowDecoder(L, "json"), payloads)
