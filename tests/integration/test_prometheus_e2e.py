"""Real broker + real worker + real Prometheus (Debian's package) scraping it with the shipped rules: every
dashboard query, recording rule, alert signal and Grafana alert query must return data."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from kafka import KafkaProducer

from sample_streams.files import read_stream
from sample_streams.ports import free_port
from sample_streams.replay import replay

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "tools"))
from dashboard_queries import RULES, grafana_alert_queries, panel_queries, rule_queries  # noqa: E402

pytestmark = pytest.mark.kafka


def _prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found:
        return found
    if os.environ.get("TSAD_REQUIRE_DEPLOY_TOOLS") == "1":
        pytest.fail("the prometheus server is required here (.ci/run installs Debian's package)")
    pytest.skip("no prometheus server installed (Debian package 'prometheus')")


def _query(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _has_data(base: str, expr: str) -> bool:
    """At least one series with a real (not NaN) value: a quantile over no observations is NaN, not data."""
    return any(not math.isnan(float(series["value"][1])) for series in _query(base, expr))


@pytest.fixture
def prometheus(tmp_path: Path):
    binary = _prometheus_binary()
    port = free_port()
    processes: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> str:
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{RULES}']\n"
            f"scrape_configs:\n  - job_name: tsad\n    static_configs: [{{targets: ['{target}']}}]\n")
        log = (tmp_path / "prometheus.log").open("wb")
        processes.append(subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return base
            except OSError:
                time.sleep(0.3)
        raise AssertionError((tmp_path / "prometheus.log").read_text()[-3000:])

    yield start
    for p in processes:
        p.terminate()
        p.wait(10)


def test_every_dashboard_and_alert_query_returns_data(kafka, new_topic, workers, sample_bundle, prometheus,
                                                      tmp_path: Path) -> None:
    topics = {"input": new_topic("in", 2), "events": new_topic("ev"), "dead_letter": new_topic("dlq"),
              "scores": None}
    worker = workers(kafka.bootstrap, sample_bundle, topics, group="g-prom").start()
    worker.wait_ready()
    base = prometheus(f"127.0.0.1:{worker.port}")

    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", linger_ms=5)
    records = list(read_stream(ROOT / "sample_streams" / "data" / "ecg_stream.jsonl"))
    for payload in (b"{bad", b'{"values": [1]}'):
        producer.send(topics["input"], value=payload, key=b"bad")
    # ~13 s of steady traffic, so rates and latency quantiles span many scrapes and rule evaluations.
    feeder = threading.Thread(target=replay, args=(records, producer, topics["input"], "json", 30.0))
    feeder.start()
    feeder.join(120)
    producer.close()
    deadline = time.monotonic() + 60
    while worker.metric("tsad_windows_scored_total") < len(records) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)  # a couple more scrapes and rule evaluations after the last window
    scrapes = float(_query(base, 'count_over_time(up{job="tsad"}[1m])')[0]["value"][1])
    assert scrapes >= 10, f"only {scrapes} scrapes"

    queries = panel_queries("1m") + rule_queries() + grafana_alert_queries()
    empty = [f"{q.origin}: {q.expr}" for q in queries if not _has_data(base, q.expr)]
    assert not empty, "queries that returned no data:\n" + "\n".join(empty)
    assert len(queries) >= 40

    from render_dashboard import render

    png = render(base, tmp_path / "dashboard.png", minutes=0.4)
    assert png.stat().st_size > 20_000
    if os.environ.get("TSAD_RENDER_DOCS") == "1":  # refresh the picture in the docs
        shutil.copy(png, ROOT / "docs" / "images" / "dashboard.png")
    assert worker.terminate() == 0
