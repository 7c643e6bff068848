"""Output records: anomaly events and per-window score records (docs/events.md is the schema)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from detector.batching import InputRef
from detector.window_format import DecodedWindow

SCHEMA_VERSION = 1


def segment_bounds(window: int, segments: int) -> list[tuple[int, int]]:
    """`segments` contiguous [start, end) ranges covering the window, sizes differing by at most one."""
    edges = np.linspace(0, window, segments + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def segment_ids(window: int, segments: int) -> np.ndarray:
    """For each sample, the index of its segment (for an on-device index_add)."""
    ids = np.empty(window, dtype=np.int64)
    for i, (a, b) in enumerate(segment_bounds(window, segments)):
        ids[a:b] = i
    return ids


def top_segments(shares: np.ndarray, bounds: list[tuple[int, int]], top: int) -> list[dict[str, Any]]:
    """The `top` segments carrying the largest share of the window's error, largest first."""
    order = np.argsort(-shares, kind="stable")[:top]
    return [{"start": bounds[i][0], "end": bounds[i][1], "share": round(float(shares[i]), 4)} for i in order]


def iso_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def source_of(ref: InputRef, window: DecodedWindow) -> str:
    if window.source:
        return window.source
    if ref.key:
        return ref.key.decode("utf-8", errors="replace")
    return "unknown"


def build_record(
    *,
    ref: InputRef,
    window: DecodedWindow,
    window_id: str | None,
    score: float,
    threshold: float,
    anomalous: bool,
    model: dict[str, str],
    segments: list[dict[str, Any]] | None,
    detected_at: float,
) -> dict[str, Any]:
    event_time = window.ts if window.ts is not None else ref.timestamp_ms / 1000.0
    record: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "id": f"{ref.topic}-{ref.partition}-{ref.offset}",
        "source": source_of(ref, window),
        "input": {"topic": ref.topic, "partition": ref.partition, "offset": ref.offset, "window_id": window_id},
        "event_time": iso_time(event_time),
        "detection_time": iso_time(detected_at),
        "anomaly": anomalous,
        "score": round(score, 6),
        "threshold": round(threshold, 6),
        "ratio": round(score / threshold, 4) if threshold > 0 else None,
        "model": model,
    }
    if segments is not None:
        record["segments"] = segments
    return record


def encode_record(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)
