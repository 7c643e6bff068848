"""The window message formats on Kafka, and their decoding with validation (docs/formats.md is the schema).

- `json`: `{"id"?: str, "source"?: str, "ts"?: number (epoch seconds), "values": [window numbers], "label"?: 0|1}`
- `f32`: exactly `window` little-endian float32 (560 bytes for 140); the source travels in the Kafka key.
- `auto`: f32 for payloads of exactly the f32 size that are not a JSON object, JSON otherwise.

Decoding never raises anything but `InvalidWindow`, whose `reason` is a short stable code (a metric label and a
dead-letter header).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

FORMATS = ("json", "f32", "auto")
REASONS = (
    "empty",
    "oversized",
    "bad_encoding",
    "not_json",
    "not_object",
    "missing_values",
    "values_not_list",
    "wrong_length",
    "non_numeric",
    "non_finite",
    "out_of_range",
    "bad_field",
)
F32 = np.dtype("<f4")
# Values beyond float32's range cannot be scored; reject them rather than overflow to inf.
MAX_ABS_VALUE = float(np.finfo(np.float32).max)


class InvalidWindow(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DecodedWindow:
    values: np.ndarray  # [window] float32
    id: str | None = None
    source: str | None = None
    ts: float | None = None
    label: int | None = None


def encode_json(values: np.ndarray | list[float], *, id: str | None = None, source: str | None = None,
                ts: float | None = None, label: int | None = None, decimals: int | None = 6) -> bytes:
    body: dict[str, Any] = {}
    if id is not None:
        body["id"] = id
    if source is not None:
        body["source"] = source
    if ts is not None:
        body["ts"] = ts
    arr = np.asarray(values, dtype=np.float64)
    body["values"] = (np.round(arr, decimals) if decimals is not None else arr).tolist()
    if label is not None:
        body["label"] = int(label)
    return json.dumps(body, separators=(",", ":")).encode()


def encode_f32(values: np.ndarray | list[float]) -> bytes:
    return np.ascontiguousarray(values, dtype=F32).tobytes()


class WindowDecoder:
    """Decodes and validates one message at a time; `fmt='auto'` picks JSON for payloads starting with '{'."""

    def __init__(self, window: int = 140, fmt: str = "auto", max_bytes: int = 65536) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"window format must be one of {list(FORMATS)}, got {fmt!r}")
        self.window = window
        self.fmt = fmt
        self.max_bytes = max_bytes

    def decode(self, payload: bytes | None) -> DecodedWindow:
        if not payload:
            raise InvalidWindow("empty", "message has no value")
        if len(payload) > self.max_bytes:
            raise InvalidWindow("oversized", f"{len(payload)} bytes > limit {self.max_bytes}")
        if self.fmt == "json":
            return self._decode_json(payload)
        if self.fmt == "f32":
            return self._decode_f32(payload)
        return self._decode_auto(payload)

    def _decode_auto(self, payload: bytes) -> DecodedWindow:
        """Any payload of exactly the f32 size is f32 unless it is a JSON object; anything else is JSON.

        An f32 payload's first byte can be anything (even '{'), so the size decides first. Prefer a fixed format
        in production; `auto` exists for mixed producers.
        """
        stripped = payload.strip()
        if len(payload) != self.window * F32.itemsize:
            if stripped[:1] in (b"{", b"["):
                return self._decode_json(payload)
            raise InvalidWindow("wrong_length", f"{len(payload)} bytes: neither JSON nor an f32 payload of "
                                f"{self.window * F32.itemsize} bytes")
        if stripped[:1] == b"{" and stripped[-1:] == b"}":
            try:
                return self._decode_json(payload)
            except InvalidWindow:
                pass
        return self._decode_f32(payload)

    def decode_f32_batch(self, payloads: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised f32 decoding of many payloads at once (no per-message numpy work):
        (windows of the valid payloads [k, window], valid mask [n]). Invalid ones need `decode` for a reason."""
        size = self.window * F32.itemsize
        ok = np.fromiter(map(len, payloads), dtype=np.int64, count=len(payloads)) == size
        joined = b"".join(payloads) if ok.all() else b"".join(p for p, good in zip(payloads, ok, strict=True) if good)
        windows = np.frombuffer(joined, dtype=F32).reshape(-1, self.window)
        finite = np.isfinite(windows).all(axis=1)
        ok[ok] = finite
        return windows[finite] if not finite.all() else windows, ok

    def _decode_f32(self, payload: bytes) -> DecodedWindow:
        expected = self.window * F32.itemsize
        if len(payload) != expected:
            raise InvalidWindow("wrong_length", f"f32 payload of {len(payload)} bytes, expected {expected}")
        values = np.frombuffer(payload, dtype=F32)
        if not np.all(np.isfinite(values)):
            raise InvalidWindow("non_finite", f"NaN or Inf at index {int(np.argmin(np.isfinite(values)))}")
        return DecodedWindow(values)

    def _decode_json(self, payload: bytes) -> DecodedWindow:
        try:
            body = orjson.loads(payload)  # ~10x faster than json; strict JSON only
        except orjson.JSONDecodeError:
            body = self._decode_json_lenient(payload)  # NaN, Infinity, huge integers: let json classify them
        if not isinstance(body, dict):
            raise InvalidWindow("not_object", f"top level is {type(body).__name__}, expected an object")
        if "values" not in body:
            raise InvalidWindow("missing_values", "no 'values' field")
        raw = body["values"]
        if not isinstance(raw, list):
            raise InvalidWindow("values_not_list", f"'values' is {type(raw).__name__}, expected a list")
        if len(raw) != self.window:
            raise InvalidWindow("wrong_length", f"{len(raw)} values, expected {self.window}")
        values = _fast_values(raw)
        if values is None:
            values = _checked_values(raw)
        return DecodedWindow(
            values,
            id=_optional(body, "id", str),
            source=_optional(body, "source", str),
            ts=_optional_ts(body),
            label=_optional_label(body),
        )

    @staticmethod
    def _decode_json_lenient(payload: bytes) -> Any:
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


def _checked_values(raw: list[Any]) -> np.ndarray:
    """The slow path: find the first offending value and say what is wrong with it."""
    for i, v in enumerate(raw):
            # bool is an int subclass in Python, but true/false are not samples.
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InvalidWindow("non_numeric", f"values[{i}] is {type(v).__name__}")
            if isinstance(v, float) and not math.isfinite(v):
                raise InvalidWindow("non_finite", f"values[{i}] is {v}")
            if abs(v) > MAX_ABS_VALUE:
                raise InvalidWindow("out_of_range", f"values[{i}] exceeds the float32 range")
    return np.asarray(raw, dtype=np.float32)


def _optional(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        raise InvalidWindow("bad_field", f"'{key}' is {type(value).__name__}, expected {kind.__name__}")
    return value


def _optional_ts(body: dict[str, Any]) -> float | None:
    ts = body.get("ts")
    if ts is None:
        return None
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
        raise InvalidWindow("bad_field", "'ts' must be a finite number of seconds since the epoch")
    return float(ts)


def _optional_label(body: dict[str, Any]) -> int | None:
    label = body.get("label")
    if label is None:
        return None
    if label not in (0, 1) or isinstance(label, bool):
        raise InvalidWindow("bad_field", "'label' must be 0 or 1")
    return int(label)
