"""Validation of the worker's configuration: every rule, each failure a ConfigError that names the key."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detector.config import Config

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
KAFKA_CLIENTS = ("kafka-python", "confluent")
EVENT_MODES = ("episodes", "windows", "both")


class ConfigError(ValueError):
    """A configuration problem; the message names the key."""


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{key}: must be positive, got {value}")


def validate(c: Config) -> None:
    k = c.kafka
    if k.client not in KAFKA_CLIENTS:
        raise ConfigError(f"kafka.client: must be one of {list(KAFKA_CLIENTS)}, got {k.client!r}")
    if k.client == "confluent" and importlib.util.find_spec("confluent_kafka") is None:
        raise ConfigError("kafka.client: confluent needs the confluent-kafka package; install it with "
                          "pip install 'tsad[confluent]' (or use kafka-python)")
    if not k.bootstrap_servers.strip():
        raise ConfigError("kafka.bootstrap_servers: required")
    if k.security_protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(f"kafka.security_protocol: must be one of {list(SECURITY_PROTOCOLS)}, "
                          f"got {k.security_protocol!r}")
    if k.security_protocol.startswith("SASL"):
        if k.sasl_mechanism not in SASL_MECHANISMS:
            raise ConfigError(f"kafka.sasl_mechanism: must be one of {list(SASL_MECHANISMS)} with "
                              f"{k.security_protocol}, got {k.sasl_mechanism!r}")
        if not k.sasl_username:
            raise ConfigError(f"kafka.sasl_username: required with {k.security_protocol}")
        if not k.sasl_password:
            raise ConfigError(f"kafka.sasl_password: required with {k.security_protocol}; set "
                              "TSAD_KAFKA_SASL_PASSWORD")
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(k, key)
        if path and not Path(path).is_file():
            raise ConfigError(f"kafka.{key}: file {path} not found")
    if k.max_poll_interval_ms < k.session_timeout_ms:
        raise ConfigError("kafka.max_poll_interval_ms: must be at least kafka.session_timeout_ms")
    if not 6000 <= k.session_timeout_ms <= 300000:
        raise ConfigError(f"kafka.session_timeout_ms: must be between 6000 and 300000, got {k.session_timeout_ms}")
    if not 0 <= k.linger_ms <= 1000:
        raise ConfigError(f"kafka.linger_ms: must be between 0 and 1000, got {k.linger_ms}")
    t = c.topics
    names = [t.input, t.events, t.dead_letter, c.state_topic] + ([t.scores] if t.scores else [])
    if len(c.state_topic) > 249:  # Kafka's limit on a topic name
        raise ConfigError(f"topics.episode_state: the default name {c.state_topic!r} (input and kafka.group_id) is "
                          f"longer than Kafka's 249 characters; name the topic in topics.episode_state")
    if len(set(names)) != len(names):
        raise ConfigError(f"topics: input, events, dead_letter and scores must be distinct (episode_state too), "
                          f"got {names}")
    if c.events.scores_format not in ("json", "arrow"):
        raise ConfigError(f"events.scores_format: must be json or arrow, got {c.events.scores_format!r}")
    if c.events.mode not in EVENT_MODES:
        raise ConfigError(f"events.mode: must be one of {list(EVENT_MODES)}, got {c.events.mode!r}")
    e = c.episodes
    if not 1 <= e.open_k <= e.open_n <= 64:
        raise ConfigError(f"episodes.open_k: need 1 <= open_k <= open_n <= 64, got open_k {e.open_k}, "
                          f"open_n {e.open_n}")
    if not 0.0 < e.close_ratio <= 1.0:
        raise ConfigError(f"episodes.close_ratio: must be in (0, 1], got {e.close_ratio}")
    if e.quiet_windows < 1:
        raise ConfigError(f"episodes.quiet_windows: must be at least 1, got {e.quiet_windows}")
    if e.cooldown_windows < 0 or e.update_interval_s < 0:
        raise ConfigError("episodes.cooldown_windows and episodes.update_interval_s: must be >= 0")
    a = c.adaptive
    if a.enabled and c.events.mode == "windows":
        raise ConfigError("adaptive.enabled: needs events.mode episodes or both (its state lives with the episodes')")
    if not 0.5 < a.quantile < 1.0 or a.margin <= 0 or not 0 < a.rate < 1 or a.warmup < 1:
        raise ConfigError("adaptive: quantile in (0.5, 1), margin > 0, rate in (0, 1), warmup >= 1")
    if not 0 < a.lower <= 1.0 <= a.upper:
        raise ConfigError(f"adaptive.lower/upper: need 0 < lower <= 1 <= upper, got {a.lower}, {a.upper}")
    if c.input.format not in ("json", "f32", "batch", "auto"):
        raise ConfigError(f"input.format: must be json, f32 or auto, or batch for batched messages, got "
                          f"{c.input.format!r}")
    _positive("input.max_message_bytes", c.input.max_message_bytes)
    _positive("batch.max_size", c.batch.max_size)
    if c.batch.max_wait_ms < 0:
        raise ConfigError(f"batch.max_wait_ms: must be >= 0, got {c.batch.max_wait_ms}")
    if c.batch.max_in_flight < c.batch.max_size:
        raise ConfigError(f"batch.max_in_flight: must be at least batch.max_size ({c.batch.max_size})")
    if c.model.dtype not in ("float32", "bfloat16"):
        raise ConfigError(f"model.dtype: must be float32 or bfloat16, got {c.model.dtype!r}")
    if c.model.reload_interval_s < 0 or c.model.drift_window < 1:
        raise ConfigError("model.reload_interval_s: must be >= 0 (0: no hot reload); model.drift_window: >= 1")
    if c.model.threads < 0:
        raise ConfigError(f"model.threads: must be 0 (the libraries decide) or a positive count, got {c.model.threads}")
    if not (c.model.device in ("auto", "cpu", "cuda") or c.model.device.startswith("cuda:")):
        raise ConfigError(f"model.device: must be auto, cpu, cuda or cuda:N, got {c.model.device!r}")
    _positive("events.segments", c.events.segments)
    if not 0 <= c.events.top_segments <= c.events.segments:
        raise ConfigError("events.top_segments: must be between 0 and events.segments")
    if c.metrics.source_labels < 0:
        raise ConfigError(f"metrics.source_labels: must be 0 or more, got {c.metrics.source_labels}")
    if not 0 <= c.http.port < 65536:
        raise ConfigError(f"http.port: must be a TCP port, got {c.http.port}")
    for key in ("poll_timeout_ms", "max_poll_records", "shutdown_timeout_s", "health_max_loop_age_s",
                "lag_interval_s"):
        _positive(f"worker.{key}", getattr(c.worker, key))


