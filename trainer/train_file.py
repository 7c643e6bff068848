"""Training files: a model and how to train it, as one flat YAML (or JSON) mapping, validated once.

The keys are `TrainConfig`'s fields; `architecture` holds the model (detector.model.architectures'
ARCHITECTURE_OPTIONS). `base: PRESET` starts from a preset and changes only the keys given (an `architecture`
of the same kind changes only its own keys). Every error names the key. A bundle stores the resolved file
(`training.config`: every key, every default filled in), and `tsad train --config BUNDLE` trains it again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from detector.model.architectures import ArchitectureError, resolve_architecture
from detector.model.scaler import SCALER_KINDS
from detector.model.scoring import SCORE_KINDS
from detector.model.threshold import THRESHOLD_METHODS
from trainer import calibration

LOSSES = ("mae", "mse")
OPTIMIZERS = ("adam", "adamw", "sgd")
NEEDS_VALIDATION = ("f1_optimal", "fpr_quantile", "pot", "max_factor")  # thresholds set on held-out windows


class TrainConfigError(ValueError):
    """A training file or config that cannot be used; the message names the key (and the file)."""


@dataclass(frozen=True)
class TrainConfig:
    preset: str  # the recipe's name, kept in the bundle
    architecture: dict[str, Any]  # as for detector.model.build_model, without "window" (taken from the data)
    scaler: str = "global_minmax"
    loss: str = "mae"  # mae | mse, the training loss (validation loss for early stopping is always MAE)
    optimizer: str = "adam"  # adam (Keras' eps 1e-7) | adamw | sgd
    learning_rate: float = 1e-3
    momentum: float = 0.0  # sgd only
    weight_decay: float = 0.0  # L2 penalty through the optimiser (decoupled for adamw)
    noise_std: float = 0.0  # Gaussian input noise (scaled units) for denoising training, against clean targets
    epochs: int = 20
    batch_size: int = 512
    validation_fraction: float = 0.0  # of the training split, for early stopping and calibration
    patience: int = 0  # epochs without validation improvement before stopping; 0 = train all epochs
    threshold: str = "mean_std"
    threshold_params: dict[str, Any] = field(default_factory=dict)
    per_source_thresholds: bool = False  # calibrate a threshold for each source with enough held-out windows
    per_source_min_windows: int = 30
    score: str = "mean_abs_error"  # the anomaly score (detector.model.scoring.window_scores), kept in the bundle
    pca_variance: float | None = None  # linear models: fit PCA in closed form keeping this share of the variance
    test_size: float = 0.2
    split_seed: int = 21  # the reference split: train_test_split(test_size=0.2, random_state=21)

    def __post_init__(self) -> None:
        for key, value in _checked(self).items():
            object.__setattr__(self, key, value)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The resolved training file."""
        return dataclasses.asdict(self)


FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
_CHOICES: dict[str, tuple[str, ...]] = {"scaler": SCALER_KINDS, "loss": LOSSES, "optimizer": OPTIMIZERS,
                                        "threshold": THRESHOLD_METHODS, "score": SCORE_KINDS}
_INTS = {"epochs": 1, "batch_size": 1, "patience": 0, "per_source_min_windows": 1, "split_seed": 0}  # minimum
# key -> (low, high, low included, high included)
_FLOATS: dict[str, tuple[float, float, bool, bool]] = {
    "learning_rate": (0.0, math.inf, False, False), "momentum": (0.0, 1.0, True, False),
    "weight_decay": (0.0, math.inf, True, False), "noise_std": (0.0, math.inf, True, False),
    "validation_fraction": (0.0, 1.0, True, False), "test_size": (0.0, 1.0, True, False),
    "pca_variance": (0.0, 1.0, False, True)}
_PARAM_RANGES = {"fpr": (0.0, 1.0), "risk": (0.0, 1.0), "initial_quantile": (0.0, 1.0), "factor": (0.0, math.inf)}


def _number(key: str, value: Any) -> float:
    """A float from a number or a numeric string (PyYAML reads `1e-3`, without a dot, as a string)."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TrainConfigError(f"{key}: must be a number, got {value!r}")
    return float(value)


def _in_range(key: str, value: float, low: float, high: float, low_in: bool = False, high_in: bool = False) -> None:
    if not ((low <= value if low_in else low < value) and (value <= high if high_in else value < high)):
        bounds = f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
        raise TrainConfigError(f"{key}: must be in {bounds}, got {value:g}")


def threshold_parameters(method: str) -> tuple[str, ...]:
    """The parameters a threshold method takes (those of its calibration function after the scores)."""
    if method == "f1_optimal":
        return ()
    return tuple(list(inspect.signature(getattr(calibration, method)).parameters)[1:])


def _checked(config: TrainConfig) -> dict[str, Any]:
    """Every field checked, with the key in the message; returns the normalised values."""
    out: dict[str, Any] = {}
    if not isinstance(config.preset, str) or not config.preset:
        raise TrainConfigError(f"preset: must be a non-empty name, got {config.preset!r}")
    for key, choices in _CHOICES.items():
        value = getattr(config, key)
        if value not in choices:
            allowed = " or ".join(choices) if len(choices) == 2 else f"one of {list(choices)}"
            raise TrainConfigError(f"{key}: {value!r} is not allowed; {key} must be {allowed}")
    for key, low in _INTS.items():
        value = getattr(config, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise TrainConfigError(f"{key}: must be an integer of at least {low}, got {value!r}")
    for key, bounds in _FLOATS.items():
        if getattr(config, key) is None and key == "pca_variance":
            continue
        out[key] = _number(key, getattr(config, key))
        _in_range(key, out[key], *bounds)
    if not isinstance(config.per_source_thresholds, bool):
        raise TrainConfigError(f"per_source_thresholds: must be true or false, got {config.per_source_thresholds!r}")
    if not isinstance(config.architecture, Mapping):
        raise TrainConfigError(f"architecture: must be a mapping with a 'kind', got {config.architecture!r}")
    try:
        out["architecture"] = resolve_architecture(config.architecture, strict=True)
    except ArchitectureError as exc:
        raise TrainConfigError(str(exc)) from None
    if any(key in out["architecture"] for key in ("window", "input_channels")):
        raise TrainConfigError("architecture.window: the window length and channels come from the data, not the file")
    out["threshold_params"] = _checked_params(config.threshold, config.threshold_params)
    if config.pca_variance is not None and out["architecture"]["kind"] != "linear":
        raise TrainConfigError(f"pca_variance: needs a linear architecture, architecture.kind is "
                               f"{out['architecture']['kind']!r}")
    if out.get("momentum") and config.optimizer != "sgd":
        raise TrainConfigError(f"momentum: only the sgd optimizer uses it (optimizer is {config.optimizer!r})")
    if config.threshold in NEEDS_VALIDATION and out["validation_fraction"] == 0.0:
        raise TrainConfigError(f"validation_fraction: threshold {config.threshold!r} calibrates on a validation "
                               "split: set validation_fraction > 0")
    return out


def _checked_params(method: str, params: Any) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise TrainConfigError(f"threshold_params: must be a mapping, got {params!r}")
    allowed = threshold_parameters(method)
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in allowed:
            raise TrainConfigError(f"threshold_params.{key}: not a parameter of threshold {method!r} "
                                   f"(its parameters: {list(allowed) or 'none'})")
        out[key] = _number(f"threshold_params.{key}", value)
        if key in _PARAM_RANGES:
            _in_range(f"threshold_params.{key}", out[key], *_PARAM_RANGES[key])
    return out


def config_from_dict(data: Any, where: str = "training file") -> TrainConfig:
    """A TrainConfig from a training file's mapping; `base: PRESET` starts from that preset."""
    from trainer.presets import get_preset  # presets are built from this module

    if not isinstance(data, Mapping):
        raise TrainConfigError(f"{where}: top level must be a mapping of training keys, got {type(data).__name__}")
    data = dict(data)
    base = data.pop("base", None)
    for key in data:
        if key not in FIELDS:
            close = difflib.get_close_matches(str(key), FIELDS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(FIELDS)}, base"
            raise TrainConfigError(f"{where}: {key}: unknown key{hint}")
    try:
        start: dict[str, Any] = get_preset(str(base)).to_dict() if base is not None else {"preset": "custom"}
    except ValueError as exc:
        raise TrainConfigError(f"{where}: base: {exc}") from None
    if "architecture" not in data and "architecture" not in start:
        raise TrainConfigError(f"{where}: architecture: missing (or start from a preset with `base: NAME`)")
    merged = {**start, **data}
    new_arch = data.get("architecture")
    if base is not None and isinstance(new_arch, Mapping) and new_arch.get("kind", start["architecture"]["kind"]) \
            == start["architecture"]["kind"]:
        merged["architecture"] = {**start["architecture"], **new_arch}
    try:
        return TrainConfig(**merged)
    except TrainConfigError as exc:
        raise TrainConfigError(f"{where}: {exc}") from None


def load_train_file(path: str | Path) -> tuple[TrainConfig, int | None]:
    """(config, seed) from a YAML/JSON training file, or from a bundle (its directory or bundle.json: the stored
    resolved file and the seed it was trained with; None for a plain file)."""
    source = Path(path)
    if source.is_dir():
        source = source / "bundle.json"
    if not source.is_file():
        raise TrainConfigError(f"{source}: training file not found")
    try:
        data = yaml.safe_load(source.read_text())
    except yaml.YAMLError as exc:
        raise TrainConfigError(f"{source}: not valid YAML: {exc}") from None
    if isinstance(data, Mapping) and data.get("format") == "tsad-bundle":
        training = data.get("training") or {}
        if not training.get("config"):
            raise TrainConfigError(f"{source}: the bundle records no training config")
        return config_from_dict(training["config"], f"{source} (training.config)"), training.get("seed")
    return config_from_dict(data, str(source)), None


def with_overrides(config: TrainConfig, overrides: Mapping[str, Any], where: str = "command line") -> TrainConfig:
    """`config` with single keys replaced (`architecture.hidden`, `threshold_params.fpr` reach inside); a new
    threshold method without new parameters starts from none."""
    data = config.to_dict()
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if rest and head in ("architecture", "threshold_params"):
            data[head] = {**data[head], rest: value}
        else:
            data[key] = value
    if data["threshold"] != config.threshold and not any(k.startswith("threshold_params") for k in overrides):
        data["threshold_params"] = {}
    return config_from_dict(data, where)


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings (VALUE read as YAML: `--set architecture.hidden=[64,32,8]`) into a mapping."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise TrainConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. loss=mse")
        out[key.strip()] = yaml.safe_load(text) if text.strip() else None
    return out


class _Dumper(yaml.SafeDumper):
    """Block mappings, inline lists (`hidden: [32, 16, 8]`)."""


_Dumper.add_representer(list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data,
                                                                              flow_style=True))


def dump_train_file(config: TrainConfig, header: str = "") -> str:
    """The resolved file as YAML, with `header` lines as comments."""
    comments = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comments + yaml.dump(config.to_dict(), Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                                width=120, allow_unicode=True)
