"""Contract tests run on every preset: shapes, determinism, bundle round trip with the full training file, beats
chance; the reference recipes' layer layouts; architecture configs stored before new options existed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from detector.model.architectures import ArchitectureError, build_model
from detector.model.bundle import ModelBundle
from detector.model.scoring import Scorer
from trainer.datasets import WindowDataset
from trainer.pipeline import train
from trainer.presets import PRESETS, get_preset
from trainer.train_file import config_from_dict

# The unit budget: 3 epochs, except `stacked`, whose recipe (Adam 0.01, batch 150: 3 steps an epoch on these ~430
# windows) overshoots at first (training MSE ~0.8 → ~4.8 → ~0.5 over epochs 1-3, test ROC-AUC 0.53) and has
# settled by epoch 10 (MSE ~0.06, ROC-AUC 1.0); the preset itself trains 100 epochs.
# `telemetry-changes` (the telemetry recipe trained by SGD, scored by level_change) likewise: after 3 epochs the
# residual of the sine shape still moves its newest quarter against the rest (ROC-AUC 0.749), after 10 it is 1.0.
_QUICK_EPOCHS = {"stacked": 10, "telemetry-changes": 10}


def _quick(name: str):
    return get_preset(name).replace(epochs=_QUICK_EPOCHS.get(name, 3), patience=0)


def _dataset(windows: np.ndarray) -> WindowDataset:
    is_normal = np.ones(len(windows), dtype=bool)
    is_normal[::10] = False
    w = windows.copy()
    w[~is_normal] += np.random.default_rng(0).normal(0, 1.5, size=w[~is_normal].shape).astype(np.float32)
    return WindowDataset(w, is_normal, "synthetic", "0" * 64)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("window", [140, 64])
def test_shapes(preset: str, window: int) -> None:
    model = build_model({**get_preset(preset).architecture, "window": window})
    out = model(torch.zeros(5, window))
    assert out.shape == (5, window)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_determinism_and_bundle_round_trip(preset: str, sine_windows: np.ndarray, tmp_path: Path) -> None:
    ds = _dataset(sine_windows)
    a = train(ds, _quick(preset), seed=5, on_epoch=None)
    b = train(ds, _quick(preset), seed=5, on_epoch=None)
    for key, tensor in a.bundle.state_dict.items():
        assert torch.equal(tensor, b.bundle.state_dict[key]), key
    assert a.bundle.threshold == b.bundle.threshold
    loaded = ModelBundle.load(a.bundle.save(tmp_path / preset))
    scores = Scorer(loaded.build_model(), loaded.scaler, loaded.window).score(ds.windows[:20]).scores
    expected = Scorer(a.bundle.build_model(), a.bundle.scaler, 140).score(ds.windows[:20]).scores
    np.testing.assert_array_equal(scores, expected)
    assert loaded.training["preset"] == preset
    assert loaded.training["config"] == _quick(preset).to_dict()  # the resolved training file, every key
    assert config_from_dict(loaded.training["config"]) == _quick(preset)
    assert a.metrics["test"]["roc_auc"] > 0.75, a.metrics["test"]  # noise bursts are anomalies: beats chance


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_reference_recipes_layer_layouts() -> None:
    basic = build_model({**get_preset("basic").architecture, "window": 140})
    assert _parameters(basic) == (140 * 64 + 64) + (64 * 140 + 140)  # Dense(64, relu), Dense(140, sigmoid)
    deep = build_model({**get_preset("deep-mlp").architecture, "window": 140})
    assert [m.out_features for m in deep.modules() if isinstance(m, torch.nn.Linear)] == [512, 256, 128, 256, 512,
                                                                                           140]
    stacked = build_model({**get_preset("stacked").architecture, "window": 140})
    assert [m.out_features for m in stacked.modules() if isinstance(m, torch.nn.Linear)] == [300, 150, 300, 140]
    assert isinstance(list(stacked.modules())[-1], torch.nn.Identity)  # linear output
    conv = build_model({**get_preset("conv-denoising").architecture, "window": 140})
    layers = [m for m in conv.modules() if isinstance(m, torch.nn.Conv1d | torch.nn.ConvTranspose1d)]
    assert [(type(m).__name__, m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0]) for m in layers] == [
        ("Conv1d", 1, 16, 3, 2), ("Conv1d", 16, 8, 3, 2), ("ConvTranspose1d", 8, 8, 3, 2),
        ("ConvTranspose1d", 8, 16, 3, 2), ("Conv1d", 16, 1, 3, 1)]
    assert _parameters(conv) == 64 + 392 + 200 + 400 + 49  # the TensorFlow denoiser's layers, in 1-D
    assert conv.encoder(torch.zeros(2, 1, 140)).shape == (2, 8, 35)  # 'same' padding: 140 → 70 → 35
    out = conv(torch.randn(4, 140)).detach()
    assert out.shape == (4, 140) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0  # sigmoid output


def test_architecture_configs_stored_before_the_new_options_rebuild_the_same_layout() -> None:
    old_conv = {"kind": "conv", "channels": [16, 32], "code": 16, "kernel": 7, "window": 140}
    shapes = {k: tuple(v.shape) for k, v in build_model(old_conv).state_dict().items()}
    assert shapes == {"encoder.0.weight": (16, 1, 7), "encoder.0.bias": (16,), "encoder.2.weight": (32, 16, 7),
                      "encoder.2.bias": (32,), "to_code.weight": (16, 1120), "to_code.bias": (16,),
                      "from_code.weight": (1120, 16), "from_code.bias": (1120,), "decoder.0.weight": (32, 16, 7),
                      "decoder.0.bias": (16,), "decoder.2.weight": (16, 1, 7), "decoder.2.bias": (1,)}
    torch.manual_seed(0)
    old = build_model({"kind": "dense", "hidden": [32, 16, 8], "window": 140})
    torch.manual_seed(0)
    new = build_model({"kind": "dense", "hidden": [32, 16, 8], "window": 140, "activation": "relu",
                       "output_activation": "sigmoid", "init": "xavier_uniform"})
    assert all(torch.equal(t, new.state_dict()[k]) for k, t in old.state_dict().items())


def test_different_seeds_differ(sine_windows: np.ndarray) -> None:
    ds = _dataset(sine_windows)
    a = train(ds, _quick("default"), seed=1, on_epoch=None)
    b = train(ds, _quick("default"), seed=2, on_epoch=None)
    assert any(not torch.equal(t, b.bundle.state_dict[k]) for k, t in a.bundle.state_dict.items())


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"kind": "dense", "window": 140, "hidden": []}, "at least one hidden"),
        ({"kind": "dense", "window": 140}, "missing 'hidden'"),
        ({"kind": "dense", "window": 140, "hidden": [8], "activation": "swish2"}, "unknown activation"),
        ({"kind": "conv", "window": 140, "channels": [8], "code": 4, "kernel": 4}, "kernel must be odd"),
        ({"kind": "conv", "window": 140, "channels": [8], "code": 4, "stride": 0}, r"architecture\.stride: must be"),
        ({"kind": "dense", "window": 140, "hidden": [8], "init": "lecun"}, "unknown initialisation 'lecun'"),
        ({"kind": "linear", "window": 4, "code": 2}, "at least 8"),
        ({"kind": "rnn", "window": 140}, "unknown architecture kind"),
    ],
)
def test_bad_architectures(config: dict, message: str) -> None:
    with pytest.raises(ArchitectureError, match=message):
        build_model(config)


def _pump_windows(n: int = 300, window: int = 48, seed: int = 0) -> np.ndarray:
    """Three channels that move together (a pump: current, pressure, flow) plus a constant one, channel-major."""
    rng = np.random.default_rng(seed)
    t = np.arange(window) / 6.0
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    current = np.sin(t + phase) + 0.05 * rng.normal(size=(n, window))
    pressure = 2.0 * np.sin(t + phase) + 3.0 + 0.05 * rng.normal(size=(n, window))
    flow = -np.sin(t + phase) + 0.05 * rng.normal(size=(n, window))
    voltage = np.full((n, window), 230.0)
    return np.stack([current, pressure, flow, voltage], axis=1).reshape(n, -1).astype(np.float32)


CHANNELS = ("Current", "Pressure", "Flow", "Voltage")


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("channels", [1, 4])
def test_every_preset_takes_c_channels(preset: str, channels: int) -> None:
    model = build_model({**get_preset(preset).architecture, "window": 48, "input_channels": channels})
    out = model(torch.zeros(5, channels * 48))
    assert out.shape == (5, channels * 48)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_multichannel_round_trip_and_a_broken_correlation_is_flagged(preset: str, tmp_path: Path) -> None:
    windows = _pump_windows()
    ds = WindowDataset(windows, None, "synthetic-pump", "0" * 64, channels=CHANNELS)
    config = get_preset(preset).replace(epochs=25 if preset != "seed" else 60, patience=0,
                                        threshold="fpr_quantile", threshold_params={"fpr": 0.02},
                                        validation_fraction=0.2)
    result = train(ds, config, seed=3, on_epoch=None)
    loaded = ModelBundle.load(result.bundle.save(tmp_path / preset))
    assert loaded.channels == CHANNELS and loaded.architecture.get("input_channels") == 4
    scorer = Scorer(loaded.build_model(), loaded.scaler, loaded.window, channels=4)
    normal = scorer.score(_pump_windows(50, seed=9)).scores
    broken = _pump_windows(50, seed=9).reshape(50, 4, 48)
    broken[:, 1] = 6.0 - broken[:, 1]  # pressure turns against current, in its usual range
    stuck = _pump_windows(50, seed=9).reshape(50, 4, 48)
    stuck[:, 3] = 229.0  # the constant voltage departs by 1 V
    assert np.median(scorer.score(broken.reshape(50, -1)).scores) > np.median(normal)
    assert (scorer.score(stuck.reshape(50, -1)).scores > loaded.threshold.value).all()
