"""Train end to end: split → scale → fit on normal windows → calibrate → evaluate → bundle."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from detector.model.architectures import build_model
from detector.model.bundle import ModelBundle
from detector.model.scaler import Scaler
from detector.model.threshold import Threshold
from trainer import calibration
from trainer.datasets import WindowDataset
from trainer.evaluation import evaluate_scores
from trainer.points import point_metrics, point_verdicts
from trainer.presets import TrainConfig
from trainer.telemetry import window_ends
from trainer.training import (
    EpochCallback,
    History,
    fit,
    fit_pca,
    pca_components,
    seed_everything,
    window_scores_of,
)


@dataclass(frozen=True)
class Split:
    """Index arrays into the dataset rows used for training."""

    fit: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclass
class TrainResult:
    bundle: ModelBundle
    history: History
    split: Split
    dataset: WindowDataset
    scores: dict[str, np.ndarray]  # "fit_normal", "val", "test" scores, for reports
    metrics: dict[str, Any]


def split_gap(dataset: WindowDataset) -> int | None:
    """For windows cut from one series: how many windows to leave out between time-ordered parts, so that no
    window shares a sample with a window of the next part (one window length). None: split at random."""
    if not dataset.ordered or dataset.stride is None:
        return None
    return -(-dataset.window // dataset.stride)


def make_split(n: int, config: TrainConfig, seed: int, gap: int | None = None,
               groups: np.ndarray | None = None) -> Split:
    """The reference random split (ECG5000 and other independent windows); with `gap`, a split by time: train on
    the past, validate on what follows, test on the end, `gap` windows left out between the parts. Overlapping
    windows split at random would put near-copies of each test window into training, making the test figures
    optimistic and the calibrated threshold too low."""
    if gap is not None and groups is not None:
        return _grouped_time_split(groups, config, gap)
    if gap is not None:
        return _time_split(n, config, gap)
    idx = np.arange(n)
    if config.test_size > 0:
        train_idx, test_idx = train_test_split(idx, test_size=config.test_size, random_state=config.split_seed)
    else:  # all of it trains
        train_idx, test_idx = idx, np.array([], dtype=np.int64)
    if config.validation_fraction > 0:
        fit_idx, val_idx = train_test_split(train_idx, test_size=config.validation_fraction, random_state=seed)
    else:
        fit_idx, val_idx = train_idx, np.array([], dtype=np.int64)
    return Split(np.asarray(fit_idx), np.asarray(val_idx), np.asarray(test_idx))


def _time_split(n: int, config: TrainConfig, gap: int) -> Split:
    n_test = max(1, round(n * config.test_size)) if config.test_size > 0 else 0  # 0: all of it trains
    train_end = n - n_test - (gap if n_test else 0)
    n_val = max(1, round(train_end * config.validation_fraction)) if config.validation_fraction > 0 else 0
    fit_end = train_end - n_val - (gap if n_val else 0)
    if fit_end < 2:
        raise ValueError(f"{n} windows are too few for a time-ordered split with a gap of {gap} windows between "
                         "parts; use a longer series, a smaller window or a smaller stride")
    val = np.arange(train_end - n_val, train_end) if n_val else np.array([], dtype=np.int64)
    return Split(np.arange(fit_end), val, np.arange(n - n_test, n))  # test may be empty (test_size 0)


def _grouped_time_split(groups: np.ndarray, config: TrainConfig, gap: int) -> Split:
    """A time split within each source's block of windows; a source too short to split only trains."""
    fit, val, test = [], [], []
    for name in dict.fromkeys(groups.tolist()):
        rows = np.flatnonzero(groups == name)
        try:
            part = _time_split(len(rows), config, gap)
        except ValueError:
            fit.append(rows)
            continue
        fit.append(rows[part.fit])
        val.append(rows[part.val])
        test.append(rows[part.test])
    join = lambda parts: np.concatenate(parts) if parts else np.array([], dtype=np.int64)  # noqa: E731
    return Split(join(fit), join(val), join(test))


def calibrate(config: TrainConfig, fit_normal: np.ndarray, val: np.ndarray, val_normal: np.ndarray,
              labelled: bool) -> Threshold:
    """`val_normal` marks the validation windows known (or, without labels, assumed) to be normal."""
    params = dict(config.threshold_params)
    if config.threshold == "mean_std":
        return calibration.mean_std(fit_normal, **params)
    if config.threshold == "f1_optimal":
        if not labelled:
            raise ValueError("threshold 'f1_optimal' needs labelled data; use fpr_quantile or pot")
        return calibration.f1_optimal(val, ~val_normal)
    held_out_normal = val[val_normal]
    if not len(held_out_normal):
        raise ValueError(f"threshold {config.threshold!r}: the validation part holds no normal window ({len(val)} "
                         "held-out windows, all labelled anomalous); train on a stretch with normal data after the "
                         "fit part, or ignore the labels (--label-column none) to treat the data as normal")
    if config.threshold == "fpr_quantile":
        return calibration.fpr_quantile(held_out_normal, **params)
    if config.threshold == "max_factor":
        return calibration.max_factor(held_out_normal, **params)
    return calibration.pot(held_out_normal, **params)


def print_epoch(epoch: int, loss: float, val_loss: float | None) -> None:
    val = "" if val_loss is None else f"  val_loss {val_loss:.5f}"
    print(f"epoch {epoch:4d}  loss {loss:.5f}{val}", file=sys.stderr, flush=True)


def train(
    dataset: WindowDataset,
    config: TrainConfig,
    seed: int = 0,
    name: str = "tsad-model",
    on_epoch: EpochCallback | None = print_epoch,
) -> TrainResult:
    labels = dataset.is_normal if dataset.is_normal is not None else np.ones(len(dataset), dtype=bool)
    gap = split_gap(dataset)
    split = make_split(len(dataset), config, seed, gap, dataset.sources if dataset.ordered else None)
    x = dataset.windows
    channels = len(dataset.channels)
    # Fitted on every training window, normal or not, as the reference recipe does.
    scaler = Scaler.fit(config.scaler, x[split.fit], channels)
    fit_normal = scaler.transform(x[split.fit][labels[split.fit]], channels)
    val_all = scaler.transform(x[split.val], channels)
    val_normal_x = val_all[labels[split.val]]
    if len(fit_normal) == 0:
        raise ValueError(f"{dataset.source}: no normal windows in the training split")

    architecture = {**config.architecture, "window": dataset.window}
    if channels > 1:
        architecture["input_channels"] = channels
    if config.pca_variance is not None:
        architecture["code"] = pca_components(fit_normal, config.pca_variance)
    seed_everything(seed)  # before the weights are initialised
    model = build_model(architecture)
    if config.pca_variance is not None:
        history = fit_pca(model, fit_normal, config.pca_variance)
    else:
        history = fit(model, fit_normal, val_normal_x if len(val_normal_x) else None, config, seed, on_epoch)

    def score(rows: np.ndarray) -> np.ndarray:
        return window_scores_of(model, rows, config.score, channels, dataset.window)

    scores = {"fit_normal": score(fit_normal), "val": score(val_all) if len(val_all) else np.zeros(0),
              "test": score(scaler.transform(x[split.test], channels)) if len(split.test) else np.zeros(0)}
    threshold = calibrate(config, scores["fit_normal"], scores["val"], labels[split.val],
                          labelled=dataset.is_normal is not None)
    if config.per_source_thresholds:
        threshold = calibrate_per_source(config, threshold, dataset, split, labels, scores)

    metrics: dict[str, Any] = {"train_seconds": round(history.seconds, 2), "epochs_run": len(history.train_loss),
                               "best_epoch": history.best_epoch}
    # the detector's drift reference: where the held-out normal scores fall (else the fit ones), by decile
    reference = scores["val"][labels[split.val]] if len(split.val) else scores["fit_normal"]
    if len(reference) >= 10:
        metrics["score_reference"] = {"deciles": np.quantile(reference, np.arange(1, 10) / 10).tolist(),
                                      "n": len(reference)}
    if dataset.is_normal is not None and len(split.test):
        test_sources = None if dataset.sources is None else dataset.sources[split.test]
        metrics["test"] = evaluate_scores(scores["test"], labels[split.test], threshold, test_sources)
    if dataset.point_labels is not None and dataset.stride is not None and len(split.test):
        metrics["test_points"] = point_metrics_on_test(dataset, split.test, threshold.is_anomaly(scores["test"]))
    training = {
        "preset": config.preset,
        "config": config.to_dict(),
        "seed": seed,
        "data": {"source": dataset.source, "sha256": dataset.sha256, "layout": dataset.layout,
                 "channels": list(dataset.channels), "windows": len(dataset), "fit": len(split.fit),
                 "validation": len(split.val), "test": len(split.test),
                 "split": "random" if gap is None else f"time (gap {gap} windows)"},
        "history": {"train_loss": history.train_loss, "val_loss": history.val_loss},
    }
    bundle = ModelBundle.from_model(model, name=name, architecture=architecture, scaler=scaler,
                                    threshold=threshold, metrics=metrics, training=training,
                                    channels=dataset.channels, score=config.score)
    return TrainResult(bundle, history, split, dataset, scores, metrics)


def point_metrics_on_test(dataset: WindowDataset, test_rows: np.ndarray, anomalous: np.ndarray) -> dict[str, Any]:
    """Point-level metrics over the test part of a point-labelled series: each point judged causally from the test
    windows ending at or before it, from the first test window's end to the last one's."""
    assert dataset.point_labels is not None and dataset.stride is not None
    ends = window_ends(len(dataset.point_labels), dataset.window, dataset.stride)[test_rows]
    first, last = int(ends[0]), int(ends[-1])
    verdicts = point_verdicts(ends - first, anomalous, last - first + 1)
    return point_metrics(dataset.point_labels[first : last + 1] == 1, verdicts)


def calibrate_per_source(config: TrainConfig, threshold: Threshold, dataset: WindowDataset, split: Split,
                         labels: np.ndarray, scores: dict[str, np.ndarray]) -> Threshold:
    """The same method applied to each source's own held-out windows (its training windows for mean_std), where a
    source has at least `per_source_min_windows` of them; every other source keeps the global threshold."""
    if dataset.sources is None:
        raise ValueError(f"{dataset.source}: per-source thresholds need windows that name their source (a 'source' "
                         "field in window files, --source-column for series)")
    fit_normal_rows = split.fit[labels[split.fit]]
    per_source: dict[str, float] = {}
    for name in sorted(set(dataset.sources.tolist())):
        if config.threshold == "mean_std":
            own = scores["fit_normal"][dataset.sources[fit_normal_rows] == name]
            val_mask = np.zeros(0, dtype=bool)
        else:
            val_mask = dataset.sources[split.val] == name
            own = scores["val"][val_mask & labels[split.val]]
        if len(own) < config.per_source_min_windows:
            continue
        try:
            if config.threshold == "f1_optimal":
                value = calibration.f1_optimal(scores["val"][val_mask], ~labels[split.val][val_mask]).value
            else:
                value = calibrate(config, own, own, np.ones(len(own), dtype=bool), labelled=False).value
        except (calibration.CalibrationError, ValueError):
            continue  # e.g. no anomalous window of this source to place an F1 cut: the global threshold stays
        per_source[name] = value
    return replace(threshold, params={**threshold.params, "per_source_min_windows": config.per_source_min_windows},
                   per_source=per_source)
