"""Where a replay's windows come from: a file, the generator, or the ECG5000 reference test split."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from sample_streams.files import read_stream
from sample_streams.generator import WindowRecord, generate


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


def open_source(file: str | None = None, generated: int | None = None, kind: str = "ecg", seed: int = 0,
                ecg_test: bool = False, data: str | None = None, window: int = 140) -> Iterator[WindowRecord]:
    chosen = sum(x is not None and x is not False for x in (file, generated, ecg_test or None))
    if chosen != 1:
        raise ValueError("choose exactly one source: a file, --generate N, or --ecg-test")
    if file:
        return read_stream(Path(file), window)
    if generated is not None:
        return generate(generated, kind=kind, seed=seed, window=window)
    return ecg5000_test_records(data)
