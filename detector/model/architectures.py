"""Autoencoder architectures for fixed-length windows of C channels × L samples.

Every architecture is described by a plain JSON-able dict (stored in the model bundle) and rebuilt from it by
`build_model`. A window travels as one row of C·L values, channel-major (channel 0's L samples, then channel 1's
…); the model maps a batch of scaled rows `[n, C·L]` to reconstructions of the same shape. Dense and linear models
see the row as it is; the convolutional one reshapes it to `[n, C, L]` and uses the channels as input channels.
C = 1 (the default) is exactly the single-channel model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

ARCHITECTURES = ("dense", "linear", "conv")

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


class ArchitectureError(ValueError):
    """An architecture config that cannot be built."""


def _activation(name: str | None) -> nn.Module:
    if name is None or name == "none":
        return nn.Identity()
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ArchitectureError(f"unknown activation {name!r}; choose from {sorted(_ACTIVATIONS)}") from None


class DenseAutoencoder(nn.Module):
    """Mirror-image MLP: window → hidden[0] → … → hidden[-1] (code) → … → hidden[0] → window.

    With hidden=[32, 16, 8], ReLU and a sigmoid output this is the reference (TensorFlow tutorial) model.
    """

    def __init__(
        self,
        window: int,
        hidden: list[int],
        activation: str = "relu",
        output_activation: str | None = "sigmoid",
    ) -> None:
        super().__init__()
        if not hidden:
            raise ArchitectureError("dense architecture needs at least one hidden layer size")
        enc: list[nn.Module] = []
        width = window
        for size in hidden:
            enc += [nn.Linear(width, size), _activation(activation)]
            width = size
        dec: list[nn.Module] = []
        for size in [*reversed(hidden[:-1]), window]:
            dec.append(nn.Linear(width, size))
            dec.append(_activation(activation if size != window else output_activation))
            width = size
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                # Keras' Dense defaults, so the seed preset matches the reference recipe.
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class LinearAutoencoder(nn.Module):
    """window → code → window with no non-linearity: spans the same subspace as PCA with `code` components."""

    def __init__(self, window: int, code: int) -> None:
        super().__init__()
        self.encoder = nn.Linear(window, code)
        self.decoder = nn.Linear(code, window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class ConvAutoencoder(nn.Module):
    """1-D convolutional encoder (stride-2 convs) with a dense bottleneck and a transposed-conv decoder; the
    window's channels are the first convolution's input channels (and the last one's outputs)."""

    def __init__(self, window: int, channels: list[int], code: int, kernel: int = 7, inputs: int = 1) -> None:
        super().__init__()
        if not channels:
            raise ArchitectureError("conv architecture needs at least one channel count")
        if kernel % 2 == 0:
            raise ArchitectureError(f"conv kernel must be odd, got {kernel}")
        self.window = window
        self.inputs = inputs
        pad = kernel // 2
        enc: list[nn.Module] = []
        length, width = window, inputs
        for ch in channels:
            enc += [nn.Conv1d(width, ch, kernel, stride=2, padding=pad), nn.ELU()]
            length = (length + 2 * pad - kernel) // 2 + 1
            width = ch
        self.encoder = nn.Sequential(*enc)
        self.feature_shape = (width, length)
        self.to_code = nn.Linear(width * length, code)
        self.from_code = nn.Linear(code, width * length)
        dec: list[nn.Module] = []
        for ch in [*reversed(channels[:-1]), inputs]:
            dec += [nn.ConvTranspose1d(width, ch, kernel, stride=2, padding=pad, output_padding=1), nn.ELU()]
            width = ch
        dec[-1] = nn.Identity()  # linear output layer
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        h = self.encoder(x.view(n, self.inputs, self.window)).flatten(1)
        h = self.from_code(torch.nn.functional.elu(self.to_code(h)))
        y = self.decoder(h.view(n, *self.feature_shape))
        # Transposed convs may overshoot the window length by a few samples; crop (or pad) back to it.
        if y.shape[2] >= self.window:
            y = y[:, :, : self.window]
        else:
            y = torch.nn.functional.pad(y, (0, self.window - y.shape[2]))
        return y.reshape(n, self.inputs * self.window)


def _require(config: Mapping[str, Any], key: str) -> Any:
    if key not in config:
        raise ArchitectureError(f"architecture config is missing {key!r}")
    return config[key]


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """Build an untrained model from its architecture config (as stored in a bundle)."""
    kind = _require(config, "kind")
    window = int(_require(config, "window"))
    channels = int(config.get("input_channels", 1))  # the window's channels (conv's "channels" are its filters)
    if window < 8:
        raise ArchitectureError(f"window length must be at least 8, got {window}")
    if channels < 1:
        raise ArchitectureError(f"input_channels: a window needs at least one channel, got {channels}")
    if kind == "dense":
        return DenseAutoencoder(
            window * channels,
            [int(h) for h in _require(config, "hidden")],
            activation=config.get("activation", "relu"),
            output_activation=config.get("output_activation", "sigmoid"),
        )
    if kind == "linear":
        return LinearAutoencoder(window * channels, int(_require(config, "code")))
    if kind == "conv":
        return ConvAutoencoder(
            window,
            [int(c) for c in _require(config, "channels")],
            int(_require(config, "code")),
            kernel=int(config.get("kernel", 7)),
            inputs=channels,
        )
    raise ArchitectureError(f"unknown architecture kind {kind!r}; choose from {list(ARCHITECTURES)}")
