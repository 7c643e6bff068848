"""The columnar JSON path: a poll of plain JSON window messages parsed by simdjson with each `values` array exported
as one block of doubles, so no Python float is made per value (orjson makes 140 of them per message, which is most
of its cost).

It takes only payloads it can prove are the plain case and sets everything else aside for the per-message decoder,
so every verdict and dead-letter reason stays that decoder's: a payload is set aside if it has a backslash (string
escapes, where parsers are most likely to differ), an array beyond one per channel (the export would flatten a
nested array), a duplicate key (orjson keeps the last, simdjson finds the first), a value that is not a number
(the export refuses it), a field of the wrong type, or a value beyond float32's range.
`tests/unit/test_decoder_properties.py` checks the two paths against each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np
import simdjson

from detector.wire.invalid import MAX_ABS_VALUE

T = TypeVar("T")
_PARSE_ERRORS = (ValueError, RuntimeError, TypeError, KeyError)  # simdjson's refusals; UnicodeDecodeError too


class PlainJson(NamedTuple):
    """What the columnar path took: rows in payload order, and the positions it left to the per-message decoder."""

    windows: np.ndarray  # [k, channels * window] float32
    positions: list[int]
    ids: list[str | None]
    sources: list[str | None]
    ts: list[float | None]
    aside: list[int]


class JsonColumns:
    """Decodes polls of plain JSON window messages for one window length and channel list (not thread-safe: one
    simdjson parser, reused for every message)."""

    def __init__(self, window: int, channels: Sequence[str], max_bytes: int) -> None:
        self.window = window
        self.channels = tuple(channels)
        self.max_bytes = max_bytes
        self._parser = simdjson.Parser()
        self._arrays = len(self.channels)
        self._channel_set = set(self.channels)

    def decode(self, payloads: Sequence[bytes | None], positions: Sequence[int]) -> PlainJson:
        blocks: list[Any] = []
        index: list[int] = []
        ids: list[str | None] = []
        sources: list[str | None] = []
        ts: list[float | None] = []
        aside: list[int] = []
        for i in positions:
            fields = self._plain(payloads[i], blocks)
            if fields is None:
                aside.append(i)
                continue
            index.append(i)
            ids.append(fields[0])
            sources.append(fields[1])
            ts.append(fields[2])
        width = self.window * len(self.channels)
        matrix = np.frombuffer(b"".join(blocks), dtype=np.float64).reshape(-1, width)
        in_range = np.all(np.abs(matrix) <= MAX_ABS_VALUE, axis=1)
        if not in_range.all():  # out of float32's range: the per-message decoder names the value
            keep = in_range.tolist()
            aside = sorted(aside + [i for i, ok in zip(index, keep, strict=True) if not ok])
            index, ids, sources, ts = (_kept(index, keep), _kept(ids, keep), _kept(sources, keep), _kept(ts, keep))
            matrix = matrix[in_range]
        return PlainJson(matrix.astype(np.float32), index, ids, sources, ts, aside)

    def _plain(self, payload: bytes | None, blocks: list[Any]) -> tuple[str | None, str | None, float | None] | None:
        """(id, source, ts) after appending the payload's values to `blocks`, or None (nothing appended). One
        function on purpose: this runs once per message, and Python calls cost as much as the parse."""
        if not payload or len(payload) > self.max_bytes or b"\\" in payload:
            return None
        at = -1
        for _ in range(self._arrays + 1):  # at most one '[' per channel (find is a memchr; count is not)
            at = payload.find(b"[", at + 1)
            if at < 0:
                break
        else:
            return None
        try:
            body: Any = self._parser.parse(payload)
        except _PARSE_ERRORS:
            return None
        if type(body) is not simdjson.Object:
            return None
        keys = _unique_keys(body)
        if keys is None or "values" not in keys:
            return None
        raw: Any = body["values"]
        parts: list[Any]
        if type(raw) is simdjson.Array and self._arrays == 1:
            parts = [raw]
        elif type(raw) is simdjson.Object and _unique_keys(raw) == self._channel_set:
            parts = [raw[c] for c in self.channels]
        else:
            return None
        exported = []
        for part in parts:
            if type(part) is not simdjson.Array or len(part) != self.window:
                return None
            try:
                exported.append(part.as_buffer(of_type="d"))
            except TypeError:  # not a number
                return None
        # simdjson's get of a missing key costs ~2 us (an exception inside): look up only keys that are there
        id_: Any = body["id"] if "id" in keys else None
        source: Any = body["source"] if "source" in keys else None
        t: Any = body["ts"] if "ts" in keys else None
        label: Any = body["label"] if "label" in keys else None
        if ((id_ is not None and type(id_) is not str) or (source is not None and type(source) is not str)
                or (label is not None and (type(label) is bool or label not in (0, 1)))
                or (t is not None and (type(t) not in (int, float) or not math.isfinite(t)))):
            return None
        blocks.extend(exported)
        return id_, source, None if t is None else float(t)


def _kept(column: list[T], keep: list[bool]) -> list[T]:
    return [x for x, ok in zip(column, keep, strict=True) if ok]


def _unique_keys(obj: Any) -> set[str] | None:
    """The object's keys, or None if one repeats."""
    keys = list(obj.keys())
    unique = set(keys)
    return unique if len(unique) == len(keys) else None


