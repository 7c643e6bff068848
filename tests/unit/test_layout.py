"""The shape of the code, checked: which top-level package may import which, where the fakes live, module sizes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tsad", "trainer", "detector", "sample_streams")
# who may import whom: detector is the production core; the trainer builds on it; the stream tools (replay, demo)
# use both; the `tsad` command wires them all
ALLOWED = {
    "detector": set(),
    "trainer": {"detector"},
    "sample_streams": {"detector", "trainer"},
    "tsad": {"detector", "trainer", "sample_streams"},
}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_top_level_packages_import_only_downwards(package: str) -> None:
    wrong = {f"{path.relative_to(ROOT)} imports {name}" for path in _modules(package) for name in _imports(path)
             if name.split(".")[0] in PACKAGES and name.split(".")[0] not in ALLOWED[package] | {package}}
    assert not wrong


def test_the_allowed_imports_have_no_cycle() -> None:
    seen: list[str] = []

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, f"import cycle: {' -> '.join((*path, package))}"
        for dependency in ALLOWED[package]:
            visit(dependency, (*path, package))
        seen.append(package)

    for package in PACKAGES:
        visit(package, ())


def test_in_memory_fakes_stay_out_of_production_code() -> None:
    users = [str(path.relative_to(ROOT)) for package in PACKAGES for path in _modules(package)
             if "detector.testing" in _imports(path)]
    assert users == []


def test_no_module_is_much_over_300_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for package in PACKAGES for p in _modules(package)
            if (n := len(p.read_text().splitlines())) > 320}
    assert long == {}


def test_the_worker_class_only_runs_the_loop() -> None:
    tree = ast.parse((ROOT / "detector" / "pipeline" / "worker.py").read_text())
    worker = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Worker")
    assert worker.end_lineno is not None
    assert worker.end_lineno - worker.lineno < 150
    loop_branches = [n for n in ast.walk(worker) if isinstance(n, ast.Attribute) and "exactly_once" in n.attr]
    assert loop_branches == []  # exactly-once lives in the commit strategy


def test_the_version_is_written_in_one_place() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'attr = "detector.__version__"' in pyproject
    hits = [str(p.relative_to(ROOT)) for package in PACKAGES for p in _modules(package)
            if "__version__ = " in p.read_text()]
    assert hits == ["detector/__init__.py"]
