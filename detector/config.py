"""The worker's frozen configuration: YAML file, then `TSAD_<SECTION>_<KEY>` environment overrides, validated once.

Secrets (`kafka.sasl_password`, `kafka.ssl_password`) are read from the environment only and never printed:
`redacted()` is what the worker logs.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SECRET_KEYS = {("kafka", "sasl_password"), ("kafka", "ssl_password")}
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
KAFKA_CLIENTS = ("kafka-python", "confluent")
EVENT_MODES = ("episodes", "windows", "both")


class ConfigError(ValueError):
    """A configuration problem; the message names the key."""


@dataclass(frozen=True)
class KafkaConfig:
    client: str = "kafka-python"  # kafka-python | confluent (librdkafka: pip install 'tsad[confluent]')
    bootstrap_servers: str = "localhost:9092"
    group_id: str = "tsad"
    client_id: str = "tsad-worker"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None  # environment only: TSAD_KAFKA_SASL_PASSWORD
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: str | None = None  # environment only: TSAD_KAFKA_SSL_PASSWORD
    exactly_once: bool = False  # transactions: outputs and input offsets commit atomically (docs/reliability.md)
    transactional_id: str | None = None  # default "<group_id>-<client_id>"; must be unique per running worker
    session_timeout_ms: int = 10000  # how fast the group notices a dead worker (and moves its partitions)
    # Also the rebalance timeout: how long a rebalance waits for a member that joined and then died.
    max_poll_interval_ms: int = 60000
    linger_ms: int = 5  # how long the producer waits to fill a request: lower is lower latency, higher is cheaper


@dataclass(frozen=True)
class TopicsConfig:
    input: str = "windows"
    events: str = "anomalies"
    dead_letter: str = "windows-dlq"
    scores: str | None = None  # when set, a score record for every window
    # episode state per source (compacted, as many partitions as the input; created if missing): docs/episodes.md.
    # Default: "<input>-episode-state" (see `state_topic`)
    episode_state: str | None = None

    @property
    def state_topic(self) -> str:
        return self.episode_state or f"{self.input}-episode-state"


@dataclass(frozen=True)
class InputConfig:
    format: str = "auto"  # json | f32 | auto
    max_message_bytes: int = 65536


@dataclass(frozen=True)
class BatchConfig:
    max_size: int = 256
    max_wait_ms: float = 20.0
    max_in_flight: int = 4096  # windows consumed but not yet committed-safe; above it partitions pause


@dataclass(frozen=True)
class ModelConfig:
    bundle: str = "bundle"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "float32"  # float32 | bfloat16
    warmup_batches: int = 3
    # torch intra-op threads. 1 by default: the model is small, and extra threads spin against the broker client's
    # own threads and the pod's CPU limit (torch would otherwise start one per core of the node). 0: torch decides.
    threads: int = 1


@dataclass(frozen=True)
class EventsConfig:
    # episodes: one open/update/close per incident and source; windows: an event per anomalous window; both
    mode: str = "episodes"
    segments: int = 10  # the window is cut into this many equal segments for attribution
    top_segments: int = 3


@dataclass(frozen=True)
class EpisodesConfig:
    open_k: int = 1  # an episode opens when open_k of a source's last open_n windows cross the threshold
    open_n: int = 1
    close_ratio: float = 0.8  # while open, windows above close_ratio x threshold keep it open (hysteresis)
    quiet_windows: int = 50  # it closes after this many windows in a row below that level
    cooldown_windows: int = 0  # windows after a close before the source may open a new one
    update_interval_s: float = 60.0  # at most one episode_update per episode per interval (when its peak grew)


@dataclass(frozen=True)
class MetricsConfig:
    # tsad_anomalies_total{source}: the first N sources keep their name, the rest count as "other" (bounded series)
    source_labels: int = 50


@dataclass(frozen=True)
class HttpConfig:
    host: str = "0.0.0.0"
    port: int = 8000


@dataclass(frozen=True)
class WorkerConfig:
    poll_timeout_ms: int = 100
    max_poll_records: int = 2000
    commit_interval_ms: int = 500
    shutdown_timeout_s: float = 20.0
    health_max_loop_age_s: float = 30.0
    lag_interval_s: float = 5.0


@dataclass(frozen=True)
class Config:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    input: InputConfig = field(default_factory=InputConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    episodes: EpisodesConfig = field(default_factory=EpisodesConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)

    def redacted(self) -> dict[str, Any]:
        """The config as a dict with secrets masked: safe to log."""
        out = dataclasses.asdict(self)
        for section, key in SECRET_KEYS:
            if out[section][key] is not None:
                out[section][key] = "***"
        return out


def _convert(key: str, value: Any, annotation: Any) -> Any:
    hint = annotation
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional, hint = True, args[0]
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("", "null", "none")):
        if optional:
            return None
        raise ConfigError(f"{key}: must not be empty")
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if hint is str:
            if isinstance(value, (dict, list)):
                raise ValueError(value)
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected {getattr(hint, '__name__', hint)}, got {value!r}") from None
    raise ConfigError(f"{key}: unsupported type {hint}")


def _build(raw: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    unknown = set(raw) - {f.name for f in dataclasses.fields(Config)}
    if unknown:
        raise ConfigError(f"unknown section(s): {', '.join(sorted(unknown))}")
    sections = {}
    for section_field in dataclasses.fields(Config):
        name = section_field.name
        cls = typing.get_type_hints(Config)[name]
        given = raw.get(name) or {}
        if not isinstance(given, Mapping):
            raise ConfigError(f"{name}: must be a mapping of keys")
        hints = typing.get_type_hints(cls)
        unknown = set(given) - set(hints)
        if unknown:
            raise ConfigError(f"{name}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        values = {}
        for key, hint in hints.items():
            dotted = f"{name}.{key}"
            if (name, key) in SECRET_KEYS and given.get(key) is not None:
                raise ConfigError(f"{dotted}: secrets must not be in the config file; set "
                                  f"TSAD_{name.upper()}_{key.upper()} in the environment")
            env_key = f"TSAD_{name.upper()}_{key.upper()}"
            if env_key in env:
                values[key] = _convert(dotted, env[env_key], hint)
            elif key in given:
                values[key] = _convert(dotted, given[key], hint)
        sections[name] = cls(**values)
    config = Config(**sections)
    validate(config)
    return config


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
    names = [t.input, t.events, t.dead_letter, t.state_topic] + ([t.scores] if t.scores else [])
    if len(set(names)) != len(names):
        raise ConfigError(f"topics: input, events, dead_letter and scores must be distinct (episode_state too), "
                          f"got {names}")
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
    if c.input.format not in ("json", "f32", "auto"):
        raise ConfigError(f"input.format: must be json, f32 or auto, got {c.input.format!r}")
    _positive("input.max_message_bytes", c.input.max_message_bytes)
    _positive("batch.max_size", c.batch.max_size)
    if c.batch.max_wait_ms < 0:
        raise ConfigError(f"batch.max_wait_ms: must be >= 0, got {c.batch.max_wait_ms}")
    if c.batch.max_in_flight < c.batch.max_size:
        raise ConfigError(f"batch.max_in_flight: must be at least batch.max_size ({c.batch.max_size})")
    if c.model.dtype not in ("float32", "bfloat16"):
        raise ConfigError(f"model.dtype: must be float32 or bfloat16, got {c.model.dtype!r}")
    if c.model.threads < 0:
        raise ConfigError(f"model.threads: must be 0 (torch decides) or a positive count, got {c.model.threads}")
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


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load YAML (optional) and apply the environment; raises ConfigError naming the file or key."""
    raw: Any = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from None
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{p}: top level must be a mapping of sections")
    try:
        return _build(raw, os.environ if env is None else env)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path else str(exc)) from None
