from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from trainer.datasets import (
    DatasetError,
    detect_layout,
    fetch_cached,
    load_ecg5000,
    resolve_ecg_source,
    sha256_bytes_of,
)

RNG = np.random.default_rng(1)
VALUES = RNG.normal(size=(6, 140)).round(6)
CLASSES = np.array([1, 2, 1, 3, 1, 5])


def _write(path: Path, rows: list[list[str]], sep: str = ",") -> Path:
    text = "\n".join(sep.join(r) for r in rows) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def _rows(label_first: bool, labels: np.ndarray) -> list[list[str]]:
    rows = []
    for v, c in zip(VALUES, labels, strict=True):
        vals = [f"{x:.7e}" for x in v]
        rows.append([f"{c:.7e}", *vals] if label_first else [*vals, str(int(c))])
    return rows


def test_tf_layout(tmp_path: Path) -> None:
    ds = load_ecg5000(_write(tmp_path / "ecg.csv", _rows(False, (CLASSES == 1).astype(int))))
    assert ds.layout == "tf"
    assert ds.windows.shape == (6, 140)
    np.testing.assert_allclose(ds.windows, VALUES, rtol=1e-6)
    assert ds.is_normal.tolist() == (CLASSES == 1).tolist()


def test_ucr_archive_layout_class_first_whitespace(tmp_path: Path) -> None:
    ds = load_ecg5000(_write(tmp_path / "ECG5000_TRAIN.txt", _rows(True, CLASSES), sep="  "))
    assert ds.layout == "ucr-first"
    assert ds.classes.tolist() == CLASSES.tolist()
    np.testing.assert_allclose(ds.windows, VALUES, rtol=1e-6)


def test_ucr_tsv_gz_and_class_last(tmp_path: Path) -> None:
    tsv = load_ecg5000(_write(tmp_path / "ECG5000_TEST.tsv.gz", _rows(True, CLASSES), sep="\t"))
    last = load_ecg5000(_write(tmp_path / "ECG5000.csv.gz", _rows(False, CLASSES)))
    assert tsv.layout == "ucr-first" and last.layout == "ucr-last"
    np.testing.assert_array_equal(tsv.windows, last.windows)
    assert tsv.is_normal.tolist() == last.is_normal.tolist() == (CLASSES == 1).tolist()


def test_explicit_layout_overrides_detection(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.csv", _rows(False, CLASSES))
    ds = load_ecg5000(path, layout="ucr-last")
    assert ds.layout == "ucr-last"
    with pytest.raises(DatasetError, match=r"label .* is not one of"):
        load_ecg5000(path, layout="tf")


def test_detect_layout_refuses_ambiguous() -> None:
    with pytest.raises(DatasetError, match="cannot tell"):
        detect_layout(RNG.normal(size=(4, 141)))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda rows: rows[2].pop(), "line 3: wrong column count"),
        (lambda rows: rows[3].__setitem__(5, "abc"), "line 4, column 6: non-numeric value 'abc'"),
        (lambda rows: rows[1].__setitem__(0, "nan"), "line 2, column 1: NaN value"),
        (lambda rows: rows[4].__setitem__(7, "inf"), "line 5, column 8: infinite value"),
        (lambda rows: rows[0].__setitem__(140, "7"), "line 1: label 7"),
    ],
)
def test_malformed_rows_name_file_line_and_problem(tmp_path: Path, mutate, message: str) -> None:
    rows = _rows(False, CLASSES)
    mutate(rows)
    path = _write(tmp_path / "bad.csv", rows)
    with pytest.raises(DatasetError, match=message) as err:
        load_ecg5000(path)
    assert str(path) in str(err.value)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="file not found"):
        load_ecg5000(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DatasetError, match="empty"):
        load_ecg5000(tmp_path / "empty.csv")


def test_fetch_cached_downloads_verifies_and_reuses(tmp_path: Path) -> None:
    src = _write(tmp_path / "ecg.csv", _rows(False, (CLASSES == 1).astype(int)))
    digest = sha256_bytes_of(src)
    cache = tmp_path / "cache"
    first = fetch_cached(src.as_uri(), digest, cache)
    assert first.read_bytes() == src.read_bytes()
    src.write_text("changed upstream\n")  # a second call must not download again
    assert fetch_cached(src.as_uri(), digest, cache).read_bytes() == first.read_bytes()


def test_fetch_cached_rejects_checksum_mismatch_and_keeps_nothing(tmp_path: Path) -> None:
    src = tmp_path / "ecg.csv"
    src.write_text("1,2,3\n")
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match="sha256 mismatch"):
        fetch_cached(src.as_uri(), "0" * 64, cache)
    assert list(cache.iterdir()) == []


def test_fetch_cached_replaces_a_corrupt_cached_copy(tmp_path: Path) -> None:
    src = tmp_path / "ecg.csv"
    src.write_text("good\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "ecg.csv").write_text("corrupt\n")
    got = fetch_cached(src.as_uri(), sha256_bytes_of(src), cache)
    assert got.read_text() == "good\n"


def test_resolve_source_prefers_argument_then_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TSAD_ECG5000", str(tmp_path / "env.csv"))
    assert resolve_ecg_source(str(tmp_path / "arg.csv")) == tmp_path / "arg.csv"
    assert resolve_ecg_source(None) == tmp_path / "env.csv"
