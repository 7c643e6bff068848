"""Read the PromQL out of the shipped dashboard, alert rules and Grafana alerts, ready to run against Prometheus.

Used by the end-to-end test (every query must return data from a live worker) and by render_dashboard.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent.parent
DASHBOARD = DEPLOY / "kubernetes" / "base" / "grafana" / "tsad-dashboard.json"
GRAFANA_ALERTS = DEPLOY / "kubernetes" / "base" / "grafana" / "tsad-alerts.yaml"
RULES = DEPLOY / "prometheus" / "rules.yaml"
COMPARISON = re.compile(r"\s(>=|<=|==|!=|>|<)\s")


@dataclass(frozen=True)
class Query:
    origin: str  # e.g. "panel 'Consumer lag' A", "alert TsadDeadLetterRate"
    expr: str


def dashboard_panels(path: Path = DASHBOARD) -> list[dict]:
    return list(json.loads(path.read_text())["panels"])


def panel_queries(rate_interval: str = "1m", path: Path = DASHBOARD) -> list[Query]:
    return [Query(f"panel {p['title']!r} {t['refId']}", t["expr"].replace("$__rate_interval", rate_interval))
            for p in dashboard_panels(path) for t in p["targets"]]


def alert_signals(expr: str) -> list[str]:
    """The series an alert compares: each `and` term is `<signal> <op> <rhs>`; a non-numeric rhs is a signal too.

    Raises ValueError for an expression that does not follow that shape (so none escapes the live check)."""
    signals = []
    for term in re.split(r"\s+and\s+", expr.strip()):
        parts = COMPARISON.split(term)
        if len(parts) != 3:
            raise ValueError(f"alert term {term!r} is not '<signal> <comparison> <value>'")
        left, _, right = parts
        signals.append(left.strip())
        if re.search(r"[a-zA-Z_]", right.replace("e", "")):
            signals.append(right.strip())
    return signals


def rule_queries(path: Path = RULES) -> list[Query]:
    out = []
    for group in yaml.safe_load(path.read_text())["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                out.append(Query(f"recording rule {rule['record']}", rule["record"]))
            else:
                out += [Query(f"alert {rule['alert']}", s) for s in alert_signals(rule["expr"])]
    return out


def grafana_alert_queries(path: Path = GRAFANA_ALERTS) -> list[Query]:
    out = []
    for group in yaml.safe_load(path.read_text())["groups"]:
        for rule in group["rules"]:
            out += [Query(f"grafana alert {rule['title']} {d['refId']}", d["model"]["expr"])
                    for d in rule["data"] if d["datasourceUid"] != "__expr__"]
    return out
