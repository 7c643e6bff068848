"""The CLI on small real files: telemetry series end to end, and clean errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tsad.cli import main


def _series(path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 140 * 60
    values = np.sin(np.arange(n) / 7) + 0.05 * rng.normal(size=n)
    labels = np.zeros(n, dtype=int)
    for start in range(140 * 5, n, 140 * 6):  # every sixth window gets a spike burst
        values[start + 40 : start + 50] += 4
        labels[start + 40 : start + 50] = 1
    rows = enumerate(zip(values, labels, strict=True))
    lines = ["timestamp,value,label"] + [f"{i},{v:.5f},{y}" for i, (v, y) in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_and_evaluate_a_series(tmp_path: Path, capsys) -> None:
    series = _series(tmp_path / "s.csv")
    # 100 epochs: split by time, the test part is the series' end, and 40 epochs left the model undertrained there
    code = main(["train", "--series", str(series), "--preset", "default", "--epochs", "100",
                 "--out", str(tmp_path / "b"), "--json", "--quiet"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metrics"]["test"]["roc_auc"] > 0.95
    assert (tmp_path / "b" / "bundle.json").is_file()
    code = main(["evaluate", "--bundle", str(tmp_path / "b"), "--series", str(series), "--split", "all",
                 "--out", str(tmp_path / "r"), "--json"])
    assert code == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["metrics"]["n"] == 60
    assert (tmp_path / "r" / "report.html").is_file()


def test_bad_data_exits_2_with_named_problem(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n1,2\n2,x\n")
    assert main(["train", "--series", str(bad), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv: line 3, column 1: non-numeric value 'x'" in err


def test_bad_bundle_exits_2(tmp_path: Path, capsys) -> None:
    assert main(["evaluate", "--bundle", str(tmp_path), "--series", "x.csv"]) == 2
    assert "manifest missing" in capsys.readouterr().err


def test_unknown_preset(tmp_path: Path, capsys) -> None:
    assert main(["train", "--series", "x", "--preset", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err


def test_version(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "tsad" in capsys.readouterr().out


def test_unlabelled_series_falls_back_to_a_false_positive_rate_threshold(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(1)
    values = np.sin(np.arange(140 * 40) / 7) + 0.05 * rng.normal(size=140 * 40)
    path = tmp_path / "u.csv"
    path.write_text("timestamp,value\n" + "".join(f"{i},{v:.5f}\n" for i, v in enumerate(values)))
    assert main(["train", "--series", str(path), "--epochs", "5", "--out", str(tmp_path / "b"), "--json",
                 "--quiet"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["threshold"]["method"] == "fpr_quantile"
    assert "no labels" in captured.err
