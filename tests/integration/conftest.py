"""Helpers for tests that run the real worker process against the real broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from sample_streams.local_kafka import free_port

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_streams" / "data"


@pytest.fixture(scope="session")
def sample_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on the committed ECG-like training stream (short training: enough to separate)."""
    from trainer.pipeline import train
    from trainer.presets import get_preset
    from trainer.window_files import load_window_file

    out = tmp_path_factory.mktemp("bundle") / "ecg"
    result = train(load_window_file(SAMPLES / "ecg_train.jsonl"), get_preset("default").replace(epochs=60),
                   seed=0, name="sample-ecg", on_epoch=None)
    result.bundle.save(out)
    return out


class WorkerProcess:
    """`python -m detector serve` with a YAML config; HTTP on a free port."""

    def __init__(self, tmp: Path, bootstrap: str, bundle: Path, topics: dict[str, str | None], group: str,
                 name: str = "w", **sections: dict) -> None:
        self.port = free_port()
        config = {
            "kafka": {"bootstrap_servers": bootstrap, "group_id": group, "client_id": name},
            "topics": topics,
            "model": {"bundle": str(bundle), "device": "cpu"},
            "http": {"host": "127.0.0.1", "port": self.port},
            "worker": {"lag_interval_s": 1.0, "shutdown_timeout_s": 15},
        }
        for key, extra in sections.items():
            config.setdefault(key, {}).update(extra)
        self.config_path = tmp / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = tmp / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "detector", "serve", "--config", str(self.config_path)],
                                     stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
        return self

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, OSError):  # not listening yet, or gone
            return 0, ""

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log()
            if self.get("/readyz")[0] == 200:
                return
            time.sleep(0.3)
        raise AssertionError(f"worker not ready after {timeout} s:\n{self.log()}")

    def metric(self, name: str, **labels: str) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        total = 0.0
        for family in text_string_to_metric_families(self.get("/metrics")[1]):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


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
