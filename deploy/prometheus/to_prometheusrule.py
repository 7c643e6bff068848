"""Write deploy/kubernetes/base/prometheusrule.yaml from deploy/prometheus/rules.yaml (the source of truth)."""

from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
TARGET = HERE.parent / "kubernetes" / "base" / "prometheusrule.yaml"


def render() -> str:
    rules = yaml.safe_load((HERE / "rules.yaml").read_text())
    doc = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
           "metadata": {"name": "tsad", "labels": {"release": "kube-prometheus-stack"}},
           "spec": {"groups": rules["groups"]}}
    header = ("# Generated from deploy/prometheus/rules.yaml (a test keeps them identical): edit that file, then "
              "regenerate\n# with: python deploy/prometheus/to_prometheusrule.py\n")
    return header + yaml.safe_dump(doc, sort_keys=False, width=200)


if __name__ == "__main__":
    TARGET.write_text(render())
    print(f"wrote {TARGET}")
