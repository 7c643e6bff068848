"""Evaluate a saved bundle on a dataset (through the detector's own scorer) and build report data."""

from __future__ import annotations

from typing import Any

import numpy as np

from detector.model.bundle import ModelBundle
from detector.model.scoring import Scorer
from trainer.datasets import WindowDataset
from trainer.evaluation import decide, evaluate_scores
from trainer.pipeline import TrainResult, make_split, point_metrics_on_test, split_gap
from trainer.presets import TrainConfig
from trainer.report import ReportData


class EvaluationError(ValueError):
    pass


def _examples(scorer: Scorer, windows: np.ndarray, scores: np.ndarray, is_normal: np.ndarray,
              channels: tuple[str, ...]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """A typical normal window and the most and least obvious detected anomalies, in scaled units, as
    [channels, window] arrays."""
    picks: list[tuple[str, int]] = []
    normal, anomalous = np.flatnonzero(is_normal), np.flatnonzero(~is_normal)
    if not anomalous.size and normal.size:  # unlabelled: the typical window and the one the model fits worst
        picks = [("median score", int(normal[np.argsort(scores[normal])[normal.size // 2]])),
                 ("highest score", int(normal[np.argmax(scores[normal])]))]
    elif normal.size:
        picks.append(("normal (median score)", int(normal[np.argsort(scores[normal])[normal.size // 2]])))
    if anomalous.size:
        picks.append(("anomalous (highest score)", int(anomalous[np.argmax(scores[anomalous])])))
        picks.append(("anomalous (lowest score)", int(anomalous[np.argmin(scores[anomalous])])))
    out = []
    for caption, i in picks:
        x = scorer.scale(windows[i : i + 1])
        recon = scorer.reconstruct(windows[i : i + 1])
        out.append((f"{caption}: score {scores[i]:.4f}", x[0].reshape(len(channels), -1),
                    recon[0].reshape(len(channels), -1)))
    return out


def split_rows(bundle: ModelBundle, dataset: WindowDataset, which: str) -> tuple[np.ndarray, np.ndarray]:
    """(evaluation rows, training rows) in `dataset`: the bundle's own held-out split for 'test', else all rows."""
    if which == "all":
        rows = np.arange(len(dataset))
        return rows, rows
    if which != "test":
        raise EvaluationError(f"unknown split {which!r}; choose 'test' or 'all'")
    config_dict = bundle.training.get("config")
    if not config_dict:
        raise EvaluationError("the bundle records no training split; evaluate with --split all")
    split = make_split(len(dataset), TrainConfig(**config_dict), int(bundle.training.get("seed", 0)),
                       split_gap(dataset), dataset.sources if dataset.ordered else None)
    return split.test, split.fit


def evaluate_bundle(bundle: ModelBundle, dataset: WindowDataset, which: str = "test") -> ReportData:
    if dataset.window != bundle.window:
        raise EvaluationError(f"{dataset.source}: windows of {dataset.window} samples, bundle expects "
                              f"{bundle.window}")
    if dataset.channels != bundle.channels:
        raise EvaluationError(f"{dataset.source}: channels {list(dataset.channels)}, the bundle expects "
                              f"{list(bundle.channels)} (in that order; choose them with --channels)")
    scorer = bundle.scorer()
    rows, train_rows = split_rows(bundle, dataset, which)
    labelled = dataset.is_normal is not None
    all_normal = np.ones(len(dataset), dtype=bool)  # unlabelled data: scores and plots, no label metrics
    known = dataset.is_normal if dataset.is_normal is not None else all_normal
    windows, is_normal = dataset.windows[rows], known[rows]
    scores = scorer.score(windows).scores
    train_normal = train_rows[known[train_rows]]
    sources = None if dataset.sources is None else dataset.sources[rows]
    if labelled:
        metrics = evaluate_scores(scores, is_normal, bundle.threshold, sources)
    else:
        metrics = {"n": len(scores), "n_flagged": int(decide(scores, bundle.threshold, sources).sum()),
                   "threshold": bundle.threshold.value}
    if which == "test" and dataset.point_labels is not None and dataset.stride is not None:
        metrics["points"] = point_metrics_on_test(dataset, rows, bundle.threshold.is_anomaly(scores))
    history = bundle.training.get("history", {})
    details: dict[str, Any] = {
        "bundle": f"{bundle.name} {bundle.version}",
        "architecture": bundle.architecture,
        "scaler": bundle.scaler.kind,
        "threshold parameters": bundle.threshold.params,
        "data": f"{dataset.source} (sha256 {dataset.sha256[:16]}…), split {which}",
    }
    trained_on = bundle.training.get("data", {}).get("sha256")
    if trained_on and trained_on != dataset.sha256:
        details["warning"] = "this data differs from the training data (sha256); the split is not the same"
    return ReportData(
        title=f"tsad evaluation: {bundle.name}",
        metrics=metrics,
        threshold=bundle.threshold.value,
        threshold_method=bundle.threshold.method,
        train_loss=list(history.get("train_loss", [])),
        val_loss=list(history.get("val_loss", [])),
        fit_normal_scores=scorer.score(dataset.windows[train_normal]).scores,
        test_scores=scores,
        test_is_normal=is_normal,
        examples=_examples(scorer, windows, scores, is_normal, bundle.channels),
        channels=bundle.channels,
        details=details,
    )


def report_for_training(result: TrainResult) -> ReportData:
    """Report data for a fresh training run, scored through the bundle exactly as the detector will."""
    data = evaluate_bundle(result.bundle, result.dataset, "test")
    data.title = f"tsad training report: {result.bundle.name} (preset {result.bundle.training.get('preset')})"
    return data
