"""Hot reload through the real worker on the real broker: the bundle behind `current` is replaced mid-stream —
first by a half-written copy (refused, the old model keeps serving), then by a good one (swapped in). Exactly-once:
every window has exactly one score record, and in each partition the model version switches at one point."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
from harness import TrackedProducer, read_until, train_sample_bundle, wait_for

from sample_streams.generator import generate

pytestmark = pytest.mark.kafka


def _point(link: Path, target: Path) -> None:
    staged = link.with_name(".current.new")
    staged.unlink(missing_ok=True)
    staged.symlink_to(target)
    os.replace(staged, link)


@pytest.fixture(scope="module")
def second_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_sample_bundle(tmp_path_factory.mktemp("v2") / "v2", epochs=20, name="sample-ecg-v2")


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_a_bundle_replaced_mid_stream(kafka, new_topic, workers, sample_bundle: Path, second_bundle: Path,
                                      tmp_path: Path, client: str) -> None:
    link = tmp_path / "current"
    link.symlink_to(sample_bundle)
    half = tmp_path / "half"  # copied without an atomic rename: the weights are cut short
    shutil.copytree(second_bundle, half)
    weights = half / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    topics = {"input": new_topic("hr-in", 2), "events": new_topic("hr-ev"), "dead_letter": new_topic("hr-dlq"),
              "scores": new_topic("hr-sc")}
    worker = workers(kafka.bootstrap, link, topics, group=f"g-hr-{client}",
                     kafka={"client": client, "exactly_once": True}, model={"reload_interval_s": 0.3},
                     events={"mode": "windows"}).start()
    worker.wait_ready()
    records = list(generate(3000, kind="ecg", seed=31, prefix="hr"))
    producer = TrackedProducer(kafka.bootstrap)
    feeding = producer.send_in_background(topics["input"], records, rate=400)
    wait_for(lambda: worker.metric("tsad_windows_scored_total") > 600, 60, "a first stretch scored")
    _point(link, half)
    wait_for(lambda: worker.metric("tsad_model_reloads_total", result="refused") == 1, 30, "the refusal")
    time.sleep(0.5)
    _point(link, second_bundle)
    wait_for(lambda: worker.metric("tsad_model_reloads_total", result="loaded") == 1, 60, "the swap")
    feeding.join(60)
    producer.close()
    expected = {r.id for r in records}

    def ids(out: list) -> list[str]:
        return [json.loads(m.value)["input"]["window_id"] for m in out]

    out = read_until(kafka.bootstrap, topics["scores"], lambda o: set(ids(o)) >= expected, 120,
                     isolation_level="read_committed")
    assert Counter(ids(out)) == Counter(expected)  # 0 lost, exactly one score record per window
    by_partition: dict[int, list[tuple[int, str]]] = {}
    for m in out:
        body = json.loads(m.value)
        by_partition.setdefault(body["input"]["partition"], []).append((body["input"]["offset"],
                                                                         body["model"]["name"]))
    for partition, rows in by_partition.items():
        names = [name for _, name in sorted(rows)]
        switches = sum(1 for a, b in itertools.pairwise(names) if a != b)
        assert names[0] == "sample-ecg" and names[-1] == "sample-ecg-v2" and switches == 1, partition
    lifecycle = [json.loads(m.value) for m in read_until(kafka.bootstrap, topics["events"], lambda o: False, 5,
                                                         isolation_level="read_committed")]
    kinds = [e["type"] for e in lifecycle if e.get("type", "").startswith("model_")]
    assert kinds == ["model_refused", "model_loaded"]
    assert "sha256 mismatch" in next(e for e in lifecycle if e.get("type") == "model_refused")["problem"]
    assert worker.alive and worker.terminate() == 0
