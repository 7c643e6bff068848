"""Regenerate the committed sample files in sample_streams/data, deterministically.

    python -m sample_streams.make_samples
"""

from __future__ import annotations

from pathlib import Path

from sample_streams.files import write_f32, write_jsonl
from sample_streams.generator import generate

DATA = Path(__file__).resolve().parent / "data"
SAMPLES = {
    # name: (n, kind, anomaly_rate, seed)
    "ecg_train": (700, "ecg", 0.05, 1),
    "ecg_stream": (400, "ecg", 0.12, 2),
    "sensor_stream": (300, "sensor", 0.12, 3),
}


def main() -> None:
    DATA.mkdir(exist_ok=True)
    for name, (n, kind, rate, seed) in SAMPLES.items():
        records = list(generate(n, kind=kind, anomaly_rate=rate, seed=seed, prefix=name))
        write_jsonl(records, DATA / f"{name}.jsonl")
        print(f"{DATA / name}.jsonl: {n} windows, {sum(r.label for r in records)} anomalous")
    records = list(generate(*SAMPLES["ecg_stream"][:1], kind="ecg", anomaly_rate=0.12, seed=2, prefix="ecg_stream"))
    write_f32(records, DATA / "ecg_stream.f32")
    print(f"{DATA / 'ecg_stream.f32'}: {len(records)} windows (metadata in ecg_stream.jsonl)")


if __name__ == "__main__":
    main()
