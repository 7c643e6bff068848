"""Labelled window datasets: ECG5000 in its public layouts, fetched or local, with a fingerprint of the bytes.

Two public layouts of ECG5000 exist:

- the TensorFlow tutorial's `ecg.csv`: 140 values then a 0/1 label (1 = normal), comma separated;
- the UCR archive: class 1..5 (1 = normal), first column in the archive's own `.txt`/`.tsv` files; some copies
  (the project's reference copy among them) put the class last. `.gz` files are read transparently.

`load_ecg5000` detects the layout (or takes it explicitly) and returns a `WindowDataset`.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

TF_ECG_URL = "http://storage.googleapis.com/download.tensorflow.org/data/ecg.csv"
TF_ECG_SHA256 = "72ce7b040ca0c6ed36c3368e570c6ac4ddf20100476e47373c63b2395e012df1"
ECG_ENV = "TSAD_ECG5000"
LAYOUTS = ("auto", "tf", "ucr-first", "ucr-last")
# The TF file is the first 4998 rows of the 5000-row UCR TRAIN+TEST concatenation (see docs/data.md).
TF_ROWS = 4998


class DatasetError(ValueError):
    """Input data that cannot be used; the message names the file, the row and the problem."""


@dataclass(frozen=True)
class WindowDataset:
    """Fixed-length windows with optional labels.

    A window is C channels × L samples, one row of C·L values, channel-major (`channels` names them; one channel
    `value` for ECG5000 and single-column series). `is_normal[i]` is True for a normal window (None when the data
    carries no labels); `classes` keeps the original class codes where the source has more than two. Windows cut
    from one series in time order carry their `stride`, and, when known, the series' point labels and timestamps
    (for point verdicts); such a dataset is `ordered` and is split by time, not at random.
    """

    windows: np.ndarray
    is_normal: np.ndarray | None
    source: str
    sha256: str
    classes: np.ndarray | None = None
    layout: str = ""
    channels: tuple[str, ...] = ("value",)
    stride: int | None = None
    point_labels: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    sources: np.ndarray | None = None  # per window, where the data names them (for per-source calibration)

    @property
    def window(self) -> int:
        """Samples per channel."""
        return int(self.windows.shape[1]) // len(self.channels)

    @property
    def ordered(self) -> bool:
        return self.stride is not None

    def __len__(self) -> int:
        return int(self.windows.shape[0])

    def head(self, n: int) -> WindowDataset:
        return replace(self, windows=self.windows[:n], is_normal=None if self.is_normal is None else self.is_normal[:n],
                       classes=None if self.classes is None else self.classes[:n],
                       sources=None if self.sources is None else self.sources[:n])

    def tf_reference_rows(self) -> WindowDataset:
        """The rows the reference split is defined on: a 5000-row UCR ECG5000 is cut to the TF file's 4998."""
        if self.layout.startswith("ucr") and len(self) == TF_ROWS + 2:
            return self.head(TF_ROWS)
        return self


def sha256_bytes_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _open_text(path: Path) -> TextIO:
    return gzip.open(path, "rt") if path.suffix == ".gz" else path.open("r")


def _separator(path: Path) -> str:
    try:
        with _open_text(path) as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read as text: {exc}") from exc
    if not first.strip():
        raise DatasetError(f"{path}: line 1: file is empty")
    if "," in first:
        return ","
    if "\t" in first:
        return "\t"
    return r"\s+"


def check_column_counts(path: Path, sep: str, expected: int | None = None) -> None:
    """Every line has the same number of fields (the first line's, or `expected`); pandas pads short rows."""
    with _open_text(path) as f:
        lines = csv.reader(f, delimiter=sep) if sep != r"\s+" else (line.split() for line in f)
        for line_no, fields in enumerate(lines, start=1):
            if not fields:
                continue
            if expected is None:
                expected = len(fields)
            elif len(fields) != expected:
                raise DatasetError(f"{path}: line {line_no}: wrong column count (expected {expected}, "
                                   f"found {len(fields)})")


def read_numeric_table(path: Path) -> np.ndarray:
    """Read a headerless numeric table; any ragged, non-numeric or non-finite cell is a `DatasetError`."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    sep = _separator(path)
    check_column_counts(path, sep)
    try:
        frame = pd.read_csv(path, header=None, sep=sep, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc
    return to_finite_matrix(frame, path, first_line=1)


def to_finite_matrix(frame: pd.DataFrame, path: Path, first_line: int, names: list[str] | None = None
                     ) -> np.ndarray:
    """Every cell as a finite float; else a DatasetError naming line, column (1-based, and its name if given)."""
    numeric = frame.apply(pd.to_numeric, errors="coerce")
    bad = numeric.isna().to_numpy()
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raw = frame.iat[row, col]
        problem = "missing value (too few columns?)" if raw is None or raw == "" else f"non-numeric value {raw!r}"
        if isinstance(raw, str) and raw.strip().lower() in ("nan", "-nan", "+nan"):
            problem = "NaN value"
        raise DatasetError(f"{path}: line {row + first_line}, column {col + 1}: {problem}{_named(names, col)}")
    values = numeric.to_numpy(dtype=np.float64)
    nonfinite = ~np.isfinite(values)
    if nonfinite.any():
        row, col = np.argwhere(nonfinite)[0]
        raise DatasetError(f"{path}: line {row + first_line}, column {col + 1}: infinite value{_named(names, col)}")
    return values


def _named(names: list[str] | None, col: int) -> str:
    return f" in {names[col]!r}" if names else ""


def _is_integer_codes(column: np.ndarray, allowed: set[int]) -> bool:
    return _is_integral(column) and set(np.unique(column).astype(int)) <= allowed


def _is_integral(column: np.ndarray) -> bool:
    return bool(np.all(column == np.round(column)))


def detect_layout(table: np.ndarray) -> str:
    """An integer-valued last column is the label (0/1: TF, else UCR classes); else an integer first column."""
    last, first = table[:, -1], table[:, 0]
    if _is_integer_codes(last, {0, 1}):
        return "tf"
    if _is_integral(last):
        return "ucr-last"
    if _is_integral(first):
        return "ucr-first"
    raise DatasetError("cannot tell which column holds the label; pass the layout explicitly")


def load_ecg5000(path: str | os.PathLike[str], layout: str = "auto") -> WindowDataset:
    """Load ECG5000 (or any dataset in the same layouts) from a local file."""
    p = Path(path)
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r}; choose from {list(LAYOUTS)}")
    table = read_numeric_table(p)
    if table.shape[1] < 9:
        raise DatasetError(f"{p}: line 1: {table.shape[1]} columns, need a label plus at least 8 values")
    if layout == "auto":
        try:
            layout = detect_layout(table)
        except DatasetError as exc:
            raise DatasetError(f"{p}: {exc}") from None
    if layout == "ucr-first":
        labels, values = table[:, 0], table[:, 1:]
    else:
        labels, values = table[:, -1], table[:, :-1]
    allowed = {0, 1} if layout == "tf" else {1, 2, 3, 4, 5}
    if not _is_integer_codes(labels, allowed):
        bad = int(np.argmax(~np.isin(labels, list(allowed))))
        raise DatasetError(f"{p}: line {bad + 1}: label {labels[bad]:g} is not one of {sorted(allowed)} "
                           f"for layout {layout}")
    codes = labels.astype(np.int64)
    return WindowDataset(
        windows=values.astype(np.float32),
        is_normal=codes == 1,
        source=str(p),
        sha256=sha256_bytes_of(p),
        classes=codes,
        layout=layout,
    )


def default_cache_dir() -> Path:
    return Path(os.environ.get("TSAD_CACHE_DIR", Path.home() / ".cache" / "tsad"))


def fetch_cached(url: str, sha256: str | None, cache_dir: Path | None = None, name: str | None = None) -> Path:
    """Download `url` once into the cache; verify its sha256 on download and on every reuse."""
    cache = cache_dir or default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / (name or Path(urllib.parse.urlparse(url).path).name or "download")
    if target.is_file():
        if sha256 is None or sha256_bytes_of(target) == sha256:
            return target
        print(f"tsad: cached {target} fails its checksum; downloading again", file=sys.stderr)
        target.unlink()
    print(f"tsad: downloading {url} -> {target}", file=sys.stderr)
    fd, tmp_name = tempfile.mkstemp(dir=cache, prefix=".download-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out)
        actual = sha256_bytes_of(tmp)
        if sha256 is not None and actual != sha256:
            raise DatasetError(f"{url}: sha256 mismatch: expected {sha256}, downloaded {actual}")
        tmp.replace(target)
    except OSError as exc:
        raise DatasetError(f"{url}: download failed: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


def resolve_ecg_source(data: str | None, cache_dir: Path | None = None) -> Path:
    """A local path as given; a URL fetched into the cache; None → `$TSAD_ECG5000`, else the TF download."""
    if data is None:
        data = os.environ.get(ECG_ENV) or TF_ECG_URL
    if data.startswith(("http://", "https://", "file://")):
        return fetch_cached(data, TF_ECG_SHA256 if data == TF_ECG_URL else None, cache_dir)
    return Path(data)
