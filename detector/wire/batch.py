"""Batched window messages: one Kafka message carrying many windows, as an Apache Arrow IPC stream.

Columns: `values` (required), a fixed-size list of float32 of length channels × window (channel-major, like an f32
message), and optionally `id` (string), `source` (string), `ts` (float64, epoch seconds) and `label` (int8). The
whole values column becomes rows of the batch matrix with one copy, without a Python object per window. A message
that is not such a stream, or whose columns have other types or widths, is refused as a whole (reason `bad_batch`);
a row with a non-finite value is refused on its own (its window goes to the dead-letter topic as a one-row batch,
with the message's coordinates and the row), and the other rows are scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from detector.wire.invalid import InvalidWindow

MAGIC = b"\xff\xff\xff\xff"  # an Arrow IPC stream starts with the continuation marker


@dataclass
class DecodedRows:
    """The valid rows of one batched message, and the rows refused."""

    windows: np.ndarray  # [k, width] float32
    rows: list[int]  # row number of each valid window within the message
    ids: list[str | None]
    sources: list[str | None]
    ts: list[float | None]
    errors: list[tuple[int, InvalidWindow]]  # (row, why)


def encode_batch(values: np.ndarray, ids: Sequence[str | None] | None = None,
                 sources: Sequence[str | None] | None = None, ts: Sequence[float | None] | None = None) -> bytes:
    """A batched message of `values` [n, width] float32 windows (channel-major rows) with optional columns."""
    rows = np.ascontiguousarray(values, dtype=np.float32)
    columns: dict[str, pa.Array] = {}
    if ids is not None:
        columns["id"] = pa.array(list(ids), pa.string())
    if sources is not None:
        columns["source"] = pa.array(list(sources), pa.string())
    if ts is not None:
        columns["ts"] = pa.array(list(ts), pa.float64())
    columns["values"] = pa.FixedSizeListArray.from_arrays(pa.array(rows.ravel()), rows.shape[1])
    table = pa.table(columns)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def decode_batch(payload: bytes, width: int) -> DecodedRows:
    """The rows of a batched message; InvalidWindow('bad_batch') when the message as a whole cannot be used."""
    try:
        table = pa.ipc.open_stream(payload).read_all()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise InvalidWindow("bad_batch", f"not an Arrow IPC stream: {str(exc)[:200]}") from None
    if "values" not in table.column_names:
        raise InvalidWindow("bad_batch", f"no 'values' column (columns: {', '.join(table.column_names)})")
    values_type = table.schema.field("values").type
    if (not pa.types.is_fixed_size_list(values_type) or values_type.list_size != width
            or values_type.value_type != pa.float32()):
        raise InvalidWindow("bad_batch", f"'values' is {values_type}, expected fixed_size_list<float>[{width}]")
    column = table.column("values").combine_chunks()
    if column.null_count:
        raise InvalidWindow("bad_batch", f"{column.null_count} null window(s) in 'values'")
    windows = column.values.to_numpy(zero_copy_only=False).reshape(-1, width)
    ids = _strings(table, "id")
    sources = _strings(table, "source")
    ts = _floats(table, "ts")
    finite = np.isfinite(windows).all(axis=1)
    if finite.all():
        return DecodedRows(windows, list(range(len(windows))), ids, sources, ts, [])
    keep = np.flatnonzero(finite).tolist()
    errors = [(r, InvalidWindow("non_finite", f"row {r}: NaN or Inf at index {int(np.argmin(np.isfinite(row)))}"))
              for r, row in ((r, windows[r]) for r in np.flatnonzero(~finite).tolist())]
    return DecodedRows(windows[finite], keep, [ids[r] for r in keep], [sources[r] for r in keep],
                       [ts[r] for r in keep], errors)


def row_of(payload: bytes, row: int) -> bytes:
    """One row of a batched message, as a batched message of its own (what a refused row's dead letter carries)."""
    table = pa.ipc.open_stream(payload).read_all().slice(row, 1)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _strings(table: pa.Table, name: str) -> list[str | None]:
    if name not in table.column_names:
        return [None] * table.num_rows
    column = table.column(name)
    if not pa.types.is_string(column.type):
        raise InvalidWindow("bad_batch", f"'{name}' is {column.type}, expected string")
    return column.to_pylist()


def _floats(table: pa.Table, name: str) -> list[float | None]:
    if name not in table.column_names:
        return [None] * table.num_rows
    column = table.column(name)
    if not pa.types.is_floating(column.type) and not pa.types.is_integer(column.type):
        raise InvalidWindow("bad_batch", f"'{name}' is {column.type}, expected float64 seconds")
    out = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    missing = np.isnan(out)
    if not np.isfinite(out[~missing]).all():
        raise InvalidWindow("bad_batch", f"'{name}' holds an infinite time")
    times: list[float | None] = out.tolist()
    for i in np.flatnonzero(missing).tolist():  # nulls (and NaN) mean "no time"
        times[i] = None
    return times


def warm_up(width: int) -> None:
    """Encode and decode one tiny batched message: pyarrow initialises its IPC machinery on first use (~165 ms
    here), which would otherwise land on the first real message (the start-up tail in docs/performance.md, block
    'latency')."""
    rows = decode_batch(encode_batch(np.zeros((1, width), np.float32)), width)
    if rows.errors or rows.windows.shape != (1, width):
        raise RuntimeError(f"the batched-message warm-up did not round-trip: {rows.errors}")
