"""The evaluation report: metrics tables and PNG plots collected in one Markdown and one HTML page."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_curve


@dataclass
class ReportData:
    title: str
    metrics: dict[str, Any]  # evaluate_scores() output
    threshold: float
    threshold_method: str
    train_loss: list[float]
    val_loss: list[float]
    fit_normal_scores: np.ndarray
    test_scores: np.ndarray
    test_is_normal: np.ndarray
    examples: list[tuple[str, np.ndarray, np.ndarray]]  # (caption, scaled input, reconstruction), [C, L] each
    details: dict[str, Any]
    channels: tuple[str, ...] = ("value",)


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _plots(data: ReportData, out: Path) -> list[tuple[str, str]]:
    images: list[tuple[str, str]] = []
    if data.train_loss:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(range(1, len(data.train_loss) + 1), data.train_loss, label="training loss")
        if data.val_loss:
            ax.plot(range(1, len(data.val_loss) + 1), data.val_loss, label="validation loss")
        ax.set(xlabel="epoch", ylabel="MAE (scaled)", title="Loss curves")
        ax.legend()
        images.append(("Training and validation loss", _save(fig, out / "loss_curves.png")))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(data.fit_normal_scores, bins=50, color="tab:blue", alpha=0.8)
    ax.axvline(data.threshold, color="tab:red", linestyle="--", label=f"threshold ({data.threshold_method})")
    ax.set(xlabel="score", ylabel="windows", title="Training (normal) scores")
    ax.legend()
    images.append(("Training loss with the threshold", _save(fig, out / "train_loss_hist.png")))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.histogram_bin_edges(data.test_scores, bins=60).tolist()
    labelled = "accuracy" in data.metrics
    ax.hist(data.test_scores[data.test_is_normal], bins=bins, alpha=0.6, label="normal" if labelled else "windows")
    if labelled:
        ax.hist(data.test_scores[~data.test_is_normal], bins=bins, alpha=0.6, label="anomalous")
    ax.axvline(data.threshold, color="tab:red", linestyle="--", label="threshold")
    ax.set(xlabel="score", ylabel="windows", title="Test scores" + (": normal vs anomalous" if labelled else ""))
    ax.legend()
    images.append(("Test loss histograms", _save(fig, out / "test_loss_hist.png")))

    if 0 < (~data.test_is_normal).sum() < data.test_is_normal.size:
        fpr, tpr, _ = roc_curve(~data.test_is_normal, data.test_scores)
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot(fpr, tpr, label=f"ROC-AUC {data.metrics.get('roc_auc', 0):.4f}")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (anomaly = positive)")
        ax.legend(loc="lower right")
        images.append(("ROC curve", _save(fig, out / "roc.png")))

    if data.examples:
        rows = len(data.channels)  # one row of plots per channel, one column per example window
        fig, axes = plt.subplots(rows, len(data.examples), figsize=(4.2 * len(data.examples), 2.4 + 1.6 * rows),
                                 squeeze=False, sharex=True)
        for col, (caption, x, recon) in enumerate(data.examples):
            x, recon = np.atleast_2d(x), np.atleast_2d(recon)
            for row, name in enumerate(data.channels):
                ax = axes[row][col]
                t = np.arange(x.shape[1])
                ax.plot(t, x[row], color="black", linewidth=1, label="input")
                ax.plot(t, recon[row], color="tab:red", linewidth=1, label="reconstruction")
                ax.fill_between(t, x[row], recon[row], color="lightcoral", alpha=0.6, label="error")
                if row == 0:
                    ax.set_title(caption, fontsize=9)
                if col == 0 and rows > 1:
                    ax.set_ylabel(name, fontsize=8)
        axes[0][0].legend(fontsize=8)
        images.append(("Input, reconstruction and error" + (" per channel" if rows > 1 else ""),
                       _save(fig, out / "reconstructions.png")))
    return images


def _metric_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    def f(v: Any) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    if "accuracy" not in m:  # unlabelled data
        return [("windows", str(m["n"])), ("flagged above the threshold", str(m.get("n_flagged", "n/a"))),
                ("labels", "none: no accuracy figures")]
    rows = [("windows (anomalous)", f"{m['n']} ({m['n_anomalous']})"), ("accuracy", f(m["accuracy"]))]
    for view in ("anomaly_class", "normal_class"):
        rows += [(f"{view.replace('_', ' ')} {k}", f(m[view][k])) for k in ("precision", "recall", "f1")]
    rows += [("ROC-AUC", f(m["roc_auc"])), ("PR-AUC", f(m["pr_auc"]))]
    c = m["confusion"]
    rows.append(("confusion (anomaly = positive)", f"TN {c['tn']}  FP {c['fp']}  FN {c['fn']}  TP {c['tp']}"))
    if "points" in m:  # point-labelled series: causal point verdicts (trainer/points.py)
        pt = m["points"]
        rows += [("points (anomalous)", f"{pt['n']} ({pt['n_anomalous']})"), ("points F1", f(pt["f1"])),
                 ("points FAR %", f"{pt['far']:.2f}"), ("points MAR %", f"{pt['mar']:.2f}")]
    return rows


def write_report(data: ReportData, out_dir: str | Path) -> Path:
    """Write PNGs, report.md, report.html and metrics.json into `out_dir`; return the HTML path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = _plots(data, out)
    rows = _metric_rows(data.metrics)
    (out / "metrics.json").write_text(json.dumps(data.metrics, indent=2) + "\n")

    md = [f"# {data.title}", "", f"Threshold {data.threshold:.6f} ({data.threshold_method}).", "",
          "| metric | value |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in rows], ""]
    md += [f"- {k}: `{json.dumps(v) if isinstance(v, (dict, list)) else v}`" for k, v in data.details.items()]
    md.append("")
    for caption, name in images:
        md += [f"## {caption}", "", f"![{caption}]({name})", ""]
    (out / "report.md").write_text("\n".join(md))

    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    detail = "".join(f"<li><b>{html.escape(k)}</b>: <code>{html.escape(str(v))}</code></li>"
                     for k, v in data.details.items())
    figures = "".join(f"<h2>{html.escape(c)}</h2><img src='{n}' alt='{html.escape(c)}'>" for c, n in images)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(data.title)}</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}td{padding:2px 12px}"
            "table{border-collapse:collapse}tr:nth-child(odd){background:#f3f3f3}img{max-width:100%}</style>"
            f"</head><body><h1>{html.escape(data.title)}</h1>"
            f"<p>Threshold {data.threshold:.6f} ({html.escape(data.threshold_method)}).</p>"
            f"<table>{table}</table><ul>{detail}</ul>{figures}</body></html>")
    path = out / "report.html"
    path.write_text(page)
    return path
