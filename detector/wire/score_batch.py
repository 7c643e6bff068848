"""Score records in bulk: one Arrow IPC record per input message (and micro-batch) holding the scores of all its
windows — `events.scores_format: arrow`, for batched input, so the producer is called once per message rather than
once per window. Columns: id, window_id, source, row, score, threshold, anomaly; the model's name and version are
schema metadata. Anomaly events stay one record per event (or per episode)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa


def encode_scores(ids: Sequence[str], window_ids: Sequence[str | None], sources: Sequence[str],
                  rows: Sequence[int], scores: np.ndarray, thresholds: np.ndarray, anomalous: np.ndarray,
                  model: Mapping[str, str]) -> bytes:
    table = pa.table({"id": pa.array(list(ids), pa.string()), "window_id": pa.array(list(window_ids), pa.string()),
                      "source": pa.array(list(sources), pa.string()), "row": pa.array(list(rows), pa.int32()),
                      "score": pa.array(np.asarray(scores, np.float32)),
                      "threshold": pa.array(np.asarray(thresholds, np.float32)),
                      "anomaly": pa.array(np.asarray(anomalous, bool))},
                     metadata={"tsad": "scores", "model_name": model["name"], "model_version": model["version"]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def decode_scores(payload: bytes) -> pa.Table:
    """For consumers and tests: the score rows of one record."""
    return pa.ipc.open_stream(payload).read_all()
