"""Point verdicts from window verdicts, for point-labelled series, and the point-level metrics.

The mapping is causal, as a streaming detector sees it: a point is judged only from windows that end at or before
it. Point t takes the verdict of the latest window that ends at or before t (with stride 1, the window ending at t
itself); points before the first window ends have no verdict and count as normal.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def point_verdicts(ends: np.ndarray, anomalous: np.ndarray, length: int) -> np.ndarray:
    """[length] bools: each point's verdict from the windows ending at `ends` (ascending) with `anomalous` flags."""
    latest = np.searchsorted(np.asarray(ends), np.arange(length), side="right") - 1
    out = np.zeros(length, dtype=bool)
    seen = latest >= 0
    out[seen] = np.asarray(anomalous, dtype=bool)[latest[seen]]
    return out


def point_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """F1, precision and recall of the anomaly class, FAR (false alarms / normal points, %) and MAR (missed
    anomalies / anomalous points, %), as the SKAB benchmark reports them."""
    y, p = np.asarray(truth, dtype=bool), np.asarray(predicted, dtype=bool)
    tp, fp, fn = int((y & p).sum()), int((~y & p).sum()), int((y & ~p).sum())
    normal, anomalous = int((~y).sum()), int(y.sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / anomalous if anomalous else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"n": int(y.size), "n_anomalous": anomalous, "f1": f1, "precision": precision, "recall": recall,
            "far": 100.0 * fp / normal if normal else 0.0, "mar": 100.0 * fn / anomalous if anomalous else 0.0,
            "tp": tp, "fp": fp, "fn": fn}
