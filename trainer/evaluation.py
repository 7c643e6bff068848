"""Evaluation metrics for a scored, labelled split, from both points of view.

The reference tutorial reports precision/recall for the *normal* class (prediction = score below threshold,
label 1 = normal); operators care about the *anomaly* class. Both are reported, plus threshold-free ROC-AUC and
PR-AUC (anomaly = positive, higher score = more anomalous).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from detector.model.threshold import Threshold


def _class_view(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="binary", zero_division=0)
    return {"precision": float(p), "recall": float(r), "f1": float(f)}


def decide(scores: np.ndarray, threshold: Threshold, sources: np.ndarray | None = None) -> np.ndarray:
    """Verdicts as the worker makes them: per-source thresholds where the bundle has them, else the global one."""
    if sources is None or not threshold.per_source:
        return threshold.is_anomaly(scores)
    return np.asarray(scores) > threshold.for_sources(sources.tolist())


def evaluate_scores(scores: np.ndarray, is_normal: np.ndarray, threshold: Threshold,
                    sources: np.ndarray | None = None) -> dict[str, Any]:
    is_anomaly = ~np.asarray(is_normal, dtype=bool)
    predicted_anomaly = decide(scores, threshold, sources)
    tn, fp, fn, tp = confusion_matrix(is_anomaly, predicted_anomaly, labels=[False, True]).ravel()
    both_classes = 0 < is_anomaly.sum() < is_anomaly.size
    return {
        "n": int(is_anomaly.size),
        "n_anomalous": int(is_anomaly.sum()),
        "threshold": threshold.value,
        "accuracy": float(accuracy_score(is_anomaly, predicted_anomaly)),
        "normal_class": _class_view(~is_anomaly, ~predicted_anomaly),
        "anomaly_class": _class_view(is_anomaly, predicted_anomaly),
        "roc_auc": float(roc_auc_score(is_anomaly, scores)) if both_classes else None,
        "pr_auc": float(average_precision_score(is_anomaly, scores)) if both_classes else None,
        "confusion": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }
