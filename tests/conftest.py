"""Shared fixtures: the reference ECG5000 copy (read through $TSAD_ECG5000) and small synthetic data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def ecg5000_path() -> Path:
    value = os.environ.get("TSAD_ECG5000")
    if not value:
        pytest.skip("TSAD_ECG5000 is not set: the reference ECG5000 copy (../shared/datasets/ecg5000) is absent")
    path = Path(value)
    if not path.is_file():
        pytest.skip(f"TSAD_ECG5000={value} does not exist")
    return path


@pytest.fixture
def sine_windows() -> np.ndarray:
    """600 noisy sine windows of 140 samples: an easy 'normal' class."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 4 * np.pi, 140)
    phase = rng.uniform(0, 2 * np.pi, size=(600, 1))
    return (np.sin(t + phase) + 0.05 * rng.normal(size=(600, 140))).astype(np.float32)
