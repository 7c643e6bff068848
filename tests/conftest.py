"""Shared fixtures: the reference ECG5000 copy (read through $TSAD_ECG5000) and small synthetic data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

# benchmarks/ holds the process harness, fault scenarios and fuzzer that tests share with the scripts.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


# Files that start three-node clusters: under pytest-xdist they run on one process, one after the other, so that two
# clusters (six JVMs beside the session brokers) never compete for this machine's two cores against 6-9 s timeouts.
ONE_PROCESS_GROUPS = {"tests/integration/test_cluster_faults.py": "three-node-clusters",
                      "tests/integration/test_local_cluster.py": "three-node-clusters"}


def work_unit(nodeid: str) -> str:
    """What pytest-xdist hands one process whole: the test's file, or its file's group."""
    path = nodeid.split("::", 1)[0]
    return ONE_PROCESS_GROUPS.get(path, path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """`pytest -n 2` (.ci/run): each test file runs whole on one process (its module fixtures start once), the files
    of ONE_PROCESS_GROUPS together. (Marks cannot do this: xdist rewrites node ids before a conftest's hooks run.)"""
    from xdist.scheduler import LoadFileScheduling

    class FileGroups(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return FileGroups(config, log)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def ecg5000_path() -> Path:
    value = os.environ.get("TSAD_ECG5000")
    if not value:
        pytest.skip("TSAD_ECG5000 is not set: the reference ECG5000 copy (../shared/datasets/ecg5000) is absent")
    path = Path(value)
    if not path.is_file():
        pytest.skip(f"TSAD_ECG5000={value} does not exist")
    return path


@pytest.fixture(scope="session")
def skab_dir() -> Path:
    """The shared SKAB copy (read through $TSAD_SKAB, which .ci/run sets and requires)."""
    value = os.environ.get("TSAD_SKAB")
    if not value:
        pytest.skip("TSAD_SKAB is not set: the SKAB copy (../shared/datasets/skab) is absent")
    path = Path(value)
    if not (path / "valve1" / "0.csv").is_file():
        pytest.skip(f"TSAD_SKAB={value} does not hold SKAB (valve1/0.csv missing)")
    return path


@pytest.fixture
def sine_windows() -> np.ndarray:
    """600 noisy sine windows of 140 samples: an easy 'normal' class."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 4 * np.pi, 140)
    phase = rng.uniform(0, 2 * np.pi, size=(600, 1))
    return (np.sin(t + phase) + 0.05 * rng.normal(size=(600, 140))).astype(np.float32)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory):
    """One real Apache Kafka broker for the whole test run (skipped without Java/Maven, unless CI requires it)."""
    from sample_streams.local_kafka import KafkaLauncherError, LocalKafka

    broker = LocalKafka(work_dir=tmp_path_factory.mktemp("kafka"))
    try:
        broker.start()
    except KafkaLauncherError as exc:
        if os.environ.get("TSAD_REQUIRE_KAFKA") == "1":
            pytest.fail(f"the local Kafka broker is required here but could not start: {exc}")
        pytest.skip(f"no local Kafka broker: {exc}")
    yield broker
    broker.stop()


@pytest.fixture
def new_topic(kafka):
    """Factory: a fresh, uniquely named topic with `partitions` partitions on the session broker."""
    import uuid

    from sample_streams.topics import ensure_topics

    def make(prefix: str = "t", partitions: int = 1) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        ensure_topics(kafka.bootstrap, {name: partitions})
        return name

    return make
