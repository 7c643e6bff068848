"""Generic telemetry: a CSV or Parquet series with a time column and one or more channel columns, cut into windows.

A window is C channels × L samples, stored as one row of C·L values, channel-major (what the model and the wire
format use). Defaults follow common telemetry files, so both `timestamp,value[,label]` and SKAB's
`datetime;<8 sensors>;anomaly;changepoint` load as they are:

- separator: sniffed from the header line among `,` `;` tab `|` (or given);
- time column: the first of `timestamp`, `datetime`, `time`, `date`, `ts` (case-insensitive), or given;
- label column: the first of `label`, `anomaly`, `is_anomaly` present (0 = normal, 1 = anomalous per point), or
  given, or `none`; a window is anomalous if any of its points is;
- channels: every column whose first value is a number, except the time column and label-like columns
  (`label`, `anomaly`, `is_anomaly`, `changepoint`), or given explicitly (in that order);
- source column (only when given): a long-format file holding several sources; each source's rows are cut into
  windows on their own (time order is checked per source), and the windows remember their source, so thresholds
  can be calibrated per source.

Every malformed input fails with a `DatasetError` naming the file, the line (CSV; row for Parquet) and the problem.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trainer.datasets import (
    DatasetError,
    WindowDataset,
    check_column_counts,
    fetch_cached,
    sha256_bytes_of,
    to_finite_matrix,
)

TIME_COLUMNS = ("timestamp", "datetime", "time", "date", "ts")
LABEL_COLUMNS = ("label", "anomaly", "is_anomaly")
LABEL_LIKE = (*LABEL_COLUMNS, "changepoint")
SEPARATORS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class SeriesOptions:
    sep: str | None = None
    time_column: str | None = None
    channels: tuple[str, ...] | None = None
    label_column: str | None = None  # "none": ignore labels
    source_column: str | None = None  # long format: one series per source


@dataclass(frozen=True)
class Series:
    timestamps: np.ndarray  # [T] float seconds
    values: np.ndarray  # [T, C] float64
    labels: np.ndarray | None  # [T] 0/1 per point
    channels: tuple[str, ...]
    sources: np.ndarray | None = None  # [T] source per row (long format), rows of one source in time order


def resolve_series_source(source: str | os.PathLike[str]) -> Path:
    """A local path as given; an http(s)/file URL downloaded once into the cache (no checksum is known)."""
    text = str(source)
    if text.startswith(("http://", "https://", "file://")):
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        return fetch_cached(text, None, name=f"series-{digest}-{Path(text).name}")
    return Path(text)


def _sniff(path: Path) -> str:
    with path.open(newline="") as f:
        header = f.readline()
    if not header.strip():
        raise DatasetError(f"{path}: line 1: file is empty")
    counts = {sep: len(next(csv.reader(io.StringIO(header), delimiter=sep))) for sep in SEPARATORS}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] > 1 else ","


def _read_frame(path: Path, sep: str | None) -> tuple[pd.DataFrame, int]:
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
        sep = sep or _sniff(path)
        check_column_counts(path, sep)
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{path}: line 1: file is empty") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc
    return frame, 2  # line 1 is the header


def _pick(frame: pd.DataFrame, given: str | None, defaults: tuple[str, ...], what: str, path: Path) -> str | None:
    by_lower = {str(c).strip().lower(): str(c) for c in frame.columns}
    if given is not None:
        if given.lower() == "none":
            return None
        if given in frame.columns:
            return given
        if given.lower() in by_lower:
            return by_lower[given.lower()]
        columns = ", ".join(map(str, frame.columns))
        raise DatasetError(f"{path}: line 1: no {what} column {given!r} (columns: {columns})")
    return next((by_lower[name] for name in defaults if name in by_lower), None)


def read_series(path: str | os.PathLike[str], options: SeriesOptions | None = None) -> Series:
    """The validated series: timestamps, channel values, point labels (or None), channel names."""
    p = Path(path)
    options = options or SeriesOptions()
    frame, first_line = _read_frame(p, options.sep)
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise DatasetError(f"{p}: no data rows")
    time_column = _pick(frame, options.time_column, TIME_COLUMNS, "time", p)
    if time_column is None:
        raise DatasetError(f"{p}: line 1: expected columns <time>,<channel>[,...]: no time column among "
                           f"{', '.join(frame.columns)} (name it with --time-column)")
    label_column = _pick(frame, options.label_column, LABEL_COLUMNS, "label", p)
    source_column = _pick(frame, options.source_column, (), "source", p) if options.source_column else None
    if options.channels:
        missing = [c for c in options.channels if c not in frame.columns]
        if missing:
            raise DatasetError(f"{p}: line 1: channel {missing[0]!r} not in the header "
                               f"(columns: {', '.join(frame.columns)})")
        channels = tuple(options.channels)
    else:
        skip = {time_column, label_column, source_column} | {c for c in frame.columns if c.lower() in LABEL_LIKE}
        channels = tuple(c for c in frame.columns if c not in skip and _numeric(frame[c].iloc[0]))
    if not channels:
        raise DatasetError(f"{p}: line 1: expected columns <time>,<channel>[,...]: no numeric channel column among "
                           f"{', '.join(frame.columns)}")
    sources = None if source_column is None else frame[source_column].astype(str).to_numpy()
    timestamps = _parse_timestamps(frame[time_column], p, first_line, sources)
    columns = [*channels, *([label_column] if label_column else [])]
    numeric = to_finite_matrix(frame[columns], p, first_line, names=columns)
    labels = None
    if label_column:
        labels = numeric[:, -1]
        bad = ~np.isin(labels, (0.0, 1.0))
        if bad.any():
            row = int(np.argmax(bad))
            raise DatasetError(f"{p}: line {row + first_line}: label {labels[row]:g} is not 0 or 1")
    return Series(timestamps, numeric[:, : len(channels)], labels, channels, sources)


def load_series(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(timestamps as float seconds, values, point labels or None) of a single-channel series."""
    series = read_series(path)
    values = series.values[:, 0] if len(series.channels) == 1 else series.values
    return series.timestamps, values, series.labels


def _numeric(cell: str) -> bool:
    try:
        float(cell)
    except (TypeError, ValueError):
        return False
    return True


def _parse_timestamps(column: pd.Series, path: Path, first_line: int, sources: np.ndarray | None = None
                      ) -> np.ndarray:
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
    if sources is not None:  # long format: time order within each source
        backwards &= sources[1:] == sources[:-1]
    if backwards.any():
        row = int(np.argmax(backwards)) + 1
        raise DatasetError(f"{path}: line {row + first_line}: timestamp goes backwards")
    return ts


def cut_windows(values: np.ndarray, window: int, stride: int) -> np.ndarray:
    """[n_windows, C·window] rows of consecutive windows starting every `stride` samples, channel-major.

    `values` is [T] (one channel) or [T, C]."""
    if window < 8:
        raise DatasetError(f"window length must be at least 8, got {window}")
    if stride < 1:
        raise DatasetError(f"stride must be positive, got {stride}")
    if len(values) < window:
        raise DatasetError(f"series has {len(values)} samples, fewer than one window of {window}")
    series = values.reshape(len(values), -1)  # [T, C]
    views = np.lib.stride_tricks.sliding_window_view(series, window, axis=0)[::stride]  # [n, C, window]
    return views.reshape(len(views), -1)


def window_ends(length: int, window: int, stride: int) -> np.ndarray:
    """Index of the last sample of each window `cut_windows` makes from a series of `length` samples."""
    return np.arange(window - 1, length, stride)[: (length - window) // stride + 1]


def series_windows(series: Series, window: int, stride: int | None = None, rows: slice = slice(None),
                   source: str = "series", sha256: str = "") -> WindowDataset:
    """The windows of a stretch of the series (`rows`, e.g. SKAB's first 400 rows for training), in time order;
    with a source column, each source's rows are windowed on their own and the windows keep their source."""
    stride = stride or window
    values, labels = series.values[rows], None if series.labels is None else series.labels[rows]
    if series.sources is not None:
        return _windows_by_source(series, window, stride, rows, source, sha256)
    windows = cut_windows(values, window, stride).astype(np.float32)
    is_normal = None if labels is None else cut_windows(labels, window, stride).max(axis=1) == 0
    return WindowDataset(np.ascontiguousarray(windows), is_normal, source, sha256,
                         layout=f"series(window={window},stride={stride})", channels=series.channels,
                         stride=stride, point_labels=labels, timestamps=series.timestamps[rows])


def _windows_by_source(series: Series, window: int, stride: int, rows: slice, source: str,
                       sha256: str) -> WindowDataset:
    assert series.sources is not None
    names, firsts = np.unique(series.sources[rows], return_index=True)
    parts, normal, owners = [], [], []
    for name in names[np.argsort(firsts)]:  # in order of first appearance
        mine = np.flatnonzero(series.sources[rows] == name)
        if len(mine) < window:
            continue  # too short for one window: nothing to learn from this source
        parts.append(cut_windows(series.values[rows][mine], window, stride))
        if series.labels is not None:
            normal.append(cut_windows(series.labels[rows][mine], window, stride).max(axis=1) == 0)
        owners += [name] * len(parts[-1])
    if not parts:
        raise DatasetError(f"no source has a whole window of {window} samples")
    return WindowDataset(np.ascontiguousarray(np.concatenate(parts).astype(np.float32)),
                         np.concatenate(normal) if normal else None, source, sha256,
                         layout=f"series(window={window},stride={stride},by_source)", channels=series.channels,
                         stride=stride, sources=np.asarray(owners))


def load_series_windows(path: str | os.PathLike[str], window: int = 140, stride: int | None = None,
                        options: SeriesOptions | None = None) -> WindowDataset:
    p = resolve_series_source(path)
    series = read_series(p, options or SeriesOptions())
    try:
        return series_windows(series, window, stride, source=str(path), sha256=sha256_bytes_of(p))
    except DatasetError as exc:
        raise DatasetError(f"{p}: {exc}") from None
