"""The window message formats on Kafka, and their decoding with validation (docs/formats.md is the schema).

- `json`: `{"id"?: str, "source"?: str, "ts"?: number (epoch seconds), "values": [window numbers], "label"?: 0|1}`;
  with several channels `"values"` maps each channel name to its `window` numbers.
- `f32`: exactly channels × `window` little-endian float32, channel-major (560 bytes for one channel of 140); the
  source travels in the Kafka key.
- `batch`: many windows in one message, an Arrow IPC stream (`wire/batch.py`).
- `auto`: f32 for payloads of exactly the f32 size that are not a JSON object, a batch for an Arrow stream, JSON
  otherwise.

A decoded window is one float32 row of channels × window values, channel-major, in the bundle's channel order.

Decoding never raises anything but `InvalidWindow`, whose `reason` is a short stable code (a metric label and a
dead-letter header).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

import numpy as np

from detector.wire.batch import MAGIC, decode_batch
from detector.wire.columns import Repeated, RowBlocks, concat
from detector.wire.invalid import F32, InvalidWindow
from detector.wire.json_body import checked_values, optional, optional_label, optional_ts, parse_object
from detector.wire.json_columns import JsonColumns

FORMATS = ("json", "f32", "batch", "auto")


@dataclass(frozen=True)
class DecodedWindow:
    values: np.ndarray  # [channels * window] float32, channel-major
    id: str | None = None
    source: str | None = None
    ts: float | None = None
    label: int | None = None


@dataclass
class DecodedBatch:
    """Many payloads decoded at once: the valid windows as one matrix with their fields, and the invalid ones.
    A batched message contributes one window per valid row (its position repeats in `index`); its fields are
    columns (wire/columns.py) that make no Python object per window."""

    windows: np.ndarray | RowBlocks  # [k, channels * window] float32 (batched messages: their blocks, not joined)
    index: Sequence[int]  # position of each valid window's message among the payloads, ascending
    ids: Sequence[str | None]
    sources: Sequence[str | None]
    ts: Sequence[float | None]
    errors: list[tuple[int, InvalidWindow]]  # (position, why) of each payload refused as a whole
    rows: Sequence[int] | None = None  # row of each window within its batched message (-1: a message of its own)
    row_errors: list[tuple[int, int, InvalidWindow]] = field(default_factory=list)  # (position, row, why)
    batch_rows: dict[int, int] = field(default_factory=dict)  # position -> rows (valid or not) of a batched message


def combine(a: DecodedBatch, b: DecodedBatch) -> DecodedBatch:
    """Two decodings of disjoint payloads of one poll, merged back into poll order."""
    rows_a = list(a.rows) if a.rows is not None else [-1] * len(a.index)
    rows_b = list(b.rows) if b.rows is not None else [-1] * len(b.index)
    keys = list(zip([*a.index, *b.index], rows_a + rows_b, strict=True))
    order = sorted(range(len(keys)), key=keys.__getitem__)
    pick = lambda x, y: [[*x, *y][j] for j in order]  # noqa: E731
    windows = np.concatenate([np.asarray(a.windows), np.asarray(b.windows)])
    return DecodedBatch(windows[order], pick(a.index, b.index), pick(a.ids, b.ids),
                        pick(a.sources, b.sources), pick(a.ts, b.ts), sorted(a.errors + b.errors, key=_first),
                        pick(rows_a, rows_b) if a.rows is not None or b.rows is not None else None,
                        a.row_errors + b.row_errors, {**a.batch_rows, **b.batch_rows})


def _first(item: tuple[int, InvalidWindow]) -> int:
    return item[0]


def encode_json(values: np.ndarray | list[float], *, id: str | None = None, source: str | None = None,
                ts: float | None = None, label: int | None = None, decimals: int | None = 6,
                channels: Sequence[str] | None = None) -> bytes:
    """A JSON window message; with `channels`, `values` (a channel-major row or [channels, window]) is written as
    an object of channel name → numbers."""
    body: dict[str, Any] = {}
    if id is not None:
        body["id"] = id
    if source is not None:
        body["source"] = source
    if ts is not None:
        body["ts"] = ts
    arr = np.asarray(values, dtype=np.float64)
    arr = np.round(arr, decimals) if decimals is not None else arr
    if channels is None:
        body["values"] = arr.tolist()
    else:
        rows = arr.reshape(len(channels), -1).tolist()
        body["values"] = dict(zip(channels, rows, strict=True))
    if label is not None:
        body["label"] = int(label)
    return json.dumps(body, separators=(",", ":")).encode()


def encode_f32(values: np.ndarray | list[float]) -> bytes:
    return np.ascontiguousarray(values, dtype=F32).tobytes()


class WindowDecoder:
    """Decodes and validates one message at a time; `fmt='auto'` picks JSON for payloads starting with '{'."""

    def __init__(self, window: int = 140, fmt: str = "auto", max_bytes: int = 65536,
                 channels: Sequence[str] = ("value",), max_batch_bytes: int = 8 << 20) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"window format must be one of {list(FORMATS)}, got {fmt!r}")
        self.window = window
        self.channels = tuple(channels)
        self.width = window * len(self.channels)
        self.fmt = fmt
        self.max_bytes = max_bytes
        self.max_batch_bytes = max_batch_bytes
        self._json_columns = JsonColumns(window, self.channels, max_bytes)

    def decode(self, payload: bytes | None) -> DecodedWindow:
        if not payload:
            raise InvalidWindow("empty", "message has no value")
        if self._is_batch(payload):
            return self._decode_one_batch(payload)
        if len(payload) > self.max_bytes:
            raise InvalidWindow("oversized", f"{len(payload)} bytes > limit {self.max_bytes}")
        if self.fmt == "json":
            return self._decode_json(payload)
        if self.fmt == "f32":
            return self._decode_f32(payload)
        return self._decode_auto(payload)

    def _is_batch(self, payload: bytes) -> bool:
        """A batched message: always with fmt 'batch'; with 'auto', an Arrow stream that is not f32-sized."""
        return self.fmt == "batch" or (self.fmt == "auto" and payload[:4] == MAGIC
                                       and len(payload) != self.width * F32.itemsize)

    def _decode_one_batch(self, payload: bytes) -> DecodedWindow:
        """A batched message holding exactly one valid window (decode_many takes any number per message)."""
        if len(payload) > self.max_batch_bytes:
            raise InvalidWindow("oversized", f"{len(payload)} bytes > batch limit {self.max_batch_bytes}")
        rows = decode_batch(payload, self.width)
        if rows.errors or len(rows.rows) != 1:
            raise InvalidWindow("bad_batch", f"{len(rows.rows) + len(rows.errors)} windows in one message: batched "
                                "messages are decoded a poll at a time (decode_many)")
        return DecodedWindow(rows.windows[0], rows.ids[0], rows.sources[0], rows.ts[0])

    def _decode_auto(self, payload: bytes) -> DecodedWindow:
        """Any payload of exactly the f32 size is f32 unless it is a JSON object; anything else is JSON.

        An f32 payload's first byte can be anything (even '{'), so the size decides first. Prefer a fixed format
        in production; `auto` exists for mixed producers.
        """
        stripped = payload.strip()
        if len(payload) != self.width * F32.itemsize:
            if stripped[:1] in (b"{", b"["):
                return self._decode_json(payload)
            raise InvalidWindow("wrong_length", f"{len(payload)} bytes: neither JSON nor an f32 payload of "
                                f"{self.width * F32.itemsize} bytes")
        if stripped[:1] == b"{" and stripped[-1:] == b"}":
            try:
                return self._decode_json(payload)
            except InvalidWindow:
                pass
        return self._decode_f32(payload)

    def decode_many(self, payloads: Sequence[bytes | None]) -> DecodedBatch:
        """Decode a whole poll: the same verdicts and values as `decode` on each payload, with the common case
        (every payload well formed) done in a few vectorised steps instead of per-message numpy work."""
        if self.fmt == "batch":
            return self._many_batches(payloads, range(len(payloads)))
        if self.fmt == "f32" and self.width * F32.itemsize <= self.max_bytes:
            return self._many_f32(payloads)
        if self.fmt == "json":
            return self._many_json(payloads, range(len(payloads)))
        batched, json_objects, rest = [], [], []
        f32_size = self.width * F32.itemsize
        for i, p in enumerate(payloads):
            if p and self._is_batch(p):
                batched.append(i)
            elif p and p[:1] == b"{" and len(p) != f32_size:  # what `auto` decodes as JSON without looking further
                json_objects.append(i)
            else:
                rest.append(i)
        parts = [decode(payloads, chosen) for decode, chosen in
                 ((self._many_batches, batched), (self._many_json, json_objects), (self._many_each, rest)) if chosen]
        return reduce(combine, parts) if parts else self._many_each(payloads, [])

    def _many_batches(self, payloads: Sequence[bytes | None], positions: Sequence[int]) -> DecodedBatch:
        """Batched messages: every valid row a window; a message refused as a whole, or single rows."""
        parts: list[np.ndarray] = []
        positions_used: list[int] = []
        counts: list[int] = []
        ids: list[Sequence[str | None]] = []
        sources: list[Sequence[str | None]] = []
        ts: list[Sequence[float | None]] = []
        rows: list[Sequence[int]] = []
        out = DecodedBatch(np.empty((0, self.width), np.float32), [], [], [], [], [], [], [], {})
        for i in positions:
            payload = payloads[i]
            try:
                if not payload:
                    raise InvalidWindow("empty", "message has no value")
                if len(payload) > self.max_batch_bytes:
                    raise InvalidWindow("oversized", f"{len(payload)} bytes > batch limit {self.max_batch_bytes}")
                decoded = decode_batch(payload, self.width)
            except InvalidWindow as error:
                out.errors.append((i, error))
                continue
            parts.append(decoded.windows)
            positions_used.append(i)
            counts.append(len(decoded.rows))
            ids.append(decoded.ids)
            sources.append(decoded.sources)
            ts.append(decoded.ts)
            rows.append(decoded.rows)
            out.row_errors += [(i, r, e) for r, e in decoded.errors]
            out.batch_rows[i] = len(decoded.rows) + len(decoded.errors)
        if parts:
            out.windows = RowBlocks(parts, self.width)
            out.index = Repeated(positions_used, counts)
            out.ids, out.sources, out.ts, out.rows = concat(ids), concat(sources), concat(ts), concat(rows)
        return out

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
        windows = np.stack(rows) if rows else np.empty((0, self.width), dtype=np.float32)
        return DecodedBatch(windows, index, ids, sources, ts, errors)

    def _many_f32(self, payloads: Sequence[bytes | None]) -> DecodedBatch:
        size = self.width * F32.itemsize
        try:
            ok = np.fromiter(map(len, payloads), dtype=np.int64, count=len(payloads)) == size  # type: ignore[arg-type]
        except TypeError:  # a message without a value
            ok = np.fromiter((len(p) == size if p else False for p in payloads), dtype=bool, count=len(payloads))
        good = payloads if ok.all() else [p for p, fine in zip(payloads, ok, strict=True) if fine]
        # one C loop copying each payload into a fixed-width bytes array (faster than b"".join for large polls);
        # 'S' pads short values with NUL bytes, but every value here is exactly `size` long, so nothing changes
        windows = np.array(good, dtype=f"S{size}").view(F32).reshape(-1, self.width)
        finite = np.isfinite(windows).all(axis=1)
        ok[ok] = finite
        if not finite.all():
            windows = windows[finite]
        index = np.flatnonzero(ok).tolist()
        bad = np.flatnonzero(~ok).tolist()
        none: list[None] = [None] * len(index)
        return DecodedBatch(windows, index, list(none), list(none), list(none),
                            self._many_each(payloads, bad).errors if bad else [])

    def _many_json(self, payloads: Sequence[bytes | None], positions: Sequence[int]) -> DecodedBatch:
        """JSON messages through the columnar path; whatever it sets aside through `decode`, which names the
        reason (so the verdicts are exactly the per-message ones)."""
        plain = self._json_columns.decode(payloads, positions)
        out = DecodedBatch(plain.windows, plain.positions, plain.ids, plain.sources, plain.ts, [])
        return combine(out, self._many_each(payloads, plain.aside)) if plain.aside else out

    def _decode_f32(self, payload: bytes) -> DecodedWindow:
        expected = self.width * F32.itemsize
        if len(payload) != expected:
            raise InvalidWindow("wrong_length", f"f32 payload of {len(payload)} bytes, expected {expected}")
        values = np.frombuffer(payload, dtype=F32)
        if not np.all(np.isfinite(values)):
            raise InvalidWindow("non_finite", f"NaN or Inf at index {int(np.argmin(np.isfinite(values)))}")
        return DecodedWindow(values)

    def _decode_json(self, payload: bytes) -> DecodedWindow:
        body = parse_object(payload)
        return DecodedWindow(
            checked_values(body, self.window, self.channels),
            id=optional(body, "id", str),
            source=optional(body, "source", str),
            ts=optional_ts(body),
            label=optional_label(body),
        )


def header_ids(messages: Sequence[Any], ids: Sequence[str | None]) -> Sequence[str | None]:
    """Fill the ids a payload did not name from each message's `tsad-id` header (f32 carries its id there)."""
    ids = ids if isinstance(ids, list) else list(ids)
    for j, message in enumerate(messages):
        if ids[j] is None and message.headers:
            header_id = dict(message.headers).get("tsad-id")
            if header_id:
                ids[j] = header_id.decode("utf-8", errors="replace")
    return ids
