from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
sys.path.insert(0, str(DEPLOY / "tools"))


def require_tool(name: str) -> str:
    """Path of a command-line tool; skipped without it in a user's checkout, a failure in CI."""
    found = shutil.which(name) or (shutil.which(name, path=str(Path(sys.executable).parent)))
    if found:
        return found
    if os.environ.get("TSAD_REQUIRE_DEPLOY_TOOLS") == "1":
        pytest.fail(f"{name} is required here (.ci/run installs it)")
    pytest.skip(f"{name} is not installed (.ci/run installs it)")
