from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detector.model.architectures import build_model
from detector.model.bundle import BundleError, ModelBundle
from detector.model.scaler import Scaler
from detector.model.scoring import Scorer
from detector.model.threshold import Threshold

ARCH = {"kind": "dense", "window": 140, "hidden": [16, 8], "activation": "relu", "output_activation": None}


@pytest.fixture
def saved(tmp_path: Path, sine_windows: np.ndarray) -> tuple[Path, ModelBundle]:
    bundle = ModelBundle.from_model(
        build_model(ARCH), name="t", architecture=ARCH, scaler=Scaler.fit("feature_standard", sine_windows),
        threshold=Threshold(0.5, "mean_std", {"k": 1.0}), metrics={"x": 1}, training={"seed": 3},
    )
    return bundle.save(tmp_path / "bundle"), bundle


def test_round_trip_scores_identically(saved, sine_windows: np.ndarray) -> None:
    path, original = saved
    loaded = ModelBundle.load(path)
    assert (loaded.name, loaded.version, loaded.window) == (original.name, original.version, 140)
    assert loaded.threshold == original.threshold and loaded.scaler == original.scaler
    assert loaded.training == {"seed": 3} and loaded.metrics == {"x": 1}
    a = Scorer(original.build_model(), original.scaler, 140).score(sine_windows[:50])
    b = Scorer(loaded.build_model(), loaded.scaler, 140).score(sine_windows[:50])
    np.testing.assert_array_equal(a.scores, b.scores)
    assert b.errors.shape == (50, 140)


def _edit_manifest(path: Path, change) -> None:
    manifest = json.loads((path / "bundle.json").read_text())
    change(manifest)
    (path / "bundle.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda p: (p / "bundle.json").unlink(), r"bundle.json: manifest missing"),
        (lambda p: (p / "bundle.json").write_text("{not json"), r"bundle.json: not valid JSON"),
        (lambda p: _edit_manifest(p, lambda m: m.update(format="other")), r"bundle.json: not a tsad bundle"),
        (lambda p: _edit_manifest(p, lambda m: m.update(format_version=99)), r"unsupported format_version 99"),
        (lambda p: _edit_manifest(p, lambda m: m.pop("threshold")), r"bundle.json: missing field\(s\) threshold"),
        (lambda p: (p / "model.safetensors").unlink(), r"model.safetensors: weights file missing"),
        (lambda p: (p / "model.safetensors").write_bytes(b"\0" * 100), r"model.safetensors: sha256 mismatch"),
        (lambda p: _edit_manifest(p, lambda m: m.update(window=100)), r"window 100 does not match"),
        (lambda p: _edit_manifest(p, lambda m: m["architecture"].update(hidden=[32, 8])),
         r"model.safetensors: tensor shapes do not match the architecture"),
        (lambda p: _edit_manifest(p, lambda m: m["architecture"].update(kind="transformer")),
         r"unknown architecture kind 'transformer'"),
        (lambda p: _edit_manifest(p, lambda m: m["scaler"]["params"].update(mean=[0.0] * 3)),
         r"scaler has 3 positions but the window length is 140"),
        (lambda p: _edit_manifest(p, lambda m: m["threshold"].update(value="abc")), r"bundle.json: malformed field"),
    ],
)
def test_corrupt_bundles_name_the_file_and_problem(saved, corrupt, message: str) -> None:
    path, _ = saved
    corrupt(path)
    with pytest.raises(BundleError, match=message):
        ModelBundle.load(path)


def test_unreadable_weights_with_matching_checksum(saved) -> None:
    path, _ = saved
    (path / "model.safetensors").write_bytes(b"garbage that is not safetensors")
    from detector.model.bundle import sha256_file

    digest = sha256_file(path / "model.safetensors")
    _edit_manifest(path, lambda m: m["files"]["model.safetensors"].update(sha256=digest))
    with pytest.raises(BundleError, match="not a readable safetensors file"):
        ModelBundle.load(path)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="bundle directory not found"):
        ModelBundle.load(tmp_path / "nowhere")
