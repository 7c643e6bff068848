"""ensure_jars: processes that need the broker's jars at the same time (pytest -n 2 on a fresh machine) fetch them
once, and each gets the complete directory."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from sample_streams.local_kafka import ensure_jars

FAKE_MVN = """#!/bin/sh
# stands in for Maven: counts its runs, takes a while, then writes one jar into -DoutputDirectory
echo run >> "{runs}"
sleep 1
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${{arg#-DoutputDirectory=}}";; esac
done
mkdir -p "$out" && echo jar > "$out/kafka.jar"
"""


def test_concurrent_callers_fetch_the_jars_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir, runs = tmp_path / "bin", tmp_path / "runs"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(FAKE_MVN.format(runs=runs))
    mvn.chmod(mvn.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    cache = tmp_path / "cache"
    with ProcessPoolExecutor(3) as pool:
        libs = list(pool.map(ensure_jars, [cache] * 3))
    assert libs == [cache / "lib"] * 3
    assert (cache / "lib" / "kafka.jar").read_text() == "jar\n"
    assert runs.read_text().count("run") == 1
