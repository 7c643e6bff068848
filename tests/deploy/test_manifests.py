"""Deploy artifacts checked with the real tools: kustomize, the Kubernetes API schemas (kubernetes-validate,
pinned version), structural checks for the CRDs, policy checks, promtool, hadolint, and the Grafana SDK."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from conftest import DEPLOY, require_tool

KUBERNETES_VERSION = "1.31.0"
OVERLAYS = ["cpu", "gpu", "gpu-shared"]
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule"),
        ("keda.sh/v1alpha1", "ScaledObject")}


def build(overlay: str) -> list[dict]:
    kubectl = require_tool("kubectl")
    out = subprocess.run([kubectl, "kustomize", str(DEPLOY / "kubernetes" / "overlays" / overlay)],
                         capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_and_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    import kubernetes_validate

    docs = build(overlay)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ConfigMap", "ServiceMonitor", "PrometheusRule", "PodDisruptionBudget",
            "ScaledObject", "Job", "PersistentVolumeClaim", "ServiceAccount"} <= kinds
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRDS:
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)  # raises ValidationError


def test_secret_example_validates() -> None:
    import kubernetes_validate

    doc = yaml.safe_load((DEPLOY / "kubernetes" / "base" / "secret.example.yaml").read_text())
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_strict_validation_catches_a_typo() -> None:
    import kubernetes_validate

    deployment = by_kind(build("cpu"), "Deployment")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_policy_probes_resources_non_root(overlay: str) -> None:
    docs = build(overlay)
    for workload in by_kind(docs, "Deployment") + by_kind(docs, "Job"):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod.get("automountServiceAccountToken") is False
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and set(c["resources"]["limits"]) >= {
                "cpu", "memory"}
            assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])  # writable scratch, read-only root
        if workload["kind"] == "Deployment":
            c = pod["containers"][0]
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
            assert pod["terminationGracePeriodSeconds"] > 20  # longer than worker.shutdown_timeout_s


def test_gpu_overlay_asks_for_a_gpu_on_gpu_nodes() -> None:
    pod = by_kind(build("gpu"), "Deployment")[0]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert c["image"].endswith("-gpu")
    assert {"name": "TSAD_MODEL_DEVICE", "value": "cuda"} in c["env"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    cpu = by_kind(build("cpu"), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in cpu["resources"]["limits"]


def test_gpu_shared_overlay_puts_several_pods_on_one_time_sliced_gpu() -> None:
    docs = build("gpu-shared")
    c = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"  # one time-sliced replica each
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["TSAD_MODEL_DEVICE"] == "cuda" and env["TSAD_BATCH_MAX_SIZE"] == "8192"
    slicing = yaml.safe_load((DEPLOY / "kubernetes" / "overlays" / "gpu-shared" / "time-slicing-config.yaml")
                             .read_text())
    replicas = yaml.safe_load(slicing["data"]["any"])["sharing"]["timeSlicing"]["resources"][0]
    assert replicas["name"] == "nvidia.com/gpu"
    assert by_kind(docs, "ScaledObject")[0]["spec"]["minReplicaCount"] == replicas["replicas"]  # fill one GPU


def test_crds_structurally() -> None:
    """Structural checks for the CRDs (their published schemas cannot be fetched here): the fields each operator
    requires, with the right types, and cross-references that must line up."""
    docs = build("cpu")
    deployment = by_kind(docs, "Deployment")[0]
    service = by_kind(docs, "Service")[0]
    config_map = next(c for c in by_kind(docs, "ConfigMap") if "detector.yaml" in c.get("data", {}))
    config = yaml.safe_load(config_map["data"]["detector.yaml"])

    monitor = by_kind(docs, "ServiceMonitor")[0]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert all(e["port"] in port_names and e["path"] == "/metrics" for e in monitor["endpoints"])

    scaled = by_kind(docs, "ScaledObject")[0]["spec"]
    assert scaled["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert isinstance(scaled["minReplicaCount"], int) and scaled["maxReplicaCount"] >= scaled["minReplicaCount"]
    (trigger,) = scaled["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert all(isinstance(v, str) for v in meta.values())  # KEDA trigger metadata is string-valued
    assert meta["consumerGroup"] == config["kafka"]["group_id"] and meta["topic"] == config["topics"]["input"]
    assert meta["allowIdleConsumers"] == "false"  # replicas capped at the partition count
    assert int(meta["lagThreshold"]) > 0

    rule = by_kind(docs, "PrometheusRule")[0]["spec"]
    for group in rule["groups"]:
        assert isinstance(group["name"], str) and group["rules"]
        for r in group["rules"]:
            assert ("alert" in r) != ("record" in r) and isinstance(r["expr"], str)
            if "alert" in r:
                assert r["annotations"]["runbook_url"].endswith("#" + r["alert"].lower())


def test_prometheusrule_matches_the_rule_file() -> None:
    from importlib import util

    spec = util.spec_from_file_location("to_prometheusrule", DEPLOY / "prometheus" / "to_prometheusrule.py")
    assert spec is not None and spec.loader is not None
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (DEPLOY / "kubernetes" / "base" / "prometheusrule.yaml").read_text() == module.render()


def test_promtool_check_and_unit_tests() -> None:
    promtool = require_tool("promtool")
    rules = DEPLOY / "prometheus"
    check = subprocess.run([promtool, "check", "rules", "rules.yaml"], cwd=rules, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run([promtool, "test", "rules", "rules_test.yaml"], cwd=rules, capture_output=True, text=True)
    assert unit.returncode == 0, unit.stdout + unit.stderr
    alerts = {r["alert"] for g in yaml.safe_load((rules / "rules.yaml").read_text())["groups"] for r in g["rules"]
              if "alert" in r}
    tested = {t["alertname"] for case in yaml.safe_load((rules / "rules_test.yaml").read_text())["tests"]
              for t in case["alert_rule_test"] if t.get("exp_alerts")}
    assert alerts == tested, f"alerts without a firing test: {alerts - tested}"


def test_every_alert_has_a_runbook_section() -> None:
    readme = (DEPLOY / "README.md").read_text().lower()
    for group in yaml.safe_load((DEPLOY / "prometheus" / "rules.yaml").read_text())["groups"]:
        for r in group["rules"]:
            if "alert" in r:
                assert f"### {r['alert'].lower()}" in readme, r["alert"]


def test_dockerfile_lints_clean() -> None:
    hadolint = require_tool("hadolint")
    proc = subprocess.run([hadolint, "--config", str(DEPLOY / "docker" / "hadolint.yaml"),
                           str(DEPLOY / "docker" / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert "USER 10001" in text and 'ENTRYPOINT ["/usr/bin/tini", "--", "tsad"]' in text


def test_dashboard_loads_in_the_grafana_sdk_and_is_well_formed() -> None:
    """Parsed into the typed models of grafana-foundation-sdk (Grafana's generated SDK); every field we set must
    survive the round trip (so nothing is misspelled or unknown), plus layout and query checks."""
    from grafana_foundation_sdk.models.dashboard import Dashboard

    raw = json.loads((DEPLOY / "kubernetes" / "base" / "grafana" / "tsad-dashboard.json").read_text())
    model = Dashboard.from_json(raw)
    back = json.loads(json.dumps(model, default=lambda o: o.to_json()))

    def subset(ours: object, theirs: object, where: str) -> None:
        if isinstance(ours, dict):
            assert isinstance(theirs, dict), where
            for k, v in ours.items():
                assert k in theirs, f"{where}.{k} is not a field Grafana's schema knows"
                subset(v, theirs[k], f"{where}.{k}")
        elif isinstance(ours, list):
            assert isinstance(theirs, list) and len(ours) == len(theirs), where
            for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
                subset(a, b, f"{where}[{i}]")
        else:
            assert ours == theirs, where

    for key in ("uid", "title", "schemaVersion", "panels", "time", "refresh"):
        subset(raw[key], back[key], key)
    ids = [p["id"] for p in raw["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in raw["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"panel {p['title']!r} overlaps another"
        cells |= mine
        assert p["targets"] and all(t["expr"] and t["datasource"]["uid"] == "${datasource}" for t in p["targets"])


def test_grafana_alert_provisioning_is_well_formed() -> None:
    doc = yaml.safe_load((DEPLOY / "kubernetes" / "base" / "grafana" / "tsad-alerts.yaml").read_text())
    assert doc["apiVersion"] == 1
    titles = set()
    for group in doc["groups"]:
        assert {"orgId", "name", "folder", "interval", "rules"} <= set(group)
        for rule in group["rules"]:
            refs = {d["refId"] for d in rule["data"]}
            assert rule["condition"] in refs and rule["uid"] and rule["for"]
            for d in rule["data"]:
                if d["datasourceUid"] == "__expr__":
                    assert d["model"]["expression"] in refs
                else:
                    assert d["model"]["expr"]
            titles.add(rule["title"])
    prometheus_alerts = {r["alert"] for g in yaml.safe_load((DEPLOY / "prometheus" / "rules.yaml").read_text())[
        "groups"] for r in g["rules"] if "alert" in r}
    assert {"TsadWorkerNotReady", "TsadDeadLetterRate", "TsadScoringLatencyHigh"} <= titles & prometheus_alerts


def test_compose_file_parses_and_mounts_what_exists() -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yaml").read_text())
    assert {"kafka", "tsad", "prometheus", "grafana"} <= set(compose["services"])
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            if host.startswith("."):
                path = (DEPLOY / "compose" / host).resolve()
                assert path.exists() or host == "./models", volume
