"""Autoencoder architectures for fixed-length windows of C channels × L samples.

Every architecture is described by a plain JSON-able dict (stored in the model bundle) and rebuilt from it by
`build_model`. A window travels as one row of C·L values, channel-major (channel 0's L samples, then channel 1's
…); the model maps a batch of scaled rows `[n, C·L]` to reconstructions of the same shape. Dense and linear models
see the row as it is; the convolutional one reshapes it to `[n, C, L]` and uses the channels as input channels.
C = 1 (the default) is exactly the single-channel model.

`ARCHITECTURE_OPTIONS` lists each kind's keys and their defaults; a default is what the model did before the key
existed, so every config already stored in a bundle rebuilds the same model. `resolve_architecture` fills them in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

ARCHITECTURES = ("dense", "linear", "conv")
INITS = ("xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "torch")  # torch: PyTorch's own default

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
_REQUIRED = object()

# kind → key → default (_REQUIRED: no default). "window" and "input_channels" come from the data.
ARCHITECTURE_OPTIONS: dict[str, dict[str, Any]] = {
    "dense": {"hidden": _REQUIRED, "activation": "relu", "output_activation": "sigmoid", "init": "xavier_uniform"},
    "linear": {"code": _REQUIRED, "init": "torch"},
    "conv": {"channels": _REQUIRED, "code": _REQUIRED, "kernel": 7, "stride": 2, "activation": "elu",
             "output_activation": None, "output_conv": False, "init": "torch"},
}
_DATA_KEYS = ("window", "input_channels")


class ArchitectureError(ValueError):
    """An architecture config that cannot be built; the message names the key."""


def _activation(name: str | None) -> nn.Module:
    if name is None or name == "none":
        return nn.Identity()
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ArchitectureError(f"unknown activation {name!r}; choose from {sorted(_ACTIVATIONS)} or none") from None


def _initialise(model: nn.Module, scheme: str) -> None:
    """Re-initialise every (transposed) convolution and dense layer, biases to zero; 'torch' keeps PyTorch's."""
    if scheme == "torch":
        return
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv1d | nn.ConvTranspose1d):
            if scheme == "xavier_uniform":  # Keras' default (glorot_uniform): the reference recipes
                nn.init.xavier_uniform_(module.weight)
            elif scheme == "xavier_normal":
                nn.init.xavier_normal_(module.weight)
            elif scheme == "he_uniform":
                nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")
            else:
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class DenseAutoencoder(nn.Module):
    """Mirror-image MLP: window → hidden[0] → … → hidden[-1] (code) → … → hidden[0] → window.

    With hidden=[32, 16, 8], ReLU and a sigmoid output this is the reference (TensorFlow tutorial) model.
    """

    def __init__(self, window: int, hidden: list[int], activation: str = "relu",
                 output_activation: str | None = "sigmoid", init: str = "xavier_uniform") -> None:
        super().__init__()
        if not hidden:
            raise ArchitectureError("architecture.hidden: dense architecture needs at least one hidden layer size")
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
        _initialise(self, init)  # xavier_uniform (Keras' Dense default) keeps the seed preset the reference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class LinearAutoencoder(nn.Module):
    """window → code → window with no non-linearity: spans the same subspace as PCA with `code` components."""

    def __init__(self, window: int, code: int, init: str = "torch") -> None:
        super().__init__()
        self.encoder = nn.Linear(window, code)
        self.decoder = nn.Linear(code, window)
        _initialise(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class ConvAutoencoder(nn.Module):
    """1-D convolutional encoder (strided convs, `channels` filters each) with an optional dense bottleneck of
    `code` units (None: none) and a transposed-conv decoder; the window's channels are the first convolution's
    input channels. The decoder ends in a transposed conv back to the window's channels, or, with `output_conv`,
    mirrors every filter count and ends in a stride-1 convolution (the TensorFlow denoising tutorial's layout)."""

    def __init__(self, window: int, channels: list[int], code: int | None, kernel: int = 7, inputs: int = 1,
                 stride: int = 2, activation: str = "elu", output_activation: str | None = None,
                 output_conv: bool = False, init: str = "torch") -> None:
        super().__init__()
        if not channels:
            raise ArchitectureError("architecture.channels: conv architecture needs at least one channel count")
        if kernel % 2 == 0:
            raise ArchitectureError(f"architecture.kernel: conv kernel must be odd, got {kernel}")
        self.window = window
        self.inputs = inputs
        pad = kernel // 2
        enc: list[nn.Module] = []
        length, width = window, inputs
        for ch in channels:
            enc += [nn.Conv1d(width, ch, kernel, stride=stride, padding=pad), _activation(activation)]
            length = (length + 2 * pad - kernel) // stride + 1
            width = ch
        self.encoder = nn.Sequential(*enc)
        self.feature_shape = (width, length)
        self.to_code: nn.Module | None = None
        if code is not None:
            self.to_code = nn.Linear(width * length, code)
            self.from_code = nn.Linear(code, width * length)
            self.code_activation = _activation(activation)
        dec: list[nn.Module] = []
        widths = list(reversed(channels)) if output_conv else [*reversed(channels[:-1]), inputs]
        for ch in widths:
            dec += [nn.ConvTranspose1d(width, ch, kernel, stride=stride, padding=pad, output_padding=stride - 1),
                    _activation(activation)]
            width = ch
        if output_conv:
            dec += [nn.Conv1d(width, inputs, kernel, padding=pad), _activation(output_activation)]
        else:
            dec[-1] = _activation(output_activation)  # none by default: a linear output layer
        self.decoder = nn.Sequential(*dec)
        _initialise(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        h = self.encoder(x.view(n, self.inputs, self.window))
        if self.to_code is not None:
            h = self.from_code(self.code_activation(self.to_code(h.flatten(1)))).view(n, *self.feature_shape)
        y = self.decoder(h)
        # Transposed convs may overshoot the window length by a few samples; crop (or pad) back to it.
        if y.shape[2] >= self.window:
            y = y[:, :, : self.window]
        else:
            y = torch.nn.functional.pad(y, (0, self.window - y.shape[2]))
        return y.reshape(n, self.inputs * self.window)


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value or value < 1:
        raise ArchitectureError(f"architecture.{key}: must be a positive integer, got {value!r}")
    return int(value)


def _check(kind: str, key: str, value: Any) -> Any:
    """One option's value, checked and normalised."""
    if key in ("hidden", "channels"):
        if not isinstance(value, list | tuple):
            raise ArchitectureError(f"architecture.{key}: must be a list of positive integers, got {value!r}")
        if not value:
            what = "hidden layer size" if key == "hidden" else "channel count"
            raise ArchitectureError(f"architecture.{key}: {kind} architecture needs at least one {what}")
        return [_positive_int(key, v) for v in value]
    if key == "code":
        return None if value is None and kind == "conv" else _positive_int(key, value)
    if key in ("kernel", "stride"):
        number = _positive_int(key, value)
        if key == "kernel" and number % 2 == 0:
            raise ArchitectureError(f"architecture.kernel: conv kernel must be odd, got {number}")
        return number
    if key in ("activation", "output_activation"):
        if value is not None and value != "none" and value not in _ACTIVATIONS:
            raise ArchitectureError(f"architecture.{key}: unknown activation {value!r}; choose from "
                                    f"{sorted(_ACTIVATIONS)} or none")
        return None if value == "none" and key == "output_activation" else value
    if key == "init":
        if value not in INITS:
            raise ArchitectureError(f"architecture.init: unknown initialisation {value!r}; choose from {list(INITS)}")
        return value
    if key == "output_conv":
        if not isinstance(value, bool):
            raise ArchitectureError(f"architecture.output_conv: must be true or false, got {value!r}")
        return value
    return _positive_int(key, value)  # window, input_channels


def resolve_architecture(config: Mapping[str, Any], strict: bool = True) -> dict[str, Any]:
    """The config with every option of its kind checked and its defaults filled in. `strict` (training files)
    also rejects keys the kind does not have; bundles are read leniently."""
    kind = _require(config, "kind")
    if kind not in ARCHITECTURE_OPTIONS:
        raise ArchitectureError(f"architecture.kind: unknown architecture kind {kind!r}; choose from "
                                f"{list(ARCHITECTURES)}")
    options = ARCHITECTURE_OPTIONS[kind]
    unknown = sorted(set(config) - set(options) - {"kind", *_DATA_KEYS})
    if strict and unknown:
        raise ArchitectureError(f"architecture.{unknown[0]}: not an option of a {kind} architecture; its options: "
                                f"{sorted(options)}")
    resolved: dict[str, Any] = {"kind": kind}
    for key, default in options.items():
        if default is _REQUIRED:
            _require(config, key)
        resolved[key] = _check(kind, key, config.get(key, default))
    resolved.update({key: _check(kind, key, config[key]) for key in _DATA_KEYS if key in config})
    return resolved


def _require(config: Mapping[str, Any], key: str) -> Any:
    if key not in config:
        raise ArchitectureError(f"architecture config is missing {key!r} (architecture.{key})")
    return config[key]


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """Build an untrained model from its architecture config (as stored in a bundle)."""
    c = resolve_architecture(config, strict=False)
    window = int(_require(config, "window"))
    channels = int(c.get("input_channels", 1))  # the window's channels (conv's "channels" are its filters)
    if window < 8:
        raise ArchitectureError(f"architecture.window: window length must be at least 8, got {window}")
    if c["kind"] == "dense":
        return DenseAutoencoder(window * channels, c["hidden"], c["activation"], c["output_activation"], c["init"])
    if c["kind"] == "linear":
        return LinearAutoencoder(window * channels, c["code"], c["init"])
    return ConvAutoencoder(window, c["channels"], c["code"], kernel=c["kernel"], inputs=channels, stride=c["stride"],
                           activation=c["activation"], output_activation=c["output_activation"],
                           output_conv=c["output_conv"], init=c["init"])
