"""Stream files: JSON Lines (one window message a line) and `.f32` (concatenated f32 window payloads).

A `.f32` file has no metadata of its own; where `<name>.jsonl` sits beside `<name>.f32`, ids, sources, times
and labels are taken from it (the committed samples are written that way).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from detector.wire.invalid import F32
from detector.wire.windows import encode_f32
from sample_streams.generator import WindowRecord


def write_jsonl(records: Iterable[WindowRecord], path: Path) -> int:
    n = 0
    with path.open("w") as f:
        for r in records:
            f.write(json.dumps(r.to_dict(), separators=(",", ":")) + "\n")
            n += 1
    return n


def write_f32(records: Iterable[WindowRecord], path: Path) -> int:
    n = 0
    with path.open("wb") as f:
        for r in records:
            f.write(encode_f32(r.values))
            n += 1
    return n


def read_jsonl(path: Path) -> Iterator[WindowRecord]:
    with path.open() as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                yield WindowRecord(id=str(d.get("id", f"{path.stem}-{line_no}")), source=str(d.get("source", "")),
                                   ts=float(d.get("ts", 0.0)), values=list(d["values"]),
                                   label=int(d.get("label", 0)), anomaly=d.get("anomaly"))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}: line {line_no}: not a window record ({exc!r})") from None


def read_f32(path: Path, window: int = 140) -> Iterator[WindowRecord]:
    data = np.fromfile(path, dtype=F32)
    if data.size % window:
        raise ValueError(f"{path}: {data.size} float32 values is not a whole number of {window}-sample windows")
    rows = data.reshape(-1, window)
    meta = path.with_suffix(".jsonl")
    records = list(read_jsonl(meta)) if meta.is_file() else []
    if records and len(records) != len(rows):
        raise ValueError(f"{meta}: {len(records)} records but {path} holds {len(rows)} windows")
    for i, values in enumerate(rows):
        if records:
            r = records[i]
            yield WindowRecord(r.id, r.source, r.ts, values.tolist(), r.label, r.anomaly)
        else:
            yield WindowRecord(f"{path.stem}-{i:06d}", path.stem, 0.0, values.tolist(), 0)


def read_stream(path: Path, window: int = 140) -> Iterator[WindowRecord]:
    return read_f32(path, window) if path.suffix == ".f32" else read_jsonl(path)
