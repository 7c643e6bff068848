"""Security basics: no unpickling anywhere, secrets never logged, the HTTP server binds where it is told."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from prometheus_client import CollectorRegistry

from detector.model.architectures import build_model
from detector.model.bundle import BundleError, ModelBundle, sha256_file
from detector.model.scaler import Scaler
from detector.model.threshold import Threshold
from detector.ops.health import Health
from detector.ops.http_server import make_server

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [ROOT / "detector", ROOT / "trainer", ROOT / "sample_streams"]


def test_no_code_path_can_unpickle() -> None:
    forbidden = [r"\bimport pickle\b", r"\bpickle\.loads?\(", r"\bjoblib\.load\(", r"allow_pickle\s*=\s*True",
                 r"\bdill\b", r"torch\.load\((?![^)]*weights_only\s*=\s*True)"]
    hits = []
    for package in PACKAGES:
        for path in package.rglob("*.py"):
            text = path.read_text()
            hits += [f"{path.relative_to(ROOT)}: {pattern}" for pattern in forbidden if re.search(pattern, text)]
    assert not hits, hits


class _Exploit:
    def __reduce__(self):  # would run on unpickling
        return (os.system, (f"touch {os.environ['TSAD_PWNED']}",))


def test_a_pickled_weights_file_is_refused_not_executed(tmp_path: Path, monkeypatch) -> None:
    arch = {"kind": "linear", "window": 16, "code": 2}
    bundle = ModelBundle.from_model(build_model(arch), name="x", architecture=arch, scaler=Scaler("none"),
                                    threshold=Threshold(1.0, "mean_std"))
    path = bundle.save(tmp_path / "b")
    marker = tmp_path / "pwned"
    monkeypatch.setenv("TSAD_PWNED", str(marker))
    weights = path / "model.safetensors"
    weights.write_bytes(pickle.dumps({"state": _Exploit()}))
    manifest = json.loads((path / "bundle.json").read_text())
    manifest["files"]["model.safetensors"]["sha256"] = sha256_file(weights)  # even with a matching checksum
    (path / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="not a readable safetensors file"):
        ModelBundle.load(path)
    assert not marker.exists()
    torch.save({"w": torch.zeros(1)}, weights)  # a torch pickle checkpoint is refused too
    manifest["files"]["model.safetensors"]["sha256"] = sha256_file(weights)
    (path / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="not a readable safetensors file"):
        ModelBundle.load(path)


def test_serve_never_logs_the_password(tmp_path: Path) -> None:
    config = tmp_path / "detector.yaml"
    config.write_text("kafka:\n  security_protocol: SASL_PLAINTEXT\n  sasl_mechanism: SCRAM-SHA-512\n"
                      "  sasl_username: tsad\nmodel:\n  bundle: /nonexistent/bundle\nhttp:\n  port: 0\n")
    env = {**os.environ, "TSAD_KAFKA_SASL_PASSWORD": "s3cr3t-Value-123"}
    proc = subprocess.run([sys.executable, "-m", "detector", "serve", "--config", str(config)], env=env,
                          capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "bundle directory not found" in output
    assert '"sasl_password": "***"' in output  # the resolved config was logged, masked
    assert "s3cr3t-Value-123" not in output


def test_http_server_binds_to_the_configured_address() -> None:
    server = make_server("127.0.0.1", 0, CollectorRegistry(), Health())
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()
