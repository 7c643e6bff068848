"""The telemetry recipe's parts: the recent-offset score, the closed-form PCA fit, the MSE loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detector.model.architectures import build_model
from detector.model.scoring import window_scores
from trainer.datasets import WindowDataset
from trainer.pipeline import train
from trainer.presets import get_preset
from trainer.training import fit_pca, pca_components


def test_recent_offset_sees_a_sustained_offset_in_the_newest_samples_not_noise() -> None:
    n, channels, window = 3, 2, 8
    scaled = torch.zeros(n, channels * window)
    recon = torch.zeros(n, channels * window)
    recon[1, window - 2 : window] = 1.0  # channel 0: the last two samples are off by 1 (its newest quarter)
    recon[2, ::2] = 1.0  # zero-mean-ish alternating noise... on every other sample
    recon[2, 1::2] = -1.0
    scores, errors = window_scores(recon, scaled, "recent_offset", channels, window)
    assert scores[0] == 0 and scores[1] == pytest.approx((1.0**2 + 0.0) / 2)  # mean offset 1 on channel 0
    assert scores[2] == 0  # the noise averages out over the newest quarter
    assert errors.shape == (n, channels * window) and errors[2].mean() == 1.0  # attribution still sees it
    mae, _ = window_scores(recon, scaled, "mean_abs_error", channels, window)
    assert mae[2] == 1.0
    with pytest.raises(ValueError, match="unknown score kind"):
        window_scores(recon, scaled, "median", channels, window)


def test_error_change_rises_where_the_error_level_moves_not_in_a_steady_state() -> None:
    n, channels, window = 4, 2, 12  # span: 12 // 6 = 2 samples
    scaled = torch.zeros(n, channels * window)
    recon = torch.zeros(n, channels * window)
    recon[1, :] = 3.0  # a steady error everywhere (an anomaly in progress): no change
    recon[2, window - 2 : window] = 2.0  # channel 0 jumps in its newest two samples: the start of something
    recon[3, : window - 2] = 2.0  # channel 0 and 1 back to normal in the newest two samples: an end
    recon[3, window : 2 * window - 2] = 2.0
    scores, errors = window_scores(recon, scaled, "error_change", channels, window)
    assert scores[0] == 0 and scores[1] == 0
    assert scores[2] == pytest.approx(1.0)  # (2 + 0) / 2 channels, newest span against the span before
    assert scores[3] == pytest.approx(2.0)  # an end scores as a change too
    assert errors[1].mean() == 3.0  # attribution still sees the steady error


def test_level_change_scores_a_step_entering_the_window_not_a_level_that_fills_it() -> None:
    n, channels, window = 4, 2, 8  # span: the newest 8 // 4 = 2 samples against the 6 before them
    scaled = torch.zeros(n, channels * window)
    recon = torch.zeros(n, channels * window)
    recon[1, :window] = 3.0  # channel 0 off by 3 over the whole window (a new level that fills it): no change
    recon[2, window - 2 : window] = 2.0  # channel 0 steps up by 2 in its newest two samples
    recon[3, window : 2 * window - 2] = -1.0  # channel 1 steps back from -1 to 0 (an end), sign does not matter
    recon[0, ::2], recon[0, 1::2] = 1.0, -1.0  # alternating noise: each part's mean is 0
    scores, errors = window_scores(recon, scaled, "level_change", channels, window)
    assert scores[0] == 0 and scores[1] == 0
    assert scores[2] == pytest.approx(2.0**2 / 2)  # (2 - 0)² on channel 0, 0 on channel 1, mean over channels
    assert scores[3] == pytest.approx(1.0**2 / 2)
    assert errors[1].sum() == 3.0 * window  # attribution still sees the steady error
    offset, _ = window_scores(recon, scaled, "recent_offset", channels, window)
    assert offset[1] == pytest.approx(9.0 / 2)  # where recent_offset keeps scoring the new level
    with pytest.raises(ValueError, match="at least 2 samples"):
        window_scores(torch.zeros(1, 1), torch.zeros(1, 1), "level_change", 1, 1)


def test_pca_fit_reconstructs_the_kept_subspace_exactly() -> None:
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, 20))
    x = (rng.normal(size=(200, 3)) @ basis + 5.0).astype(np.float32)  # rank 3 around a mean of 5
    assert pca_components(x, 0.999) == 3
    model = build_model({"kind": "linear", "window": 20, "code": 3})
    fit_pca(model, x, 0.999)
    with torch.no_grad():
        recon = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(recon, x, atol=1e-3)


def test_the_telemetry_preset_trains_deterministically_on_channels() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(24) / 3.0
    rows = np.stack([np.concatenate([np.sin(t + p), np.cos(t + p) + 10]) for p in rng.uniform(0, 6, 300)])
    ds = WindowDataset(rows.astype(np.float32), None, "pump", "0" * 64, channels=("a", "b"), stride=24)  # by time
    a = train(ds, get_preset("telemetry").replace(test_size=0.0), seed=0, on_epoch=None).bundle
    b = train(ds, get_preset("telemetry").replace(test_size=0.0), seed=7, on_epoch=None).bundle
    assert a.score == "recent_offset" and a.threshold.method == "max_factor"
    assert all(torch.equal(v, b.state_dict[k]) for k, v in a.state_dict.items())  # PCA: no randomness
    assert a.architecture["code"] < 48


def test_the_mse_loss_trains() -> None:
    rng = np.random.default_rng(2)
    ds = WindowDataset(rng.normal(size=(100, 16)).astype(np.float32), None, "x", "0" * 64)
    config = get_preset("default").replace(loss="mse", epochs=3, patience=0, threshold="mean_std")
    assert train(ds, config, seed=0, on_epoch=None).history.train_loss[-1] > 0
    with pytest.raises(ValueError, match="loss must be mae or mse"):
        config.replace(loss="huber")


def test_the_change_point_preset_trains_by_sgd_and_scores_level_changes() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(24) / 3.0
    rows = np.stack([np.concatenate([np.sin(t + p), np.cos(t + p) + 10]) for p in rng.uniform(0, 6, 200)])
    ds = WindowDataset(rows.astype(np.float32), None, "pump", "0" * 64, channels=("a", "b"), stride=24)
    bundle = train(ds, get_preset("telemetry-changes").replace(test_size=0.0, epochs=5), seed=0,
                   on_epoch=None).bundle
    assert bundle.score == "level_change" and bundle.threshold.method == "max_factor"
    assert bundle.architecture["code"] == 16  # trained by SGD: no PCA picks the code size
    normal = rows.astype(np.float32)
    stepped = normal.copy()
    stepped[:, 18:24] += 5.0  # channel a jumps in its newest quarter
    filled = normal.copy()
    filled[:, :24] += 5.0  # channel a at a new level for the whole window
    scorer, threshold = bundle.scorer(), bundle.threshold.value
    step_scores = scorer.score(stepped).scores
    assert (step_scores > threshold).all()
    assert (scorer.score(normal).scores > threshold).mean() < 0.02
    # once the level fills the window the score falls (to what the model's reconstruction makes of the offset:
    # exactly 0 only where the residual of a level is flat; here ~0.1 of the step's)
    assert np.median(scorer.score(filled).scores) < 0.3 * np.median(step_scores)
