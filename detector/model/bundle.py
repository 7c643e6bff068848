"""The model bundle: everything the detector needs to rebuild and run a trained model, and nothing it must trust.

A bundle is a directory:

    bundle.json         format version, name/version, architecture, window length, channel names (in the order
                        of a window's rows on the wire and in the model), scaler, threshold,
                        metrics, training provenance (data fingerprint, preset, seed), file checksums
    model.safetensors   the weights (safetensors: no pickle, so loading an untrusted file cannot run code)

`ModelBundle.load` verifies every part and raises `BundleError` naming the file and the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from detector import __version__
from detector.model.architectures import ArchitectureError, build_model
from detector.model.scaler import Scaler, ScalerError
from detector.model.scoring import SCORE_KINDS, Scorer
from detector.model.threshold import Threshold

BUNDLE_FORMAT = "tsad-bundle"
BUNDLE_FORMAT_VERSION = 2  # 2 added `channels`; version 1 bundles (one channel) still load
READABLE_VERSIONS = (1, 2)
SINGLE_CHANNEL = ("value",)
MANIFEST = "bundle.json"
WEIGHTS = "model.safetensors"
_REQUIRED = ("name", "version", "window", "architecture", "scaler", "threshold", "files")


class BundleError(RuntimeError):
    """A bundle that is missing, corrupt or inconsistent; the message names the file and the problem."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ModelBundle:
    name: str
    version: str
    window: int
    architecture: dict[str, Any]
    scaler: Scaler
    threshold: Threshold
    state_dict: dict[str, torch.Tensor]
    channels: tuple[str, ...] = SINGLE_CHANNEL
    score: str = "mean_abs_error"  # detector.model.scoring.SCORE_KINDS
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    package_version: str = __version__

    @staticmethod
    def from_model(
        model: nn.Module,
        *,
        name: str,
        architecture: dict[str, Any],
        scaler: Scaler,
        threshold: Threshold,
        metrics: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        version: str | None = None,
        channels: tuple[str, ...] = SINGLE_CHANNEL,
        score: str = "mean_abs_error",
    ) -> ModelBundle:
        state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
        if version is None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            version = f"{stamp}-{_state_fingerprint(state)[:8]}"
        return ModelBundle(
            name=name,
            version=version,
            window=int(architecture["window"]),
            architecture=dict(architecture),
            scaler=scaler,
            threshold=threshold,
            state_dict=state,
            channels=tuple(channels),
            score=score,
            metrics=dict(metrics or {}),
            training=dict(training or {}),
        )

    @property
    def width(self) -> int:
        """Values in one window row: channels × window."""
        return len(self.channels) * self.window

    def scorer(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Scorer:
        """The model, its scaling and its score, ready to score raw windows (what the worker and reports use)."""
        return Scorer(self.build_model(), self.scaler, self.window, device, dtype, len(self.channels), self.score)

    def build_model(self) -> nn.Module:
        model = build_model(self.architecture)
        model.load_state_dict(self.state_dict)
        return model.eval()

    def manifest(self, weights_sha256: str) -> dict[str, Any]:
        return {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "created": self.created,
            "package_version": self.package_version,
            "window": self.window,
            "channels": list(self.channels),
            "architecture": self.architecture,
            "scaler": self.scaler.to_dict(),
            "score": {"kind": self.score, "space": "scaled"},
            "threshold": self.threshold.to_dict(),
            "metrics": self.metrics,
            "training": self.training,
            "files": {WEIGHTS: {"sha256": weights_sha256}},
        }

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the bundle; weights first, manifest last (a reader never sees a manifest without weights)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        weights = out / WEIGHTS
        save_file(self.state_dict, str(weights), metadata={"name": self.name, "version": self.version})
        manifest = self.manifest(sha256_file(weights))
        tmp = out / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
        tmp.replace(out / MANIFEST)
        return out

    @staticmethod
    def load(directory: str | os.PathLike[str]) -> ModelBundle:
        root = Path(directory)
        if not root.is_dir():
            raise BundleError(f"{root}: bundle directory not found")
        manifest = _read_manifest(root / MANIFEST)
        weights = root / WEIGHTS
        if not weights.is_file():
            raise BundleError(f"{weights}: weights file missing")
        expected = manifest["files"].get(WEIGHTS, {}).get("sha256")
        actual = sha256_file(weights)
        if expected != actual:
            raise BundleError(
                f"{weights}: sha256 mismatch ({MANIFEST} records {expected}, file is {actual}); "
                "the weights were corrupted or replaced"
            )
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError, ValueError) as exc:
            raise BundleError(f"{weights}: not a readable safetensors file: {exc}") from exc
        try:
            bundle = ModelBundle(
                name=str(manifest["name"]),
                version=str(manifest["version"]),
                window=int(manifest["window"]),
                architecture=dict(manifest["architecture"]),
                scaler=Scaler.from_dict(manifest["scaler"]),
                threshold=Threshold.from_dict(manifest["threshold"]),
                state_dict=state,
                channels=tuple(str(c) for c in manifest.get("channels", SINGLE_CHANNEL)),
                score=str(dict(manifest.get("score") or {}).get("kind", "mean_abs_error")),
                metrics=dict(manifest.get("metrics", {})),
                training=dict(manifest.get("training", {})),
                created=str(manifest.get("created", "")),
                package_version=str(manifest.get("package_version", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{root / MANIFEST}: malformed field: {exc!r}") from exc
        _verify_consistency(bundle, root)
        return bundle


def _state_fingerprint(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].float().numpy().tobytes())
    return digest.hexdigest()


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise BundleError(f"{path}: manifest missing (is this a tsad bundle directory?)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: not a tsad bundle manifest (format != {BUNDLE_FORMAT!r})")
    if manifest.get("format_version") not in READABLE_VERSIONS:
        raise BundleError(
            f"{path}: unsupported format_version {manifest.get('format_version')!r} "
            f"(this tsad reads versions {', '.join(map(str, READABLE_VERSIONS))})"
        )
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise BundleError(f"{path}: missing field(s) {', '.join(missing)}")
    if not isinstance(manifest.get("channels", []), list):
        raise BundleError(f"{path}: field 'channels' must be a list of channel names")
    if not isinstance(manifest["files"], dict):
        raise BundleError(f"{path}: field 'files' must be an object")
    return manifest


def _verify_consistency(bundle: ModelBundle, root: Path) -> None:
    manifest = root / MANIFEST
    if int(bundle.architecture.get("window", -1)) != bundle.window:
        raise BundleError(
            f"{manifest}: window {bundle.window} does not match architecture window "
            f"{bundle.architecture.get('window')}"
        )
    if bundle.score not in SCORE_KINDS:
        raise BundleError(f"{manifest}: unknown score kind {bundle.score!r}; this tsad knows {list(SCORE_KINDS)}")
    channels = bundle.channels
    if not channels or len(set(channels)) != len(channels) or not all(channels):
        raise BundleError(f"{manifest}: channels must be distinct non-empty names, got {list(channels)}")
    if int(bundle.architecture.get("input_channels", 1)) != len(channels):
        raise BundleError(f"{manifest}: {len(channels)} channel name(s) but the architecture takes "
                          f"{bundle.architecture.get('input_channels', 1)} input channel(s)")
    try:
        bundle.scaler.offset_and_scale(bundle.window, len(channels))
        model = build_model(bundle.architecture)
    except (ArchitectureError, ScalerError, KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{manifest}: {exc}") from exc
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    actual = {k: tuple(v.shape) for k, v in bundle.state_dict.items()}
    if expected.keys() != actual.keys():
        missing = sorted(expected.keys() - actual.keys())
        extra = sorted(actual.keys() - expected.keys())
        raise BundleError(
            f"{root / WEIGHTS}: tensors do not match the architecture (missing {missing}, unexpected {extra})"
        )
    wrong = [f"{k}: {actual[k]} != {expected[k]}" for k in expected if expected[k] != actual[k]]
    if wrong:
        raise BundleError(f"{root / WEIGHTS}: tensor shapes do not match the architecture: {'; '.join(wrong)}")
