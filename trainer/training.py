"""The training loop: reconstruct normal windows under MAE or MSE (Adam, AdamW or SGD), optional input noise
against clean targets, optional early stopping.

Validation loss (early stopping) is always the MAE, the anomaly score the detector uses."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from detector.model.scoring import window_scores
from trainer.presets import TrainConfig


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


EpochCallback = Callable[[int, float, float | None], None]


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def mean_abs_error(model: nn.Module, x: torch.Tensor, batch: int = 4096) -> np.ndarray:
    """Per-window MAE of the reconstruction (the anomaly score, in scaled units)."""
    model.eval()
    return torch.cat([(model(x[i : i + batch]) - x[i : i + batch]).abs().mean(1)
                      for i in range(0, len(x), batch)]).numpy()


@torch.no_grad()
def window_scores_of(model: nn.Module, x: np.ndarray, kind: str, channels: int, window: int,
                     batch: int = 4096) -> np.ndarray:
    """The anomaly score of scaled rows, as the detector computes it (for calibration and reports)."""
    model.eval()
    rows = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return torch.cat([window_scores(model(rows[i : i + batch]), rows[i : i + batch], kind, channels, window)[0]
                      for i in range(0, len(rows), batch)]).numpy() if len(rows) else np.zeros(0, np.float32)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimiser; the Adams use Keras' eps (1e-7), as the reference recipes did."""
    params, lr, decay = model.parameters(), config.learning_rate, config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, eps=1e-7, weight_decay=decay)
    return torch.optim.Adam(params, lr=lr, eps=1e-7, weight_decay=decay)


def fit(
    model: nn.Module,
    train: np.ndarray,
    val: np.ndarray | None,
    config: TrainConfig,
    seed: int,
    on_epoch: EpochCallback | None = None,
) -> History:
    """Train in place on scaled normal windows; with `patience`, restore the best validation epoch."""
    generator = seed_everything(seed)
    x = torch.from_numpy(np.ascontiguousarray(train, dtype=np.float32))
    xv = None if val is None or len(val) == 0 else torch.from_numpy(np.ascontiguousarray(val, dtype=np.float32))
    opt = make_optimizer(model, config)
    history = History()
    best_val, best_state, stale = float("inf"), None, 0
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        perm = torch.randperm(len(x), generator=generator)
        total = 0.0
        for i in range(0, len(x), config.batch_size):
            target = x[perm[i : i + config.batch_size]]
            inputs = target
            if config.noise_std > 0:
                inputs = target + config.noise_std * torch.randn(target.shape, generator=generator)
            error = model(inputs) - target
            loss = error.abs().mean() if config.loss == "mae" else error.square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(target)
        history.train_loss.append(total / len(x))
        val_loss = None
        if xv is not None:
            val_loss = float(mean_abs_error(model, xv).mean())
            history.val_loss.append(val_loss)
            if val_loss < best_val:
                best_val, stale, history.best_epoch = val_loss, 0, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
        else:
            history.best_epoch = epoch
        if on_epoch is not None:
            on_epoch(epoch, history.train_loss[-1], val_loss)
        if config.patience and stale >= config.patience:
            break
    if config.patience and best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    history.seconds = time.perf_counter() - start
    return history


def fit_pca(model: nn.Module, train: np.ndarray, variance: float) -> History:
    """Set a linear autoencoder to PCA in closed form: the encoder projects onto the principal components that
    explain `variance` of the training windows (the code size was chosen with `pca_components`), the decoder maps
    back around the mean. Deterministic, and the best linear reconstruction there is."""
    started = time.perf_counter()
    x = np.asarray(train, dtype=np.float64)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    components = torch.from_numpy(vt[: model.encoder.out_features].astype(np.float32))  # type: ignore[union-attr]
    mu = torch.from_numpy(mean.astype(np.float32))
    with torch.no_grad():
        model.encoder.weight.copy_(components)  # type: ignore[union-attr,operator]
        model.encoder.bias.copy_(-(components @ mu))  # type: ignore[union-attr,operator]
        model.decoder.weight.copy_(components.T)  # type: ignore[union-attr,operator]
        model.decoder.bias.copy_(mu)  # type: ignore[union-attr,operator]
    model.eval()
    return History(best_epoch=0, seconds=time.perf_counter() - started)


def pca_components(train: np.ndarray, variance: float) -> int:
    """The fewest principal components that explain `variance` of the training windows."""
    x = np.asarray(train, dtype=np.float64)
    singular = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    explained = np.cumsum(singular**2) / max(float((singular**2).sum()), 1e-12)
    return min(len(explained), int(np.searchsorted(explained, variance)) + 1)
