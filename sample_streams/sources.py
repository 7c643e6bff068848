"""Where a replay's windows come from: a file, the generator, or the ECG5000 reference test split."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from sample_streams.files import read_stream
from sample_streams.generator import WindowRecord, generate
from trainer.telemetry import SeriesOptions, cut_windows, read_series, resolve_series_source, window_ends


def ecg5000_test_records(data: str | None = None) -> Iterator[WindowRecord]:
    """The ECG5000 reference test split (label 1 = anomalous here, the stream convention)."""
    from trainer.datasets import load_ecg5000, resolve_ecg_source
    from trainer.pipeline import make_split
    from trainer.presets import SEED

    ds = load_ecg5000(resolve_ecg_source(data)).tf_reference_rows()
    assert ds.is_normal is not None
    now = time.time()
    for i, row in enumerate(make_split(len(ds), SEED, 0).test):
        yield WindowRecord(id=f"ecg5000-{row}", source="ecg5000", ts=round(now + i, 3),
                           values=ds.windows[row].tolist(), label=int(not ds.is_normal[row]))


def series_records(path: str, window: int, stride: int = 1, options: SeriesOptions | None = None,
                   source: str | None = None) -> Iterator[WindowRecord]:
    """A telemetry series (e.g. a SKAB experiment) as the windows a live stream would carry: one per `stride`
    samples, each ending at its newest sample (its event time), labelled anomalous if any of its points is."""
    resolved = resolve_series_source(path)
    series = read_series(resolved, options or SeriesOptions())
    name = source or Path(path).stem
    rows = cut_windows(series.values, window, stride)
    labels = None if series.labels is None else cut_windows(series.labels, window, stride).max(axis=1)
    channels = series.channels if len(series.channels) > 1 else None
    for i, end in enumerate(window_ends(len(series.values), window, stride).tolist()):
        yield WindowRecord(id=f"{name}-{end:06d}", source=name, ts=float(series.timestamps[end]),
                           values=rows[i].tolist(), label=0 if labels is None else int(labels[i]),
                           channels=channels)


def open_source(file: str | None = None, generated: int | None = None, kind: str = "ecg", seed: int = 0,
                ecg_test: bool = False, data: str | None = None, window: int = 140,
                series: str | None = None, stride: int = 1,
                options: SeriesOptions | None = None) -> Iterator[WindowRecord]:
    chosen = sum(x is not None and x is not False for x in (file, generated, ecg_test or None, series))
    if chosen != 1:
        raise ValueError("choose exactly one source: a file, --generate N, --ecg-test or --series")
    if series:
        return series_records(series, window, stride, options)
    if file:
        return read_stream(Path(file), window)
    if generated is not None:
        return generate(generated, kind=kind, seed=seed, window=window)
    return ecg5000_test_records(data)
