from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainer.datasets import DatasetError
from trainer.telemetry import SeriesOptions, cut_windows, load_series, load_series_windows, read_series, window_ends


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
        ("reading,other\n1,2\n", "line 1: expected columns <time>,<channel>.*no time column"),
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


def _pump_csv(path: Path, n: int = 300, sep: str = ";") -> Path:
    """A SKAB-shaped file: datetime, three sensors (one constant), point label, change points."""
    times = pd.date_range("2020-03-09 10:00:00", periods=n, freq="s").strftime("%Y-%m-%d %H:%M:%S")
    rows = [sep.join(["datetime", "Current", "Pressure", "Voltage", "anomaly", "changepoint"])]
    for i, t in enumerate(times):
        rows.append(sep.join([t, f"{1 + 0.1 * np.sin(i / 3):.5f}", f"{0.2 * np.cos(i / 5):.5f}", "230",
                              str(int(i >= 250)), str(int(i == 250))]))
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_multichannel_file_loads_as_it_is(tmp_path: Path) -> None:
    series = read_series(_pump_csv(tmp_path / "pump.csv"))
    assert series.channels == ("Current", "Pressure", "Voltage")  # the label and change-point columns are not
    assert series.values.shape == (300, 3) and series.labels is not None and series.labels.sum() == 50
    assert series.timestamps[1] - series.timestamps[0] == pytest.approx(1.0)


def test_windows_are_channel_major_rows(tmp_path: Path) -> None:
    ds = load_series_windows(_pump_csv(tmp_path / "pump.csv"), window=20, stride=5)
    assert ds.channels == ("Current", "Pressure", "Voltage") and ds.window == 20 and ds.ordered
    assert ds.windows.shape == ((300 - 20) // 5 + 1, 3 * 20)
    series = read_series(tmp_path / "pump.csv")
    np.testing.assert_allclose(ds.windows[2].reshape(3, 20), series.values[10:30].T, rtol=1e-6)
    assert ds.is_normal is not None and not ds.is_normal[-1] and ds.is_normal[0]
    ends = window_ends(300, 20, 5)
    assert len(ends) == len(ds) and ends[0] == 19 and ends[-1] == 299


def test_options_choose_columns_and_order(tmp_path: Path) -> None:
    path = _pump_csv(tmp_path / "pump.csv", sep=",")
    series = read_series(path, SeriesOptions(sep=",", channels=("Voltage", "Current"), label_column="none"))
    assert series.channels == ("Voltage", "Current") and series.labels is None
    assert series.values[0, 0] == 230.0


@pytest.mark.parametrize(
    ("body", "options", "message"),
    [
        ("datetime;a;b\n2020-01-01 00:00:00;1;2\n", SeriesOptions(channels=("a", "flow")),
         "line 1: channel 'flow' not in the header"),
        ("datetime;a;b\n2020-01-01 00:00:00;1;2\n2020-01-01 00:00:01;1;x\n", SeriesOptions(),
         "line 3, column 2: non-numeric value 'x' in 'b'"),
        ("datetime;a;b\n2020-01-01 00:00:00;1;2\n2020-01-01 00:00:01;1\n", SeriesOptions(),
         "line 3: wrong column count"),
        ("datetime;a;b\n2020-01-01 00:00:00;1;2\n", SeriesOptions(time_column="when"), "no time column 'when'"),
        ("datetime;a;b\n2020-01-01 00:00:00;1;2\n", SeriesOptions(label_column="status"), "no label column"),
    ],
)
def test_malformed_multichannel_series(tmp_path: Path, body: str, options: SeriesOptions, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(DatasetError, match=message) as err:
        read_series(path, options)
    assert str(path) in str(err.value)


def test_the_shared_skab_files_load_as_they_are(skab_dir: Path) -> None:
    ds = load_series_windows(skab_dir / "valve1" / "0.csv", window=60, stride=1)
    assert len(ds.channels) == 8 and ds.channels[0] == "Accelerometer1RMS" and ds.channels[-1] == "Volume Flow RateRMS"
    assert ds.point_labels is not None and 0 < ds.point_labels.sum() < len(ds.point_labels)
