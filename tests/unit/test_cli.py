"""The CLI on small real files: telemetry series end to end, and clean errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

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


def test_presets_lists_every_preset_and_shows_one_as_a_training_file(capsys) -> None:
    from trainer.presets import PRESETS
    from trainer.train_file import config_from_dict

    assert main(["presets"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(PRESETS)
    assert main(["presets", "show", "conv-denoising"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# tsad training file: preset conv-denoising\n")
    assert config_from_dict(yaml.safe_load(text)) == PRESETS["conv-denoising"]
    assert main(["presets", "show", "nope"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err


def test_train_from_a_file_with_overrides_then_again_from_its_bundle(tmp_path: Path, capsys) -> None:
    from detector.model.bundle import ModelBundle

    series = _series(tmp_path / "s.csv")
    assert main(["presets", "show", "basic"]) == 0
    config = tmp_path / "train.yaml"
    config.write_text(capsys.readouterr().out.replace("preset: basic", "preset: my-basic"))
    assert main(["train", "--series", str(series), "--config", str(config), "--epochs", "2", "--set",
                 "architecture.hidden=[16]", "--set", "loss=mae", "--seed", "3", "--out", str(tmp_path / "b1"),
                 "--quiet"]) == 0
    first = ModelBundle.load(tmp_path / "b1")
    stored = first.training["config"]
    assert (stored["preset"], stored["epochs"], stored["architecture"]["hidden"], stored["loss"]) == (
        "my-basic", 2, [16], "mae")
    assert first.name == "tsad-my-basic" and first.training["seed"] == 3
    # the bundle's own file and seed: the same model again
    assert main(["train", "--series", str(series), "--config", str(tmp_path / "b1"), "--out", str(tmp_path / "b2"),
                 "--quiet"]) == 0
    second = ModelBundle.load(tmp_path / "b2")
    assert second.training["config"] == stored and second.training["seed"] == 3
    assert all(torch.equal(t, second.state_dict[k]) for k, t in first.state_dict.items())
    assert second.threshold == first.threshold


def test_a_bad_training_file_exits_2_naming_the_key(tmp_path: Path, capsys) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("base: basic\nepochs: zero\n")
    assert main(["train", "--series", "x.csv", "--config", str(config), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert f"{config}: epochs: must be an integer of at least 1, got 'zero'" in err
    assert main(["train", "--series", "x.csv", "--preset", "basic", "--set", "architecture.init=lecun",
                 "--out", str(tmp_path / "b")]) == 2
    assert "architecture.init: unknown initialisation 'lecun'" in capsys.readouterr().err
    assert main(["train", "--series", "x.csv", "--config", str(config), "--preset", "basic",
                 "--out", str(tmp_path / "b")]) == 2
    assert "--config and --preset" in capsys.readouterr().err
