"""Helpers for tests that run the real worker process against the real broker."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import WorkerProcess, train_sample_bundle  # benchmarks/ is on sys.path (tests/conftest.py)


@pytest.fixture(scope="session")
def sample_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on the committed ECG-like training stream."""
    return train_sample_bundle(tmp_path_factory.mktemp("bundle") / "ecg", epochs=60)


@pytest.fixture
def workers(tmp_path: Path):
    started: list[WorkerProcess] = []

    def make(*args, **kwargs) -> WorkerProcess:
        w = WorkerProcess(tmp_path, *args, **kwargs)
        started.append(w)
        return w

    yield make
    for w in started:
        w.kill()
