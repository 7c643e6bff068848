"""Score records in bulk: one Arrow IPC record per input message (and micro-batch) holding the scores of all its
windows — `events.scores_format: arrow`, for batched input, so the producer is called once per message rather than
once per window. Columns: id, window_id, source, row, score, threshold, anomaly; the model's name and version are
schema metadata. Anomaly events stay one record per event (or per episode)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa


def encode_scores(ids: Sequence[str] | pa.Array, window_ids: Sequence[str | None] | pa.Array,
                  sources: Sequence[str] | pa.Array, rows: Sequence[int] | pa.Array, scores: np.ndarray,
                  thresholds: np.ndarray, anomalous: np.ndarray, model: Mapping[str, str]) -> bytes:
    """One record's bytes; the id, window_id, source and row columns may be given as Arrow arrays already."""
    table = pa.table({"id": _array(ids, pa.string()), "window_id": _array(window_ids, pa.string()),
                      "source": _array(sources, pa.string()), "row": _array(rows, pa.int32()),
                      "score": pa.array(np.asarray(scores, np.float32)),
                      "threshold": pa.array(np.asarray(thresholds, np.float32)),
                      "anomaly": pa.array(np.asarray(anomalous, bool))},
                     metadata={"tsad": "scores", "model_name": model["name"], "model_version": model["version"]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _array(column: Sequence[Any] | pa.Array, kind: pa.DataType) -> pa.Array:
    return column if isinstance(column, pa.Array) else pa.array(list(column), kind)


def decode_scores(payload: bytes) -> pa.Table:
    """For consumers and tests: the score rows of one record."""
    return pa.ipc.open_stream(payload).read_all()
