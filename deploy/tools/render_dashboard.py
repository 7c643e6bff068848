"""Render the Grafana dashboard's panels from a live Prometheus with matplotlib (Grafana is not needed).

    python deploy/tools/render_dashboard.py --prometheus http://127.0.0.1:9090 --minutes 5 --out dashboard.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_queries import dashboard_panels


def query_range(prometheus: str, expr: str, start: float, end: float, step: float) -> list[dict]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{params}", timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return list(body["data"]["result"])


def _label(fmt: str, metric: dict[str, str]) -> str:
    out = fmt or ",".join(f"{k}={v}" for k, v in metric.items())
    for key, value in metric.items():
        out = out.replace("{{" + key + "}}", value)
    return out


def render(prometheus: str, out: Path, minutes: float = 5.0, rate_interval: str = "1m") -> Path:
    panels = dashboard_panels()
    end = time.time()
    start, step = end - minutes * 60, max(1.0, minutes * 60 / 200)
    cols = 3
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.2 * rows), squeeze=False)
    for ax, panel in zip(axes.ravel(), panels, strict=False):
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", rate_interval)
            for series in query_range(prometheus, expr, start, end, step):
                t = [float(v[0]) - end for v in series["values"]]
                y = [float(v[1]) for v in series["values"]]
                ax.plot(t, y, label=_label(target.get("legendFormat", ""), series["metric"])[:40])
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit") or ""
        ax.set_title(f"{panel['title']} ({panel['type']})" + (f" [{unit}]" if unit else ""), fontsize=10)
        ax.set_xlabel("seconds before now", fontsize=8)
        ax.tick_params(labelsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="upper left")
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.suptitle("tsad detector dashboard, rendered from Prometheus", fontsize=13)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--out", default="dashboard.png")
    args = parser.parse_args()
    print(render(args.prometheus, Path(args.out), args.minutes))


if __name__ == "__main__":
    main()
