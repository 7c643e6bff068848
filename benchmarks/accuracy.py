"""Accuracy on the ECG5000 reference split: every preset and a PCA baseline, median and min over seeds.

    python benchmarks/accuracy.py [--data PATH] [--seeds 5] [--presets seed,default,...] [--write]

Every preset by default (the reference recipes included), one torch thread. Prints a Markdown table; with --write
it also replaces the table in docs/accuracy.md and the README.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA

from trainer import calibration
from trainer.datasets import load_ecg5000, resolve_ecg_source
from trainer.evaluation import evaluate_scores
from trainer.pipeline import make_split, train
from trainer.presets import PRESETS, get_preset

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = [("threshold", "threshold"), ("accuracy", "accuracy"), ("anomaly F1", "anomaly_f1"), ("normal P", "normal_p"),
           ("normal R", "normal_r"), ("ROC-AUC", "roc_auc"), ("PR-AUC", "pr_auc"), ("train s", "seconds")]


def _flat(m: dict, seconds: float, method: str) -> dict[str, Any]:
    return {"threshold": method, "accuracy": m["accuracy"], "anomaly_f1": m["anomaly_class"]["f1"],
            "normal_p": m["normal_class"]["precision"], "normal_r": m["normal_class"]["recall"],
            "roc_auc": m["roc_auc"], "pr_auc": m["pr_auc"], "seconds": seconds}


def pca_baseline(ds, seed: int, components: int = 8) -> dict[str, Any]:
    """PCA reconstruction MAE as the score, same split, scaling and F1-optimal threshold as the default."""
    config = get_preset("default")
    split = make_split(len(ds), config, seed)
    start = time.perf_counter()
    x, normal = ds.windows, ds.is_normal
    lo, hi = x[split.fit].min(), x[split.fit].max()
    scale = lambda a: (a - lo) / (hi - lo)  # noqa: E731
    pca = PCA(n_components=components, random_state=seed).fit(scale(x[split.fit][normal[split.fit]]))

    def score(a: np.ndarray) -> np.ndarray:
        s = scale(a)
        return np.abs(pca.inverse_transform(pca.transform(s)) - s).mean(axis=1)

    threshold = calibration.f1_optimal(score(x[split.val]), ~normal[split.val])
    seconds = time.perf_counter() - start
    return _flat(evaluate_scores(score(x[split.test]), normal[split.test], threshold), seconds, threshold.method)


def run(data: str | None, seeds: int, presets: list[str]) -> list[tuple[str, list[dict[str, Any]]]]:
    ds = load_ecg5000(resolve_ecg_source(data)).tf_reference_rows()
    rows: list[tuple[str, list[dict[str, Any]]]] = []
    for name in presets:
        results = []
        for seed in range(seeds):
            result = train(ds, get_preset(name), seed=seed, on_epoch=None)
            results.append(_flat(result.metrics["test"], result.history.seconds, result.bundle.threshold.method))
            print(f"  {name:10s} seed {seed}: accuracy {results[-1]['accuracy']:.4f} "
                  f"ROC-AUC {results[-1]['roc_auc']:.4f} ({results[-1]['seconds']:.1f} s)", file=sys.stderr)
        rows.append((name, results))
    rows.append(("PCA (8)", [pca_baseline(ds, seed) for seed in range(seeds)]))
    return rows


def table(rows: list[tuple[str, list[dict[str, Any]]]], seeds: int) -> str:
    head = "| model | " + " | ".join(c for c, _ in COLUMNS) + " |"
    lines = [f"Median (min) over {seeds} seeds, ECG5000 reference test split (1000 windows, 440 anomalous).", "",
             head, "|" + " --- |" * (len(COLUMNS) + 1)]
    for name, results in rows:
        cells = []
        for _, key in COLUMNS:
            values = [r[key] for r in results]
            if key == "threshold":
                cells.append(values[0])
            elif key == "seconds":
                cells.append(f"{statistics.median(values):.1f}")
            else:
                cells.append(f"{statistics.median(values):.4f} ({min(values):.4f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def replace_block(path: Path, block: str) -> None:
    text = path.read_text()
    pattern = re.compile(r"(<!-- accuracy-table:start -->\n).*?(\n<!-- accuracy-table:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path}: no accuracy-table markers")
    path.write_text(pattern.sub(lambda m: m.group(1) + block + m.group(2), text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--presets", default=",".join(["seed", "default", *sorted(set(PRESETS) - {"seed",
                                                                                         "default"})]))
    parser.add_argument("--write", action="store_true", help="update docs/accuracy.md and README.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = run(args.data, args.seeds, args.presets.split(","))
    block = table(rows, args.seeds)
    print(block)
    if args.write:
        for path in (ROOT / "docs" / "accuracy.md", ROOT / "README.md"):
            replace_block(path, block)


if __name__ == "__main__":
    main()
