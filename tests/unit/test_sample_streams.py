from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detector.wire.windows import WindowDecoder
from sample_streams.files import read_stream, write_f32, write_jsonl
from sample_streams.generator import ANOMALIES, generate, inject
from sample_streams.replay import encode, replay

DATA = Path(__file__).resolve().parents[2] / "sample_streams" / "data"


def test_generator_is_deterministic_and_labelled() -> None:
    a = list(generate(200, kind="mixed", anomaly_rate=0.3, seed=4))
    b = list(generate(200, kind="mixed", anomaly_rate=0.3, seed=4))
    assert a == b
    assert all(len(r.values) == 140 for r in a)
    assert {r.label for r in a} == {0, 1}
    assert all((r.anomaly is None) == (r.label == 0) for r in a)
    assert {r.source.split("-")[0] for r in a} >= {"ecg", "vibration", "temperature", "tank"}


@pytest.mark.parametrize("anomaly", ANOMALIES)
def test_each_anomaly_changes_the_window(anomaly: str) -> None:
    rng = np.random.default_rng(0)
    base = np.sin(np.arange(140) / 5)
    changed = inject(base, anomaly, rng)
    assert np.abs(changed - base).max() > 0.5


def test_committed_samples_match_the_generator() -> None:
    from sample_streams.make_samples import SAMPLES

    for name, (n, kind, rate, seed) in SAMPLES.items():
        committed = list(read_stream(DATA / f"{name}.jsonl"))
        assert committed == list(generate(n, kind=kind, anomaly_rate=rate, seed=seed, prefix=name)), name
        assert (DATA / f"{name}.jsonl").stat().st_size < 1_000_000
    f32 = list(read_stream(DATA / "ecg_stream.f32"))
    jsonl = list(read_stream(DATA / "ecg_stream.jsonl"))
    assert [r.id for r in f32] == [r.id for r in jsonl]
    np.testing.assert_allclose(np.array([r.values for r in f32]), np.array([r.values for r in jsonl]), rtol=1e-6)


def test_file_round_trips(tmp_path: Path) -> None:
    records = list(generate(20, seed=1))
    write_jsonl(records, tmp_path / "s.jsonl")
    write_f32(records, tmp_path / "s.f32")
    assert list(read_stream(tmp_path / "s.jsonl")) == records
    assert [r.label for r in read_stream(tmp_path / "s.f32")] == [r.label for r in records]


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, object]] = []
        self.flushed = False

    def send(self, topic, value, key=None, headers=None):
        self.sent.append((topic, value, key, headers))

    def flush(self, timeout=None):
        self.flushed = True


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_replay_paces_messages_at_the_requested_rate() -> None:
    clock, producer = FakeClock(), FakeProducer()
    stats = replay(generate(50, seed=0), producer, "t", "json", rate=10.0, clock=clock, sleep=clock.sleep)
    assert stats.sent == 50 and producer.flushed
    assert stats.seconds == pytest.approx(4.9)  # message i leaves at i / rate
    assert all(key == r.source.encode() for (_, _, key, _), r in zip(producer.sent, generate(50, seed=0),
                                                                      strict=True))


def test_replay_limit_and_f32_headers() -> None:
    producer = FakeProducer()
    replay(generate(50, seed=0), producer, "t", "f32", limit=7)
    assert len(producer.sent) == 7
    _, value, _, headers = producer.sent[0]
    assert len(value) == 560 and dict(headers)["tsad-id"] == b"w-000000"


def test_encoded_messages_decode() -> None:
    record = next(generate(1, seed=3))
    for fmt in ("json", "f32"):
        value, _ = encode(record, fmt)
        np.testing.assert_allclose(WindowDecoder(140, fmt).decode(value).values, record.values, rtol=1e-6)


def test_a_multichannel_series_replays_as_windows(tmp_path) -> None:
    import json

    from sample_streams.replay import encode
    from sample_streams.sources import open_source

    lines = ["datetime;Current;Pressure;anomaly"]
    lines += [f"2020-03-09 10:00:{i:02d};{i};{-i};{int(i >= 50)}" for i in range(60)]
    (tmp_path / "pump.csv").write_text("\n".join(lines) + "\n")
    records = list(open_source(series=str(tmp_path / "pump.csv"), window=10, stride=5))
    assert [r.id for r in records][:2] == ["pump-000009", "pump-000014"] and len(records) == 11
    first = json.loads(encode(records[0], "json")[0])
    assert first["values"] == {"Current": list(range(10)), "Pressure": [-v for v in range(10)]}
    assert first["source"] == "pump" and first["label"] == 0 and records[-1].label == 1
    value, headers = encode(records[0], "f32")
    assert len(value) == 2 * 10 * 4 and dict(headers)["tsad-id"] == b"pump-000009"


def test_batch_replay_groups_windows_of_one_source_per_message() -> None:
    from detector.wire.batch import decode_batch
    from sample_streams.generator import generate
    from sample_streams.replay import messages

    records = list(generate(50, kind="ecg", sources=3, seed=2))
    out = list(messages(records, "batch", batch_size=8))
    assert sum(n for *_, n in out) == 50
    for value, key, _headers, n in out:
        rows = decode_batch(value, 140)
        assert len(rows.rows) == n <= 8 and set(rows.sources) == {key.decode()}
    first = next(r for r in records if r.source == out[0][1].decode())
    assert decode_batch(out[0][0], 140).ids[0] == first.id
