"""Training presets: the reference recipe (`seed`), the better default, and the model variants.

A preset is a frozen `TrainConfig`; the CLI can override single fields (`--epochs`, `--threshold` …).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from detector.model.scoring import SCORE_KINDS
from detector.model.threshold import THRESHOLD_METHODS


@dataclass(frozen=True)
class TrainConfig:
    preset: str
    architecture: dict[str, Any]  # as for detector.model.build_model, without "window" (taken from the data)
    scaler: str = "global_minmax"
    loss: str = "mae"  # mae | mse
    score: str = "mean_abs_error"  # the anomaly score (detector.model.scoring.window_scores), kept in the bundle
    pca_variance: float | None = None  # linear models: fit PCA in closed form keeping this share of the variance
    epochs: int = 20
    batch_size: int = 512
    learning_rate: float = 1e-3
    weight_decay: float = 0.0  # L2 penalty through the optimiser
    noise_std: float = 0.0  # Gaussian input noise (scaled units) for denoising training
    validation_fraction: float = 0.0  # of the training split, for early stopping and calibration
    patience: int = 0  # epochs without validation improvement before stopping; 0 = train all epochs
    threshold: str = "mean_std"
    threshold_params: dict[str, Any] = field(default_factory=dict)
    per_source_thresholds: bool = False  # calibrate a threshold for each source with enough held-out windows
    per_source_min_windows: int = 30
    test_size: float = 0.2
    split_seed: int = 21  # the reference split: train_test_split(test_size=0.2, random_state=21)

    def __post_init__(self) -> None:
        if self.score not in SCORE_KINDS:
            raise ValueError(f"score must be one of {list(SCORE_KINDS)}, got {self.score!r}")
        if self.pca_variance is not None and (self.architecture.get("kind") != "linear"
                                              or not 0.0 < self.pca_variance <= 1.0):
            raise ValueError("pca_variance needs a linear architecture and a value in (0, 1]")
        if self.loss not in ("mae", "mse"):
            raise ValueError(f"loss must be mae or mse, got {self.loss!r}")
        if self.threshold not in THRESHOLD_METHODS:
            raise ValueError(f"threshold must be one of {list(THRESHOLD_METHODS)}, got {self.threshold!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be positive")
        if not 0.0 <= self.test_size < 1.0:
            raise ValueError(f"test_size must be in [0, 1), got {self.test_size}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.threshold in ("f1_optimal", "fpr_quantile", "pot", "max_factor") and self.validation_fraction == 0.0:
            raise ValueError(f"threshold {self.threshold!r} calibrates on a validation split: "
                             "set validation_fraction > 0")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SEED_DENSE = {"kind": "dense", "hidden": [32, 16, 8], "activation": "relu", "output_activation": "sigmoid"}

# The reference recipe, exactly: global min-max scaling fitted on the training split, Dense 140-32-16-8 / 8-16-32-140
# (ReLU, sigmoid out), MAE, Adam, 20 epochs, batch 512, threshold = mean + 1 std of the training MAE.
SEED = TrainConfig(preset="seed", architecture=_SEED_DENSE)

# The default: same model family, trained to convergence on smaller batches with early stopping on a held-out
# 20% of the training split, and the threshold set F1-optimally on that split (docs/accuracy.md has the numbers).
DEFAULT = TrainConfig(
    preset="default",
    architecture=_SEED_DENSE,
    epochs=200,
    batch_size=32,
    validation_fraction=0.2,
    patience=40,
    threshold="f1_optimal",
)

# Multi-channel telemetry cut into short overlapping windows, with little quiet data to learn from (the first
# minutes of a series): a linear autoencoder fitted as PCA (90% of the variance; low capacity: its score scale varies
# least between series) on per-channel standardised windows, scored by its recent offset (detector/model/scoring.py),
# threshold twice the largest score of the time-ordered
# held-out last quarter of the training part. Measured on SKAB in docs/skab.md (with what else was tried).
TELEMETRY = TrainConfig(
    preset="telemetry",
    architecture={"kind": "linear", "code": 16},  # the code size is chosen by pca_variance
    scaler="channel_standard",
    pca_variance=0.9,
    loss="mse",
    score="recent_offset",
    epochs=60,
    batch_size=32,
    validation_fraction=0.25,
    threshold="max_factor",
    threshold_params={"factor": 2.0},
)

PRESETS: dict[str, TrainConfig] = {
    "seed": SEED,
    "default": DEFAULT,
    "telemetry": TELEMETRY,
    "denoising": DEFAULT.replace(preset="denoising", noise_std=0.02),
    "deep": DEFAULT.replace(
        preset="deep",
        architecture={"kind": "dense", "hidden": [128, 64, 32, 16], "activation": "elu",
                      "output_activation": "sigmoid"},
        weight_decay=1e-5,
    ),
    # Per-position standardisation conditions the linear problem well: it then converges to PCA's subspace.
    "linear": DEFAULT.replace(preset="linear", architecture={"kind": "linear", "code": 8},
                              scaler="feature_standard", epochs=60, patience=15),
    "conv": DEFAULT.replace(
        preset="conv",
        architecture={"kind": "conv", "channels": [16, 32], "code": 16, "kernel": 7},
        epochs=60,
        patience=15,
    ),
}


def get_preset(name: str) -> TrainConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}") from None
