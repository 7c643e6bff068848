from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainer.datasets import DatasetError
from trainer.telemetry import cut_windows, load_series, load_series_windows


def _series_csv(path: Path, n: int = 400, labels: bool = True) -> Path:
    lines = ["timestamp,value,label" if labels else "timestamp,value"]
    for i in range(n):
        value = np.sin(i / 5)
        lines.append(f"{i},{value:.6f},{int(200 <= i < 210)}" if labels else f"{i},{value:.6f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_windows_and_labels(tmp_path: Path) -> None:
    ds = load_series_windows(_series_csv(tmp_path / "s.csv"), window=140, stride=70)
    assert ds.windows.shape == (4, 140)  # starts 0, 70, 140, 210 (210 + 140 = 350 <= 400)
    assert ds.is_normal.tolist() == [True, False, False, True]  # points 200..209 are anomalous
    np.testing.assert_allclose(ds.windows[1, 0], np.sin(70 / 5), atol=1e-6)


def test_unlabelled_series_and_default_stride(tmp_path: Path) -> None:
    ds = load_series_windows(_series_csv(tmp_path / "s.csv", labels=False), window=100)
    assert ds.windows.shape == (4, 100)
    assert ds.is_normal is None


def test_iso_timestamps_and_parquet(tmp_path: Path) -> None:
    times = pd.date_range("2026-01-01", periods=300, freq="s")
    frame = pd.DataFrame({"timestamp": times.astype(str), "value": np.arange(300.0), "label": 0})
    frame.to_parquet(tmp_path / "s.parquet")
    ts, values, labels = load_series(tmp_path / "s.parquet")
    assert ts[1] - ts[0] == pytest.approx(1.0)
    assert values[-1] == 299.0 and labels is not None and labels.sum() == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("timestamp,value\n1,2\n2,3,4\n", "wrong column count"),
        ("timestamp,value,label\n1,2,0\n2,3\n", "line 3: wrong column count \\(expected 3, found 2\\)"),
        ("timestamp,value\n1,2\n2,abc\n", "line 3, column 1: non-numeric value 'abc'"),
        ("timestamp,value\n1,2\n2,nan\n", "line 3, column 1: NaN value"),
        ("timestamp,value\n1,2\n2,-inf\n", "line 3, column 1: infinite value"),
        ("timestamp,value\n1,2\n0,3\n", "line 3: timestamp goes backwards"),
        ("timestamp,value\n1,2\nyesterday,3\n", "line 3: timestamp .yesterday. is not a number"),
        ("timestamp,value,label\n1,2,0\n2,3,7\n", "line 3: label 7 is not 0 or 1"),
        ("time,reading\n1,2\n", "line 1: expected header timestamp,value"),
        ("timestamp\n1\n", "line 1: expected columns"),
        ("", "file is empty"),
    ],
)
def test_malformed_series(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(DatasetError, match=message) as err:
        load_series(path)
    assert str(path) in str(err.value)


def test_too_short_series(tmp_path: Path) -> None:
    path = _series_csv(tmp_path / "short.csv", n=50)
    with pytest.raises(DatasetError, match=r"short.csv: series has 50 samples, fewer than one window of 140"):
        load_series_windows(path)


def test_cut_windows_rejects_bad_parameters() -> None:
    with pytest.raises(DatasetError, match="stride"):
        cut_windows(np.zeros(200), 140, 0)
    with pytest.raises(DatasetError, match="window length"):
        cut_windows(np.zeros(200), 4, 1)
