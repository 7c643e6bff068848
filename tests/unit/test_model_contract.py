"""Contract tests run on every model variant: shapes, determinism, bundle round trip."""

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


def _quick(name: str):
    return get_preset(name).replace(epochs=3, patience=0)


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
        ({"kind": "linear", "window": 4, "code": 2}, "at least 8"),
        ({"kind": "rnn", "window": 140}, "unknown architecture kind"),
    ],
)
def test_bad_architectures(config: dict, message: str) -> None:
    with pytest.raises(ArchitectureError, match=message):
        build_model(config)
