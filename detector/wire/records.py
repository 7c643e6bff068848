"""Output records: anomaly events and per-window score records (docs/worker.md is the schema).

A whole scored batch is encoded at once: the fields shared by the batch (threshold, model, detection time) are
prepared once, times and rounding are vectorised, and only the dict and its JSON bytes are made per record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import orjson

from detector.kafka.seams import InputMessage
from detector.wire.columns import pick

SCHEMA_VERSION = 1


class WindowColumns(Protocol):
    """What the encoder reads of a batch: where each window came from and what its message named."""

    messages: Sequence[InputMessage]
    ids: Sequence[str | None]
    sources: Sequence[str | None]
    ts: Sequence[float | None]
    rows: Sequence[int]  # row within a batched message, -1 for a message of its own

    def __len__(self) -> int: ...


def key_source(message: InputMessage) -> str:
    """The source of a window whose payload names none: the message's Kafka key, else "unknown"."""
    return message.key.decode("utf-8", errors="replace") if message.key else "unknown"


def named_sources(sources: Sequence[str | None], messages: Sequence[InputMessage]) -> list[str]:
    """Each window's source as records carry it: named in the payload, else its message's key."""
    return [s or key_source(m) for s, m in zip(sources, messages, strict=True)]


def iso_times(seconds: np.ndarray) -> list[str]:
    """UTC ISO-8601 with milliseconds and a Z, e.g. 2023-11-14T22:13:20.500Z (truncated to the millisecond, as
    datetime.isoformat(timespec='milliseconds') does after rounding to the microsecond)."""
    micros = np.round(np.asarray(seconds, dtype=np.float64) * 1e6).astype(np.int64)
    stamps = (micros // 1000).astype("datetime64[ms]")
    return np.datetime_as_string(stamps, unit="ms", timezone="UTC").tolist()


@dataclass
class EncodedRecord:
    position: int  # index of the window in its batch
    source: str  # also the record key
    anomaly: bool
    value: bytes
    message: InputMessage  # the input it came from (its output is tied to that message's offset)


class RecordEncoder:
    """Builds the JSON records of a scored batch: events for anomalies, and score records for all when asked."""

    def __init__(self, *, model: Mapping[str, str], threshold: float, bounds: list[tuple[int, int]], top: int,
                 all_scores: bool, channels: Sequence[str] = ("value",), window_events: bool = True) -> None:
        self.model = model
        self.threshold = threshold
        self.bounds = bounds  # of one channel's segments; shares come as channel-major blocks of them
        self.channels = tuple(channels)
        self.top = top
        self.all_scores = all_scores
        self.window_events = window_events  # a record per anomalous window (else only score records, if any)
        self._threshold_r = round(threshold, 6)

    def encode(self, batch: WindowColumns, scores: np.ndarray, anomalous: np.ndarray, shares: np.ndarray,
               detected_at: float, thresholds: np.ndarray | None = None) -> list[EncodedRecord]:
        """Records for the batch; `shares` holds the segment shares of the anomalous windows only, in order;
        `thresholds`, when given, is the threshold each window was decided with (per-source calibration)."""
        if self.all_scores:
            positions = np.arange(len(batch))
        elif self.window_events:
            positions = np.flatnonzero(anomalous)
        else:
            return []
        if not len(positions):
            return []
        chosen = positions.tolist()
        messages = pick(batch.messages, chosen)
        kafka_ts = [m.timestamp_ms / 1000.0 for m in messages]
        event_times = iso_times(np.array([t if t is not None else k
                                          for t, k in zip(pick(batch.ts, chosen), kafka_ts, strict=True)],
                                         dtype=np.float64))
        detection_time = iso_times(np.array([detected_at]))[0]
        picked = np.asarray(scores, dtype=np.float64)[positions]
        rounded = np.round(picked, 6).tolist()
        if thresholds is None:
            ratios = np.round(picked / self.threshold, 4).tolist() if self.threshold > 0 else [None] * len(chosen)
            applied: list[float] = [self._threshold_r] * len(chosen)
        else:
            used = np.asarray(thresholds, dtype=np.float64)[positions]
            ratios = np.round(picked / np.maximum(used, 1e-12), 4).tolist()
            applied = np.round(used, 6).tolist()
        flags = anomalous[positions].tolist()
        segments = self._segments(shares, flags)
        out = []
        rows = pick(batch.rows, chosen) if batch.rows else [-1] * len(chosen)
        ids, sources = pick(batch.ids, chosen), named_sources(pick(batch.sources, chosen), messages)
        for j, i in enumerate(chosen):
            m, row, source = messages[j], rows[j], sources[j]
            where = {"topic": m.topic, "partition": m.partition, "offset": m.offset, "window_id": ids[j]}
            if row >= 0:  # a window of a batched message: its row makes it unique
                where["row"] = row
            record: dict[str, Any] = {
                "schema": SCHEMA_VERSION,
                "id": f"{m.topic}-{m.partition}-{m.offset}" + (f"-{row}" if row >= 0 else ""),
                "source": source,
                "input": where,
                "event_time": event_times[j],
                "detection_time": detection_time,
                "anomaly": flags[j],
                "score": rounded[j],
                "threshold": applied[j],
                "ratio": ratios[j],
                "model": self.model,
            }
            if flags[j]:
                record["segments"] = segments[j]
            out.append(EncodedRecord(i, source, flags[j], orjson.dumps(record), m))
        return out

    def segments(self, shares: np.ndarray) -> list[list[dict[str, Any]] | None]:
        """The top segments of each window whose shares are given (one row each), as events list them."""
        return self._segments(shares, [True] * len(shares))

    def _segments(self, shares: np.ndarray, flags: list[bool]) -> list[list[dict[str, Any]] | None]:
        """The `top` segments carrying the largest share of each anomalous window's error, largest first; with
        several channels each names its channel."""
        out: list[list[dict[str, Any]] | None] = [None] * len(flags)
        if not len(shares):
            return out
        order = np.argsort(-shares, axis=1, kind="stable")[:, : self.top]
        values = np.round(np.take_along_axis(shares, order, axis=1).astype(np.float64), 4).tolist()
        rows = iter(zip(order.tolist(), values, strict=True))
        per_channel = len(self.bounds)
        named = len(self.channels) > 1  # single-channel events keep their original shape
        for j, flag in enumerate(flags):
            if flag:
                segs, vals = next(rows)
                out[j] = [({"channel": self.channels[s // per_channel]} if named else {})
                          | {"start": self.bounds[s % per_channel][0], "end": self.bounds[s % per_channel][1],
                             "share": v} for s, v in zip(segs, vals, strict=True)]
        return out
