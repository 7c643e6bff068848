"""Synthetic telemetry windows with labelled, injected anomalies.

Normal shapes: ECG-like beats (P wave, QRS complex, T wave as Gaussians with jitter) and generic sensor shapes
(a noisy sine, a daily-cycle temperature, a sawtooth fill level). Anomalies, injected into a copy of a normal
window: spike, dropout (flatline), noise burst, level shift, drift and shape distortion. Every record says which.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np

KINDS = ("ecg", "sensor", "mixed")
ANOMALIES = ("spike", "dropout", "noise_burst", "level_shift", "drift", "shape_distortion")


@dataclass(frozen=True)
class WindowRecord:
    id: str
    source: str
    ts: float
    values: list[float]
    label: int  # 0 = normal, 1 = anomalous
    anomaly: str | None = None
    channels: tuple[str, ...] | None = None  # names of a multi-channel window's blocks (values is channel-major)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _gauss(t: np.ndarray, centre: float, width: float, height: float) -> np.ndarray:
    return np.asarray(height * np.exp(-0.5 * ((t - centre) / width) ** 2))


def ecg_beat(rng: np.random.Generator, n: int = 140) -> np.ndarray:
    t = np.arange(n, dtype=np.float64)
    shift = rng.normal(0, 2)
    beat = (
        _gauss(t, 25 + shift, 5, 0.25 * rng.uniform(0.8, 1.2))  # P
        - _gauss(t, 45 + shift, 1.8, 0.35)  # Q
        + _gauss(t, 50 + shift, 2.5, 2.2 * rng.uniform(0.9, 1.1))  # R
        - _gauss(t, 55 + shift, 2.0, 0.6)  # S
        + _gauss(t, 95 + shift * 1.5, 10, 0.5 * rng.uniform(0.8, 1.2))  # T
    )
    beat += rng.normal(0, 0.03, n) + rng.normal(0, 0.05)
    return beat


def _sine(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n)
    return np.sin(2 * np.pi * t / rng.uniform(30, 40) + rng.uniform(0, 2 * np.pi)) + rng.normal(0, 0.05, n)


def _temperature(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n)
    base = 20 + rng.normal(0, 0.3) + 3 * np.sin(2 * np.pi * (t / n) + rng.uniform(-0.3, 0.3))
    return base + np.cumsum(rng.normal(0, 0.03, n))


def _sawtooth(rng: np.random.Generator, n: int) -> np.ndarray:
    period = rng.uniform(45, 55)
    t = np.arange(n) + rng.uniform(0, period)
    return 10 * ((t % period) / period) + rng.normal(0, 0.1, n)


SENSOR_SHAPES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "vibration": _sine,
    "temperature": _temperature,
    "tank-level": _sawtooth,
}


def inject(values: np.ndarray, anomaly: str, rng: np.random.Generator) -> np.ndarray:
    """A copy of `values` with one anomaly of the given kind, sized relative to the window's own spread."""
    x = values.copy()
    n = len(x)
    spread = float(np.std(x)) or 1.0
    start = int(rng.integers(10, n - 40))
    length = int(rng.integers(15, 35))
    seg = slice(start, start + length)
    if anomaly == "spike":
        idx = rng.integers(5, n - 5, size=int(rng.integers(2, 6)))
        x[idx] += rng.choice([-1, 1], size=idx.size) * rng.uniform(5, 8) * spread
    elif anomaly == "dropout":  # the sensor reads zero over the most active stretch of the window
        centre = int(np.argmax(np.abs(x - np.median(x))))
        lo = max(0, min(n - length, centre - length // 2))
        x[lo : lo + length] = 0.0
    elif anomaly == "noise_burst":
        x[seg] += rng.normal(0, 2.0 * spread, length)
    elif anomaly == "level_shift":
        x[start:] += rng.choice([-1, 1]) * rng.uniform(1.5, 2.5) * spread
    elif anomaly == "drift":
        x += np.linspace(0, rng.choice([-1, 1]) * rng.uniform(2, 3.5) * spread, n)
    elif anomaly == "shape_distortion":
        warped = np.interp(np.linspace(0, n - 1, n) ** 1.25 / (n - 1) ** 0.25, np.arange(n), x)
        x = warped[::-1] if rng.random() < 0.5 else -warped + 2 * np.mean(x)
    else:
        raise ValueError(f"unknown anomaly {anomaly!r}; choose from {list(ANOMALIES)}")
    return x


def generate(n: int, kind: str = "ecg", anomaly_rate: float = 0.1, seed: int = 0, window: int = 140,
             sources: int = 4, start_ts: float = 1_767_225_600.0, period_s: float = 1.0, prefix: str = "w"
             ) -> Iterator[WindowRecord]:
    """`n` records; sources round-robin (`ecg-00`…, or `<shape>-00`…), one window every `period_s` per stream."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose from {list(KINDS)}")
    rng = np.random.default_rng(seed)
    shapes = list(SENSOR_SHAPES)
    for i in range(n):
        use_ecg = kind == "ecg" or (kind == "mixed" and i % 2 == 0)
        if use_ecg:
            source, values = f"ecg-{i % sources:02d}", ecg_beat(rng, window)
        else:
            shape = shapes[i % len(shapes)]
            source, values = f"{shape}-{(i // len(shapes)) % sources:02d}", SENSOR_SHAPES[shape](rng, window)
        anomaly = None
        if rng.random() < anomaly_rate:
            anomaly = str(rng.choice(ANOMALIES))
            values = inject(values, anomaly, rng)
        yield WindowRecord(
            id=f"{prefix}-{i:06d}",
            source=source,
            ts=round(start_ts + (i // sources) * period_s, 3),
            values=np.round(values, 4).tolist(),
            label=int(anomaly is not None),
            anomaly=anomaly,
        )
