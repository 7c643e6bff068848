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


@dataclass
class DecodedBatch:
    """Many payloads decoded at once: the valid windows as one matrix with their fields, and the invalid ones."""

    windows: np.ndarray  # [k, window] float32
    index: list[int]  # position of each valid window among the payloads, ascending
    ids: list[str | None]
    sources: list[str | None]
    ts: list[float | None]
    errors: list[tuple[int, InvalidWindow]]  # (position, why) of each invalid payload


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

    def decode_many(self, payloads: Sequence[bytes | None]) -> DecodedBatch:
        """Decode a whole poll: the same verdicts and values as `decode` on each payload, with the common case
        (every payload well formed) done in a few vectorised steps instead of per-message numpy work."""
        if self.fmt == "f32" and self.window * F32.itemsize <= self.max_bytes:
            return self._many_f32(payloads)
        if self.fmt == "json":
            return self._many_json(payloads)
        return self._many_each(payloads, range(len(payloads)))

    def _many_each(self, payloads: Sequence[bytes | None], positions: Sequence[int]) -> DecodedBatch:
        """The per-message path, for `auto` and for the payloads a vectorised path set aside."""
        rows, index, ids, sources, ts, errors = [], [], [], [], [], []
        for i in positions:
            try:
                w = self.decode(payloads[i])
            except InvalidWindow as error:
                errors.append((i, error))
                continue
            rows.append(w.values)
            index.append(i)
            ids.append(w.id)
            sources.append(w.source)
            ts.append(w.ts)
        windows = np.stack(rows) if rows else np.empty((0, self.window), dtype=np.float32)
        return DecodedBatch(windows, index, ids, sources, ts, errors)

    def _many_f32(self, payloads: Sequence[bytes | None]) -> DecodedBatch:
        size = self.window * F32.itemsize
        try:
            ok = np.fromiter(map(len, payloads), dtype=np.int64, count=len(payloads)) == size  # type: ignore[arg-type]
        except TypeError:  # a message without a value
            ok = np.fromiter((len(p) == size if p else False for p in payloads), dtype=bool, count=len(payloads))
        good = payloads if ok.all() else [p for p, fine in zip(payloads, ok, strict=True) if fine]
        # one C loop copying each payload into a fixed-width bytes array (faster than b"".join for large polls);
        # 'S' pads short values with NUL bytes, but every value here is exactly `size` long, so nothing changes
        windows = np.array(good, dtype=f"S{size}").view(F32).reshape(-1, self.window)
        finite = np.isfinite(windows).all(axis=1)
        ok[ok] = finite
        if not finite.all():
            windows = windows[finite]
        index = np.flatnonzero(ok).tolist()
        bad = np.flatnonzero(~ok).tolist()
        none: list[None] = [None] * len(index)
        return DecodedBatch(windows, index, list(none), list(none), list(none),
                            self._many_each(payloads, bad).errors if bad else [])

    def _many_json(self, payloads: Sequence[bytes | None]) -> DecodedBatch:
        rows: list[list[Any]] = []
        index: list[int] = []
        ids: list[str | None] = []
        sources: list[str | None] = []
        ts: list[float | None] = []
        aside: list[int] = []  # anything unusual goes through `decode`, which names the reason
        for i, payload in enumerate(payloads):
            body = _plain_body(payload, self.window, self.max_bytes)
            if body is None:
                aside.append(i)
                continue
            rows.append(body["values"])
            index.append(i)
            ids.append(body.get("id"))
            sources.append(body.get("source"))
            t = body.get("ts")
            ts.append(None if t is None else float(t))
        windows = _plain_matrix(rows, self.window)
        if windows is None:  # non-numbers or out-of-range values somewhere: sort them out row by row
            aside, index, ids, sources, ts = sorted(aside + index), [], [], [], []
            windows = np.empty((0, self.window), dtype=np.float32)
        if not aside:
            return DecodedBatch(windows, index, ids, sources, ts, [])
        rest = self._many_each(payloads, aside)
        order = np.argsort(index + rest.index, kind="stable")
        return DecodedBatch(np.concatenate([windows, rest.windows])[order], sorted(index + rest.index),
                            [(ids + rest.ids)[j] for j in order], [(sources + rest.sources)[j] for j in order],
                            [(ts + rest.ts)[j] for j in order], rest.errors)

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


def _plain_body(payload: bytes | None, window: int, max_bytes: int) -> dict[str, Any] | None:
    """The parsed body when the payload is the plain case the vectorised path accepts (a strict JSON object with
    `window` values, well-typed optional fields and no true/false anywhere); None sends it to `decode`."""
    if not payload or len(payload) > max_bytes or b"true" in payload or b"false" in payload:
        return None
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if type(body) is not dict:
        return None
    values = body.get("values")
    if type(values) is not list or len(values) != window:
        return None
    for key in ("id", "source"):
        if body.get(key) is not None and type(body[key]) is not str:
            return None
    t = body.get("ts")
    if t is not None and (type(t) not in (int, float) or not math.isfinite(t)):
        return None
    if body.get("label") not in (None, 0, 1):
        return None
    return body


def _plain_matrix(rows: list[list[Any]], window: int) -> np.ndarray | None:
    """All rows as one float32 matrix if every value is a number within float32's range, else None."""
    if not rows:
        return np.empty((0, window), dtype=np.float32)
    try:
        matrix = np.array(rows)  # bools were screened out; strings or nulls make a non-numeric dtype
    except (OverflowError, ValueError):
        return None
    if matrix.dtype.kind not in "fi" or matrix.shape != (len(rows), window):
        return None
    matrix = matrix.astype(np.float64, copy=False)
    if not np.all(np.abs(matrix) <= MAX_ABS_VALUE):
        return None
    return matrix.astype(np.float32)


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
    try:  # an integer beyond float's range (the lenient parser keeps it exact) overflows: also a bad field
        if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
            raise OverflowError
        return float(ts)
    except OverflowError:
        raise InvalidWindow("bad_field", "'ts' must be a finite number of seconds since the epoch") from None


def _optional_label(body: dict[str, Any]) -> int | None:
    label = body.get("label")
    if label is None:
        return None
    if label not in (0, 1) or isinstance(label, bool):
        raise InvalidWindow("bad_field", "'label' must be 0 or 1")
    return int(label)
