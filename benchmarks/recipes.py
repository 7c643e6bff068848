"""The reference recipes' own experiments, reproduced with their presets on data available offline.

    python benchmarks/recipes.py [--data ECG5000] [--seeds 5] [--no-doc]

1. One digit against the rest (`deep-mlp`'s experiment): scikit-learn's bundled 8×8 digits as 64-sample windows,
   trained on the 5s of the training part, ROC-AUC of 5 against every other digit on the test part, beside PCA
   on the same split and scaling (and the other dense recipes).
2. Denoising (`conv-denoising`'s): ECG5000's normal test windows plus N(0, 0.2²) noise in scaled units,
   reconstructed; the error against the clean windows, beside `basic` trained without noise.
3. PCA with a linear autoencoder (`linear`'s): Géron's generated 3-D cloud (200 points, first 100 train),
   projected to 2-D; the largest principal angle between the autoencoder's and PCA's planes, and the errors.

Every run is seeded (seeds 0…N-1: initialisation, shuffling, the digits split and the added noise); tables give the
median and the worst seed. With --no-doc it only prints; otherwise it writes the block `recipes` of
docs/accuracy.md.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.linalg import subspace_angles
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from detector.model.architectures import LinearAutoencoder
from detector.model.scaler import Scaler
from trainer.datasets import WindowDataset, load_ecg5000, resolve_ecg_source
from trainer.pipeline import train
from trainer.presets import TrainConfig, get_preset
from trainer.train_file import with_overrides
from trainer.training import fit, seed_everything

DOC = Path(__file__).resolve().parent.parent / "docs" / "accuracy.md"
NOISE = 0.2


def _cell(values: list[float], worst: Callable[[list[float]], float], digits: int = 4) -> str:
    return f"{statistics.median(values):.{digits}f} ({worst(values):.{digits}f})"


def digits_experiment(seeds: int, lines: list[str]) -> None:
    x, y = load_digits(return_X_y=True)
    windows = x.astype(np.float32)
    normal = y == 5
    ds = WindowDataset(windows, normal, "sklearn digits (8x8)", hashlib.sha256(windows.tobytes()).hexdigest())
    rows: dict[str, list[float]] = {}
    seconds: dict[str, list[float]] = {}
    fives = []
    for seed in range(seeds):
        for name in ("deep-mlp", "basic", "stacked"):
            result = train(ds, get_preset(name).replace(split_seed=seed), seed=seed, on_epoch=None)
            rows.setdefault(name, []).append(result.metrics["test"]["roc_auc"])
            seconds.setdefault(name, []).append(result.history.seconds)
        split, scaler = result.split, result.bundle.scaler
        fit_fives = scaler.transform(windows[split.fit][normal[split.fit]])
        test, anomalous = scaler.transform(windows[split.test]), ~normal[split.test]
        fives.append(len(fit_fives))
        for k in (8, 16):
            pca = PCA(n_components=k).fit(fit_fives)
            score = np.abs(pca.inverse_transform(pca.transform(test)) - test).mean(axis=1)
            rows.setdefault(f"PCA ({k} components)", []).append(roc_auc_score(anomalous, score))
        print(f"  digits seed {seed}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in rows.items()), file=sys.stderr)
    lines += ["### One digit against the rest (`deep-mlp`)", "",
              f"scikit-learn's 8×8 digits (1797 windows of 64 samples), the presets' random split (test 20%, split "
              f"seed = run seed); trained on the 5s of the training part ({min(fives)}–{max(fives)} windows), scored "
              "on the whole test part (5 = normal, every other digit anomalous). Median (worst) over "
              f"{seeds} seeds.", "", "| model | ROC-AUC, 5 vs rest | train s |", "| --- | --- | --- |"]
    lines += [f"| {'**' + name + '**' if name == 'deep-mlp' else name} | {_cell(v, min)} | "
              f"{f'{statistics.median(seconds[name]):.1f}' if name in seconds else '—'} |" for name, v in rows.items()]


def denoising_experiment(data: str | None, seeds: int, lines: list[str]) -> None:
    ds = load_ecg5000(resolve_ecg_source(data)).tf_reference_rows()
    assert ds.is_normal is not None
    variants: dict[str, TrainConfig] = {
        "conv-denoising": get_preset("conv-denoising"),
        "conv-denoising, trained without noise": with_overrides(get_preset("conv-denoising"), {"noise_std": 0.0}),
        "basic (no noise)": get_preset("basic"),
        "basic, trained with noise 0.2": with_overrides(get_preset("basic"), {"noise_std": NOISE}),
    }
    results: dict[str, dict[str, list[float]]] = {}
    for seed in range(seeds):
        for name, config in variants.items():
            result = train(ds, config, seed=seed, on_epoch=None)
            test = result.split.test[ds.is_normal[result.split.test]]
            clean = result.bundle.scaler.transform(ds.windows[test])
            noisy = clean + np.random.default_rng(seed).normal(0.0, NOISE, clean.shape).astype(np.float32)
            model = result.bundle.build_model()
            with torch.no_grad():
                out = model(torch.from_numpy(noisy)).numpy()
                out_clean = model(torch.from_numpy(clean)).numpy()
            r = results.setdefault(name, {})
            r.setdefault("mse", []).append(float(((out - clean) ** 2).mean()))
            r.setdefault("mae", []).append(float(np.abs(out - clean).mean()))
            r.setdefault("clean", []).append(float(((out_clean - clean) ** 2).mean()))
            r.setdefault("s", []).append(result.history.seconds)
        itself = results.setdefault("the noisy input itself", {})  # the same windows and draw for every model
        itself.setdefault("mse", []).append(float(((noisy - clean) ** 2).mean()))
        itself.setdefault("mae", []).append(float(np.abs(noisy - clean).mean()))
        print(f"  denoising seed {seed}: " + ", ".join(f"{k} {v['mse'][-1]:.5f}" for k, v in results.items()),
              file=sys.stderr)
    lines += ["", "### Denoising ECG5000 (`conv-denoising`)", "",
              f"The 560 normal windows of the reference test split, scaled as each model was trained (global "
              f"min-max, [0, 1]), plus Gaussian noise of {NOISE} (a fresh draw per seed); error of the "
              "reconstruction against the clean window. Median (worst) over "
              f"{seeds} seeds; lower is better.", "",
              "| model | MSE vs clean | MAE vs clean | MSE, clean input | train s |", "| --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        own = _cell(r["clean"], max, 5) if "clean" in r else "—"
        s = f"{statistics.median(r['s']):.1f}" if "s" in r else "—"
        lines.append(f"| {name} | {_cell(r['mse'], max, 5)} | {_cell(r['mae'], max, 5)} | {own} | {s} |")


def geron_cloud() -> np.ndarray:
    """The 3-D dataset of Géron's linear-autoencoder example (numpy's legacy generator, seed 4)."""
    rnd = np.random.RandomState(4)
    m, w1, w2, noise = 200, 0.1, 0.3, 0.1
    angles = rnd.rand(m) * 3 * np.pi / 2 - 0.5
    data = np.empty((m, 3))
    data[:, 0] = np.cos(angles) + np.sin(angles) / 2 + noise * rnd.randn(m) / 2
    data[:, 1] = np.sin(angles) * 0.7 + noise * rnd.randn(m) / 2
    data[:, 2] = data[:, 0] * w1 + data[:, 1] * w2 + noise * rnd.randn(m)
    return data.astype(np.float32)


def linear_experiment(seeds: int, lines: list[str]) -> None:
    data = geron_cloud()
    linear = get_preset("linear")
    variants = {
        "`linear` as shipped (MSE, Adam 1e-3, batch 32, 60 epochs)": linear,
        "`linear` with `loss: mae` (the preset before this change)": with_overrides(linear, {"loss": "mae"}),
        "`linear` with the book's training (MSE, Adam 0.01, 1000 full-batch steps)":
            with_overrides(linear, {"loss": "mse", "learning_rate": 0.01, "epochs": 1000, "batch_size": 100}),
    }
    scaler = Scaler.fit(linear.scaler, data[:100])
    train_x, test_x = scaler.transform(data[:100]), scaler.transform(data[100:])
    pca = PCA(n_components=2).fit(train_x)
    pca_err = float(((pca.inverse_transform(pca.transform(test_x)) - test_x) ** 2).mean())
    lines += ["", "### PCA with a linear autoencoder (`linear`)", "",
              "Géron's generated 3-D cloud (200 points near a plane; the first 100 train), standardised per "
              "coordinate (the preset's `feature_standard`), a 3-2-3 linear autoencoder with the preset's settings "
              f"(`LinearAutoencoder(3, 2)` directly: tsad's models take windows of 8 samples or more). Median (worst) "
              f"over {seeds} seeds. PCA (2 components, same scaling): test MSE {pca_err:.5f}.", "",
              "| training | angle to PCA's plane, ° | test MSE | test MSE / PCA's | train s |",
              "| --- | --- | --- | --- | --- |"]
    for name, config in variants.items():
        angles, errors, seconds = [], [], []
        for seed in range(seeds):
            seed_everything(seed)
            model = LinearAutoencoder(3, 2)
            history = fit(model, train_x, None, config, seed)
            decoder = model.decoder.weight.detach().numpy().astype(np.float64)
            angles.append(float(np.degrees(subspace_angles(decoder, pca.components_.T).max())))
            with torch.no_grad():
                errors.append(float(((model(torch.from_numpy(test_x)).numpy() - test_x) ** 2).mean()))
            seconds.append(history.seconds)
        ratios = [e / pca_err for e in errors]
        lines.append(f"| {name} | {_cell(angles, max, 2)} | {_cell(errors, max, 5)} | {_cell(ratios, max, 3)} | "
                     f"{statistics.median(seconds):.2f} |")
        print(f"  linear: {name}: angles {[round(a, 2) for a in angles]}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="ECG5000 (default: $TSAD_ECG5000, else the checksummed download)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/accuracy.md alone")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    lines: list[str] = []
    digits_experiment(args.seeds, lines)
    denoising_experiment(args.data, args.seeds, lines)
    linear_experiment(args.seeds, lines)
    lines += ["", f"Whole run: {time.perf_counter() - started:.0f} s on this machine, one thread."]
    print("\n".join(lines))
    if not args.no_doc:
        from perfdoc import command_line, write_section

        body = f"`{command_line()}` — written by the script on {time.strftime('%Y-%m-%d')}.\n\n" + "\n".join(lines)
        write_section(DOC, "recipes", body)


if __name__ == "__main__":
    main()
