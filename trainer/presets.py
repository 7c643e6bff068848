"""Training presets: named training files (trainer/train_file.py) — the reference recipes the product grew from,
the better default, and the model variants. `tsad presets` lists them, `tsad presets show NAME` prints one as YAML.

A preset is a frozen `TrainConfig`; the CLI can override single fields (`--epochs`, `--set loss=mse` …).
"""

from __future__ import annotations

from trainer.train_file import TrainConfig, TrainConfigError

__all__ = ["PRESETS", "PRESET_NOTES", "TrainConfig", "TrainConfigError", "get_preset"]

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

# The same data read for change points (episode opens as detections, docs/skab.md): the `level_change` score (the
# newest quarter's mean error against the rest of the window) reports a new level most while it enters the window
# and then largely re-anchors, so episodes open at each change; the linear model trained by SGD (PCA's closed form
# flickered more there) and a lower threshold (1.5 x the held-out maximum). A fault that holds a steady level may
# close its episode after the quiet period: for alerting on incidents, keep `telemetry`.
TELEMETRY_CHANGES = TELEMETRY.replace(preset="telemetry-changes", pca_variance=None, score="level_change",
                                      threshold_params={"factor": 1.5})

# The reference recipes the product grew from, as written (on 1-D or C-channel windows instead of images); they
# leave the threshold open, so they take the seed recipe's (mean + 1 std of the training error), train on the
# whole training split (no validation part, no early stopping) and scale as the seed does (global min-max to
# [0, 1], what their sigmoid outputs and image inputs assume). Optimiser: Adam (Keras' eps); batch 32 where a
# recipe names none (Keras' default). docs/accuracy.md has their own experiments, reproduced.

# TensorFlow's "Intro to Autoencoders" tutorial, first model (its third is `seed`): Dense(64, relu) to the code,
# Dense(window, sigmoid) back, MSE, 10 epochs.
BASIC = TrainConfig(
    preset="basic",
    architecture={"kind": "dense", "hidden": [64], "activation": "relu", "output_activation": "sigmoid"},
    loss="mse",
    epochs=10,
    batch_size=32,
)

# The same tutorial's denoiser: Conv(16) and Conv(8), kernel 3, stride 2, ReLU; ConvTranspose(8) and (16) back and
# a stride-1 Conv to the window's channels with a sigmoid; Glorot-uniform weights and zero biases (Keras' default);
# trained on inputs + 0.2·N(0, 1) against the clean inputs, MSE, 10 epochs. (The tutorial also clipped the noisy
# inputs to [0, 1]; here they are not clipped.)
CONV_DENOISING = TrainConfig(
    preset="conv-denoising",
    architecture={"kind": "conv", "channels": [16, 8], "code": None, "kernel": 3, "stride": 2, "activation": "relu",
                  "output_activation": "sigmoid", "output_conv": True, "init": "xavier_uniform"},
    loss="mse",
    noise_std=0.2,
    epochs=10,
    batch_size=32,
)

# "Train on one digit, flag the others" (MNIST): 512-256-128 ReLU and back, sigmoid out, MSE, Adam 1e-3, batch 64.
# The recipe gives no epoch count; 50 here.
DEEP_MLP = TrainConfig(
    preset="deep-mlp",
    architecture={"kind": "dense", "hidden": [512, 256, 128], "activation": "relu", "output_activation": "sigmoid"},
    loss="mse",
    learning_rate=1e-3,
    epochs=50,
    batch_size=64,
)

# The stacked autoencoder of Géron's "Hands-On Machine Learning" (1st ed., ch. 15): 300-150-300 ELU, linear
# output, L2 1e-4 (as TF's l2_regularizer: the gradient of 1e-4/2·|w|², here through Adam's weight decay, biases
# included), Adam 0.01, MSE, batch 150. As the product's recipe list has it: Xavier initialisation and 100 epochs
# (the book: He initialisation, 5 epochs of MNIST).
STACKED = TrainConfig(
    preset="stacked",
    architecture={"kind": "dense", "hidden": [300, 150], "activation": "elu", "output_activation": None,
                  "init": "xavier_uniform"},
    loss="mse",
    learning_rate=0.01,
    weight_decay=1e-4,
    epochs=100,
    batch_size=150,
)

PRESETS: dict[str, TrainConfig] = {
    "seed": SEED,
    "default": DEFAULT,
    "telemetry": TELEMETRY,
    "telemetry-changes": TELEMETRY_CHANGES,
    "denoising": DEFAULT.replace(preset="denoising", noise_std=0.02),
    "deep": DEFAULT.replace(
        preset="deep",
        architecture={"kind": "dense", "hidden": [128, 64, 32, 16], "activation": "elu",
                      "output_activation": "sigmoid"},
        weight_decay=1e-5,
    ),
    # Per-position standardisation conditions the linear problem well: it then converges to PCA's subspace.
    # Géron's linear autoencoder (ch. 15): MSE, the loss PCA minimises (bundles trained under the earlier MAE keep
    # it in their stored file; docs/accuracy.md compares both with PCA).
    "linear": DEFAULT.replace(preset="linear", architecture={"kind": "linear", "code": 8}, loss="mse",
                              scaler="feature_standard", epochs=60, patience=15),
    "conv": DEFAULT.replace(
        preset="conv",
        architecture={"kind": "conv", "channels": [16, 32], "code": 16, "kernel": 7},
        epochs=60,
        patience=15,
    ),
    "basic": BASIC,
    "conv-denoising": CONV_DENOISING,
    "deep-mlp": DEEP_MLP,
    "stacked": STACKED,
}

# One line per preset for `tsad presets` (and the header of `tsad presets show`).
PRESET_NOTES: dict[str, str] = {
    "seed": "the reference ECG recipe (TensorFlow 'Intro to Autoencoders', part 3): 32-16-8 ReLU, MAE, 20 epochs",
    "default": "the seed's model trained to convergence, early stopping, F1-optimal threshold (docs/accuracy.md)",
    "telemetry": "multi-channel telemetry with a short quiet start: PCA on standardised channels (docs/skab.md)",
    "telemetry-changes": "the telemetry recipe for change points: level-change score, episodes open at each change",
    "denoising": "the default trained on inputs with Gaussian noise of 0.02 (scaled units)",
    "deep": "the default with a deeper 128-64-32-16 ELU network and L2 1e-5",
    "linear": "linear encoder/decoder under MSE (≈ PCA, 8 components) on per-position standardised windows",
    "conv": "strided 1-D convolutions (16, 32 filters, kernel 7) with a 16-wide dense code",
    "basic": "TensorFlow 'Intro to Autoencoders', part 1: one dense layer to a 64-wide code, sigmoid out, MSE",
    "conv-denoising": "TensorFlow 'Intro to Autoencoders', part 2: strided conv denoiser, noise 0.2, MSE",
    "deep-mlp": "'train on one digit, flag the others': 512-256-128 ReLU, sigmoid out, MSE, batch 64",
    "stacked": "Géron's stacked autoencoder: 300-150 ELU, Xavier, L2 1e-4, Adam 0.01, MSE, 100 epochs",
}


def get_preset(name: str) -> TrainConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}") from None
