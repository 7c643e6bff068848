"""The JSON window message: strict parsing (orjson) with a lenient fallback that classifies what is wrong, the
checks on `values` and the optional fields (whole polls of plain messages: wire/json_columns.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from detector.wire.invalid import MAX_ABS_VALUE, InvalidWindow


def parse_object(payload: bytes) -> dict[str, Any]:
    """The top-level JSON object; InvalidWindow (bad_encoding, not_json, not_object) otherwise."""
    try:
        body = orjson.loads(payload)  # ~10x faster than json; strict JSON only
    except orjson.JSONDecodeError:
        body = _lenient(payload)  # NaN, Infinity, huge integers: let json classify them
    if not isinstance(body, dict):
        raise InvalidWindow("not_object", f"top level is {type(body).__name__}, expected an object")
    return body


def checked_values(body: dict[str, Any], window: int, channels: Sequence[str] = ("value",)) -> np.ndarray:
    """`values` as one float32 row (channel-major) after every check, naming the first offending value.

    One channel: a list of `window` numbers (or an object holding the one channel). Several: an object mapping
    each channel name to a list of `window` numbers; a missing or unknown name is refused by name.
    """
    if "values" not in body:
        raise InvalidWindow("missing_values", "no 'values' field")
    raw = body["values"]
    if isinstance(raw, list) and len(channels) == 1:
        return _channel_values(raw, window, None)
    if not isinstance(raw, dict):
        if len(channels) == 1:
            raise InvalidWindow("values_not_list", f"'values' is {type(raw).__name__}, expected a list")
        raise InvalidWindow("values_not_object", f"'values' is {type(raw).__name__}, expected an object of "
                            f"{len(channels)} channels: {', '.join(channels)}")
    missing = [c for c in channels if c not in raw]
    if missing:
        raise InvalidWindow("missing_channel", f"no channel {missing[0]!r} in 'values' ({len(missing)} missing)")
    unknown = [c for c in raw if c not in channels]
    if unknown:
        raise InvalidWindow("unknown_channel", f"channel {str(unknown[0])[:100]!r} is not one of the model's")
    return np.concatenate([_channel_values(raw[c], window, c if len(channels) > 1 else None) for c in channels])


def _channel_values(raw: Any, window: int, channel: str | None) -> np.ndarray:
    where = "'values'" if channel is None else f"channel {channel!r}"
    if not isinstance(raw, list):
        raise InvalidWindow("values_not_list", f"{where} is {type(raw).__name__}, expected a list")
    if len(raw) != window:
        raise InvalidWindow("wrong_length", f"{where}: {len(raw)} values, expected {window}")
    values = _fast_values(raw)
    return values if values is not None else _slow_values(raw, "" if channel is None else f"{channel}.")


def _lenient(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except UnicodeDecodeError as exc:
        raise InvalidWindow("bad_encoding", f"not UTF-8: {exc.reason}") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidWindow("not_json", str(exc)[:200]) from None


def _fast_values(raw: list[Any]) -> np.ndarray | None:
    """The common case in one vectorised step: all plain ints/floats, finite, in float32 range; else None."""
    if not set(map(type, raw)) <= {float, int}:
        return None
    try:
        values = np.asarray(raw, dtype=np.float64)
    except OverflowError:  # an int beyond float64
        return None
    if not np.all(np.abs(values) <= MAX_ABS_VALUE):  # also false for NaN
        return None
    return values.astype(np.float32)


def _slow_values(raw: list[Any], prefix: str = "") -> np.ndarray:
    """The slow path: find the first offending value and say what is wrong with it (and in which channel)."""
    for i, v in enumerate(raw):
        # bool is an int subclass in Python, but true/false are not samples.
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InvalidWindow("non_numeric", f"{prefix}values[{i}] is {type(v).__name__}")
        if isinstance(v, float) and not math.isfinite(v):
            raise InvalidWindow("non_finite", f"{prefix}values[{i}] is {v}")
        if abs(v) > MAX_ABS_VALUE:
            raise InvalidWindow("out_of_range", f"{prefix}values[{i}] exceeds the float32 range")
    return np.asarray(raw, dtype=np.float32)


def optional(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        raise InvalidWindow("bad_field", f"'{key}' is {type(value).__name__}, expected {kind.__name__}")
    return value


def optional_ts(body: dict[str, Any]) -> float | None:
    ts = body.get("ts")
    if ts is None:
        return None
    try:  # an integer beyond float's range (the lenient parser keeps it exact) overflows: also a bad field
        if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
            raise OverflowError
        return float(ts)
    except OverflowError:
        raise InvalidWindow("bad_field", "'ts' must be a finite number of seconds since the epoch") from None


def optional_label(body: dict[str, Any]) -> int | None:
    label = body.get("label")
    if label is None:
        return None
    if label not in (0, 1) or isinstance(label, bool):
        raise InvalidWindow("bad_field", "'label' must be 0 or 1")
    return int(label)
