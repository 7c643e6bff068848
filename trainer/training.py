"""The training loop: reconstruct normal windows under MAE with Adam, optional noise and early stopping."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

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
    # eps as in Keras' Adam, which the reference recipe used.
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate, eps=1e-7,
                           weight_decay=config.weight_decay)
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
            loss = (model(inputs) - target).abs().mean()
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
