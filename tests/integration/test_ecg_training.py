"""Train on the real ECG5000 copy: the seed preset reproduces the reference; the default and variants land in
their measured ranges (docs/accuracy.md has the 5-seed table)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from trainer.datasets import load_ecg5000
from trainer.pipeline import train
from trainer.presets import PRESETS, get_preset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ecg(ecg5000_path: Path):
    return load_ecg5000(ecg5000_path).tf_reference_rows()


def test_reference_rows(ecg) -> None:
    assert ecg.windows.shape == (4998, 140)
    assert int(ecg.is_normal.sum()) == 2919


def test_seed_preset_reproduces_the_reference(ecg) -> None:
    m = train(ecg, get_preset("seed"), seed=0, on_epoch=None).metrics["test"]
    assert m["n"] == 1000 and m["n_anomalous"] == 440  # the reference test split
    assert m["accuracy"] == pytest.approx(0.944, abs=0.02)
    assert m["normal_class"]["precision"] == pytest.approx(0.992, abs=0.02)
    assert m["normal_class"]["recall"] == pytest.approx(0.907, abs=0.04)


def test_default_preset_beats_the_seed(ecg) -> None:
    m = train(ecg, get_preset("default"), seed=0, on_epoch=None).metrics["test"]
    assert m["accuracy"] >= 0.97
    assert m["roc_auc"] >= 0.985
    assert m["anomaly_class"]["f1"] >= 0.965


CHANGE_POINT_PRESETS = {"telemetry-changes"}  # scores a change entering a window, not a whole heartbeat's shape


@pytest.mark.parametrize("preset", sorted(set(PRESETS) - {"seed", "default", "telemetry", "conv-denoising"}
                                          - CHANGE_POINT_PRESETS))
def test_every_variant_beats_chance(ecg, preset: str) -> None:
    config = get_preset(preset).replace(epochs=8, patience=0)
    m = train(ecg, config, seed=0, on_epoch=None).metrics["test"]
    assert m["roc_auc"] > 0.8, m
    assert m["accuracy"] > 0.7, m


def test_telemetry_preset_ranks_heartbeats_but_its_threshold_stays_silent(ecg) -> None:
    """The telemetry preset is built for short sliding windows of unlabelled telemetry: its score still ranks
    heartbeats (AUC), but its threshold (twice the largest held-out score) is meant to raise no false alarm, and on
    whole heartbeats it flags almost nothing. Measured, not hidden: use `default` for ECG-like data."""
    m = train(ecg, get_preset("telemetry").replace(epochs=8, patience=0), seed=0, on_epoch=None).metrics["test"]
    assert m["roc_auc"] > 0.8, m
    assert m["normal_class"]["recall"] >= 0.99, m  # no false alarms on held-out normal beats


def test_conv_denoising_denoises_heartbeats_but_ranks_them_weakly_without_a_bottleneck(ecg) -> None:
    """The TensorFlow denoiser's layout (16 then 8 filters, stride 2) keeps 8 x 35 = 280 values of a 140-sample
    beat: no bottleneck, so it learns to smooth, not to compress, and reconstructs abnormal beats almost as well as
    normal ones. Measured, not hidden (docs/accuracy.md): it removes most of the noise, its ROC-AUC stays near 0.65,
    and the same file with a 16-wide dense code (`architecture.code: 16`) ranks beats like the other presets."""
    result = train(ecg, get_preset("conv-denoising").replace(epochs=8), seed=0, on_epoch=None)
    assert result.metrics["test"]["roc_auc"] > 0.55, result.metrics["test"]  # beats chance, weakly
    normal = result.split.test[ecg.is_normal[result.split.test]]
    clean = result.bundle.scaler.transform(ecg.windows[normal])
    noisy = clean + np.random.default_rng(0).normal(0.0, 0.2, clean.shape).astype(np.float32)
    with torch.no_grad():
        denoised = result.bundle.build_model()(torch.from_numpy(noisy)).numpy()
    assert ((denoised - clean) ** 2).mean() < ((noisy - clean) ** 2).mean() / 5  # measured: about 1/19
    coded = get_preset("conv-denoising").replace(epochs=8, architecture={**get_preset("conv-denoising").architecture,
                                                                          "code": 16})
    m = train(ecg, coded, seed=0, on_epoch=None).metrics["test"]
    assert m["roc_auc"] > 0.95 and m["roc_auc"] > result.metrics["test"]["roc_auc"] + 0.2, m


def test_linear_autoencoder_approaches_pca(ecg) -> None:
    result = train(ecg, get_preset("linear"), seed=0, on_epoch=None)
    bundle = result.bundle
    fit = ecg.windows[result.split.fit][ecg.is_normal[result.split.fit]]
    x = bundle.scaler.transform(fit)
    with torch.no_grad():
        ae_mse = float(((bundle.build_model()(torch.from_numpy(x)) - torch.from_numpy(x)) ** 2).mean())
    pca = PCA(n_components=8).fit(x)
    pca_mse = float(((pca.inverse_transform(pca.transform(x)) - x) ** 2).mean())
    # PCA is the optimal rank-8 linear reconstruction under squared error: the AE cannot beat it and gets close.
    assert pca_mse <= ae_mse * 1.0001
    assert ae_mse <= 1.25 * pca_mse, (ae_mse, pca_mse)


def test_cli_train_and_evaluate_json(ecg5000_path: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "tsad", "train", "--preset", "seed", "--data", str(ecg5000_path),
           "--out", str(tmp_path / "b"), "--json", "--quiet"]
    trained = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    assert trained["metrics"]["test"]["accuracy"] == pytest.approx(0.944, abs=0.02)
    cmd = [sys.executable, "-m", "tsad", "evaluate", "--bundle", str(tmp_path / "b"), "--data",
           str(ecg5000_path), "--out", str(tmp_path / "r"), "--json"]
    evaluated = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    assert evaluated["metrics"]["accuracy"] == trained["metrics"]["test"]["accuracy"]
    assert evaluated["metrics"]["confusion"] == trained["metrics"]["test"]["confusion"]
    for name in ("report.html", "report.md", "loss_curves.png", "train_loss_hist.png", "test_loss_hist.png",
                 "reconstructions.png", "roc.png"):
        assert (tmp_path / "r" / name).stat().st_size > 0, name
    assert np.isfinite(evaluated["metrics"]["roc_auc"])


def test_replay_source_for_the_ecg5000_test_split(ecg5000_path: Path) -> None:
    from sample_streams.sources import open_source

    records = list(open_source(ecg_test=True, data=str(ecg5000_path)))
    assert len(records) == 1000 and sum(r.label for r in records) == 440  # label 1 = anomalous on streams
    assert len({r.id for r in records}) == 1000 and all(len(r.values) == 140 for r in records)
