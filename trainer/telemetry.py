"""Generic telemetry: a CSV or Parquet series (timestamp, value[, label]) cut into fixed-length windows.

Point labels, where present, are 0 = normal and 1 = anomalous; a window is anomalous if any of its points is.
Every malformed input fails with a `DatasetError` naming the file, the line (CSV; row for Parquet) and the problem.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from trainer.datasets import (
    DatasetError,
    WindowDataset,
    check_column_counts,
    sha256_bytes_of,
    to_finite_matrix,
)

COLUMNS = ("timestamp", "value", "label")


def _read_frame(path: Path) -> tuple[pd.DataFrame, int]:
    """The raw frame as strings and the file line (or row) number of its first data row."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path}: not a readable Parquet file: {exc}") from exc
        return frame.astype(str).replace({"None": "", "nan": "nan"}), 1
    try:
        check_column_counts(path, ",")
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{path}: line 1: file is empty") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc
    return frame, 2  # line 1 is the header


def load_series(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(timestamps as float seconds, values, point labels or None), validated."""
    p = Path(path)
    frame, first_line = _read_frame(p)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    if not 2 <= len(frame.columns) <= 3:
        raise DatasetError(f"{p}: line 1: expected columns timestamp,value[,label], found {list(frame.columns)}")
    expected = list(COLUMNS[: len(frame.columns)])
    if list(frame.columns) != expected:
        raise DatasetError(f"{p}: line 1: expected header {','.join(expected)}, found {','.join(frame.columns)}")
    if frame.empty:
        raise DatasetError(f"{p}: no data rows")
    timestamps = _parse_timestamps(frame["timestamp"], p, first_line)
    numeric = to_finite_matrix(frame.drop(columns=["timestamp"]), p, first_line)
    values = numeric[:, 0]
    labels = None
    if numeric.shape[1] == 2:
        labels = numeric[:, 1]
        bad = ~np.isin(labels, (0.0, 1.0))
        if bad.any():
            row = int(np.argmax(bad))
            raise DatasetError(f"{p}: line {row + first_line}: label {labels[row]:g} is not 0 or 1")
    return timestamps, values, labels


def _parse_timestamps(column: pd.Series, path: Path, first_line: int) -> np.ndarray:
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().all():
        ts = numeric.to_numpy(dtype=np.float64)
    elif numeric.notna().any():  # mostly numbers: the odd one out is the error
        row = int(np.argmax(numeric.isna().to_numpy()))
        raise DatasetError(f"{path}: line {row + first_line}: timestamp {column.iloc[row]!r} is not a number")
    else:
        parsed = pd.to_datetime(column, errors="coerce", utc=True, format="mixed")
        if parsed.isna().any():
            row = int(np.argmax(parsed.isna().to_numpy()))
            raise DatasetError(f"{path}: line {row + first_line}: timestamp {column.iloc[row]!r} is neither a "
                               "number nor an ISO-8601 time")
        ts = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    backwards = np.diff(ts) < 0
    if backwards.any():
        row = int(np.argmax(backwards)) + 1
        raise DatasetError(f"{path}: line {row + first_line}: timestamp goes backwards")
    return ts


def cut_windows(values: np.ndarray, window: int, stride: int) -> np.ndarray:
    """[n_windows, window] view of consecutive windows starting every `stride` samples."""
    if window < 8:
        raise DatasetError(f"window length must be at least 8, got {window}")
    if stride < 1:
        raise DatasetError(f"stride must be positive, got {stride}")
    if len(values) < window:
        raise DatasetError(f"series has {len(values)} samples, fewer than one window of {window}")
    return np.lib.stride_tricks.sliding_window_view(values, window)[::stride]


def load_series_windows(path: str | os.PathLike[str], window: int = 140, stride: int | None = None
                        ) -> WindowDataset:
    p = Path(path)
    _, values, labels = load_series(p)
    stride = stride or window
    try:
        windows = cut_windows(values, window, stride).astype(np.float32)
    except DatasetError as exc:
        raise DatasetError(f"{p}: {exc}") from None
    is_normal = None
    if labels is not None:
        is_normal = cut_windows(labels, window, stride).max(axis=1) == 0
    return WindowDataset(np.ascontiguousarray(windows), is_normal, str(p), sha256_bytes_of(p),
                         layout=f"series(window={window},stride={stride})")
