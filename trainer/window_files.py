"""Window files in the stream message format: JSON Lines, one `{"values": [...], "label"?: 0|1, ...}` a line.

`label` follows the telemetry convention (0 = normal, 1 = anomalous). This is how sample streams are trained on.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np

from trainer.datasets import DatasetError, WindowDataset, sha256_bytes_of


def load_window_file(path: str | os.PathLike[str]) -> WindowDataset:
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: file not found")
    opener = gzip.open if p.suffix == ".gz" else open
    rows: list[list[float]] = []
    labels: list[int] = []
    sources: list[str] = []
    labelled = False
    with opener(p, "rt") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                values = record["values"]
            except (json.JSONDecodeError, TypeError, KeyError) as exc:
                raise DatasetError(f"{p}: line {line_no}: not a window record ({exc!r})") from None
            if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
                raise DatasetError(f"{p}: line {line_no}: 'values' must be a list of numbers")
            if rows and len(values) != len(rows[0]):
                raise DatasetError(f"{p}: line {line_no}: {len(values)} values, earlier windows had {len(rows[0])}")
            if not np.all(np.isfinite(values)):
                raise DatasetError(f"{p}: line {line_no}: NaN or infinite value")
            rows.append(values)
            labelled = labelled or "label" in record
            labels.append(int(record.get("label", 0) or 0))
            sources.append(str(record.get("source") or ""))
    if not rows:
        raise DatasetError(f"{p}: no windows")
    return WindowDataset(np.asarray(rows, np.float32), np.asarray(labels) == 0 if labelled else None,
                         str(p), sha256_bytes_of(p), layout="jsonl",
                         sources=np.asarray(sources) if any(sources) else None)
