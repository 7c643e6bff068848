"""Training files: every preset as a file and back, errors that name the key, overrides, bundles trained again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from detector.model.architectures import build_model, resolve_architecture
from trainer.datasets import WindowDataset
from trainer.pipeline import train
from trainer.presets import PRESET_NOTES, PRESETS, TrainConfig, get_preset
from trainer.train_file import (
    FIELDS,
    TrainConfigError,
    config_from_dict,
    dump_train_file,
    load_train_file,
    parse_assignments,
    with_overrides,
)


def _write(tmp_path: Path, text: str, name: str = "train.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_is_a_file_that_loads_back_to_itself(preset: str, tmp_path: Path) -> None:
    config = get_preset(preset)
    text = dump_train_file(config, f"preset {preset}\n{PRESET_NOTES[preset]}")
    assert text.startswith(f"# preset {preset}\n")
    loaded, seed = load_train_file(_write(tmp_path, text))
    assert loaded == config and seed is None
    assert list(yaml.safe_load(text)) == list(FIELDS)  # the resolved file: every key, in one order
    assert preset in PRESET_NOTES


def test_the_reference_recipes_are_as_written() -> None:
    basic, conv, deep, stacked = (get_preset(n) for n in ("basic", "conv-denoising", "deep-mlp", "stacked"))
    assert basic.architecture["hidden"] == [64] and basic.architecture["output_activation"] == "sigmoid"
    assert (basic.loss, basic.epochs) == ("mse", 10)
    assert conv.architecture["channels"] == [16, 8] and conv.architecture["code"] is None
    assert (conv.architecture["kernel"], conv.architecture["stride"], conv.architecture["activation"]) == (3, 2, "relu")
    assert conv.architecture["output_conv"] and conv.architecture["output_activation"] == "sigmoid"
    assert (conv.noise_std, conv.loss) == (0.2, "mse")
    assert deep.architecture["hidden"] == [512, 256, 128] and deep.architecture["activation"] == "relu"
    assert (deep.loss, deep.optimizer, deep.learning_rate, deep.batch_size) == ("mse", "adam", 1e-3, 64)
    assert stacked.architecture["hidden"] == [300, 150] and stacked.architecture["activation"] == "elu"
    assert stacked.architecture["init"] == "xavier_uniform"
    assert (stacked.weight_decay, stacked.learning_rate, stacked.loss, stacked.epochs) == (1e-4, 0.01, "mse", 100)
    assert get_preset("seed").to_dict() == {**TrainConfig(preset="seed", architecture={
        "kind": "dense", "hidden": [32, 16, 8], "activation": "relu", "output_activation": "sigmoid"}).to_dict()}
    assert (get_preset("seed").loss, get_preset("seed").epochs, get_preset("seed").batch_size) == ("mae", 20, 512)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("base: seed\nlerning_rate: 0.1\n", "lerning_rate: unknown key; did you mean 'learning_rate'?"),
        ("base: seed\nloss: huber\n", "loss: 'huber' is not allowed; loss must be mae or mse"),
        ("base: seed\noptimizer: adagrad\n", "optimizer: 'adagrad' is not allowed; optimizer must be one of"),
        ("base: seed\nepochs: 0\n", "epochs: must be an integer of at least 1, got 0"),
        ("base: seed\nbatch_size: many\n", "batch_size: must be an integer of at least 1, got 'many'"),
        ("base: seed\nlearning_rate: -1\n", "learning_rate: must be in (0, inf), got -1"),
        ("base: seed\nnoise_std: lots\n", "noise_std: must be a number, got 'lots'"),
        ("base: seed\nvalidation_fraction: 1.5\n", "validation_fraction: must be in [0, 1), got 1.5"),
        ("base: seed\narchitecture:\n  hidden: []\n", "architecture.hidden: dense architecture needs at least one"),
        ("base: seed\narchitecture:\n  hidden: [32, -1]\n", "architecture.hidden: must be a positive integer"),
        ("base: seed\narchitecture:\n  widths: [3]\n", "architecture.widths: not an option of a dense architecture"),
        ("base: seed\narchitecture:\n  activation: swish2\n", "architecture.activation: unknown activation"),
        ("base: seed\narchitecture:\n  init: glorot\n", "architecture.init: unknown initialisation 'glorot'"),
        ("base: seed\narchitecture:\n  window: 140\n", "architecture.window: the window length and channels come"),
        ("base: conv\narchitecture:\n  kernel: 4\n", "architecture.kernel: conv kernel must be odd, got 4"),
        ("base: conv\narchitecture:\n  output_conv: maybe\n", "architecture.output_conv: must be true or false"),
        ("base: seed\narchitecture:\n  kind: rnn\n", "architecture.kind: unknown architecture kind 'rnn'"),
        ("base: seed\narchitecture:\n  kind: conv\n", "architecture config is missing 'channels'"),
        ("base: seed\nthreshold: f1_optimal\n", "validation_fraction: threshold 'f1_optimal' calibrates"),
        ("base: telemetry\nthreshold_params:\n  fpr: 0.1\n", "threshold_params.fpr: not a parameter of threshold"),
        ("base: default\nthreshold: fpr_quantile\nthreshold_params:\n  fpr: 2\n", "threshold_params.fpr: must be in"),
        ("base: seed\npca_variance: 0.9\n", "pca_variance: needs a linear architecture, architecture.kind is 'dense'"),
        ("base: seed\nmomentum: 0.9\n", "momentum: only the sgd optimizer uses it"),
        ("base: seed\nscore: rmse\n", "score: 'rmse' is not allowed"),
        ("base: nope\n", "base: unknown preset 'nope'"),
        ("epochs: 3\n", "architecture: missing"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("epochs: [\n", "not valid YAML"),
    ],
)
def test_errors_name_the_key_and_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(TrainConfigError) as err:
        load_train_file(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_a_missing_file() -> None:
    with pytest.raises(TrainConfigError, match="training file not found"):
        load_train_file("/nonexistent/train.yaml")


def test_base_changes_only_the_keys_given(tmp_path: Path) -> None:
    text = "base: deep-mlp\npreset: deep-narrow\nlearning_rate: 1e-4\narchitecture:\n  hidden: [64, 32]\n"
    config, _ = load_train_file(_write(tmp_path, text))
    assert config.learning_rate == 1e-4  # PyYAML reads `1e-4` as a string; numbers are taken from strings
    assert config.architecture == {**get_preset("deep-mlp").architecture, "hidden": [64, 32]}
    assert config.replace(preset="deep-mlp", learning_rate=1e-3, architecture=get_preset("deep-mlp").architecture) \
        == get_preset("deep-mlp")
    other_kind, _ = load_train_file(_write(tmp_path, "base: seed\narchitecture:\n  kind: linear\n  code: 4\n"))
    assert other_kind.architecture == {"kind": "linear", "code": 4, "init": "torch"}  # a new kind: a new model


def test_a_file_without_base_gets_the_documented_defaults(tmp_path: Path) -> None:
    config, _ = load_train_file(_write(tmp_path, '{"architecture": {"kind": "linear", "code": 3}}', "t.json"))
    assert config == TrainConfig(preset="custom", architecture={"kind": "linear", "code": 3})
    assert config.loss == "mae" and config.optimizer == "adam" and config.threshold == "mean_std"


def test_overrides_reach_inside_and_reset_the_threshold_parameters() -> None:
    telemetry = get_preset("telemetry")
    changed = with_overrides(telemetry, parse_assignments(["architecture.code=4", "loss=mae", "threshold=pot"]))
    assert changed.architecture["code"] == 4 and changed.loss == "mae"
    assert changed.threshold == "pot" and changed.threshold_params == {}
    kept = with_overrides(telemetry, {"threshold_params.factor": 3})
    assert kept.threshold_params == {"factor": 3.0}
    with pytest.raises(TrainConfigError, match=r"command line: architecture\.code: must be a positive integer"):
        with_overrides(telemetry, {"architecture.code": 0})
    with pytest.raises(TrainConfigError, match="expected KEY=VALUE"):
        parse_assignments(["loss"])
    assert parse_assignments(["architecture.hidden=[64, 32, 8]"]) == {"architecture.hidden": [64, 32, 8]}


OLD_STORED_CONFIGS = [  # training.config as bundles of format 2 stored it, before the training file existed
    {"preset": "conv", "architecture": {"kind": "conv", "channels": [16, 32], "code": 16, "kernel": 7},
     "scaler": "global_minmax", "loss": "mae", "score": "mean_abs_error", "pca_variance": None, "epochs": 2,
     "batch_size": 32, "learning_rate": 0.001, "weight_decay": 0.0, "noise_std": 0.0, "validation_fraction": 0.2,
     "patience": 0, "threshold": "f1_optimal", "threshold_params": {}, "per_source_thresholds": False,
     "per_source_min_windows": 30, "test_size": 0.2, "split_seed": 21},
    {"preset": "seed", "architecture": {"kind": "dense", "hidden": [32, 16, 8], "activation": "relu",
                                        "output_activation": "sigmoid"}, "epochs": 20},
]


@pytest.mark.parametrize("stored", OLD_STORED_CONFIGS)
def test_configs_stored_by_older_bundles_still_load_and_build_the_same_model(stored: dict) -> None:
    config = config_from_dict(stored, "bundle.json")
    assert config.optimizer == "adam" and config.momentum == 0.0
    old = {**stored["architecture"], "window": 64}
    torch.manual_seed(0)
    a = build_model(old)
    torch.manual_seed(0)
    b = build_model({**config.architecture, "window": 64})
    assert config.architecture == resolve_architecture(stored["architecture"])
    assert a.state_dict().keys() == b.state_dict().keys()
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def _data() -> WindowDataset:
    rng = np.random.default_rng(0)
    t = np.linspace(0, 4 * np.pi, 64)
    w = (np.sin(t + rng.uniform(0, 2 * np.pi, size=(200, 1))) + 0.05 * rng.normal(size=(200, 64))).astype(np.float32)
    normal = np.ones(200, dtype=bool)
    normal[::10] = False
    w[~normal] += rng.normal(0, 1.0, size=w[~normal].shape).astype(np.float32)
    return WindowDataset(w, normal, "synthetic", "0" * 64)


FULL_FILE = """\
preset: everything
architecture: {kind: conv, channels: [8, 4], code: 6, kernel: 5, stride: 2, activation: gelu,
               output_activation: sigmoid, output_conv: true, init: he_normal}
scaler: global_minmax
loss: mse
optimizer: sgd
learning_rate: 0.01
momentum: 0.9
weight_decay: 1.0e-5
noise_std: 0.05
epochs: 3
batch_size: 16
validation_fraction: 0.2
patience: 2
threshold: fpr_quantile
threshold_params: {fpr: 0.05}
"""


def test_the_bundle_stores_the_resolved_file_and_trains_the_same_model_again(tmp_path: Path) -> None:
    config, _ = load_train_file(_write(tmp_path, FULL_FILE))
    first = train(_data(), config, seed=4, on_epoch=None)
    directory = first.bundle.save(tmp_path / "b")
    stored = json.loads((directory / "bundle.json").read_text())["training"]["config"]
    assert stored == config.to_dict() and list(stored) == list(FIELDS)
    assert stored["architecture"]["init"] == "he_normal" and stored["momentum"] == 0.9
    again, seed = load_train_file(directory)
    assert again == config and seed == 4
    second = train(_data(), again, seed=seed, on_epoch=None)
    for key, tensor in first.bundle.state_dict.items():
        assert torch.equal(tensor, second.bundle.state_dict[key]), key
    assert first.bundle.threshold == second.bundle.threshold
