"""The worker's frozen configuration: YAML file, then `TSAD_<SECTION>_<KEY>` environment overrides, validated once.

Secrets (`kafka.sasl_password`, `kafka.ssl_password`) are read from the environment only and never printed:
`redacted()` is what the worker logs.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from detector.config_checks import ConfigError, validate

SECRET_KEYS = {("kafka", "sasl_password"), ("kafka", "ssl_password")}


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
    # Default: "<input>-<kafka.group_id>-episode-state" (see `Config.state_topic`)
    episode_state: str | None = None

    shadow: str | None = None  # the shadow model's verdicts (model.shadow_bundle); default "<events>-shadow"

    @property
    def shadow_topic(self) -> str:
        return self.shadow or f"{self.events}-shadow"


@dataclass(frozen=True)
class InputConfig:
    format: str = "auto"  # json | f32 | batch | auto (docs/formats.md)
    max_message_bytes: int = 65536
    max_batch_bytes: int = 8 << 20  # a batched message (many windows) may be this large


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
    # CPU threads of torch (intra-op), and above 1 of numpy's BLAS too. 1 by default: the model is small, and extra
    # threads spin against the broker client's own threads and the pod's CPU limit (torch would otherwise start one
    # per core of the node). 0: the libraries decide. Above 1 on a GPU, torch also copies batches into pinned
    # memory on them: 8 measured best on a 16-core H200 host (docs/performance.md §6).
    threads: int = 1
    reload_interval_s: float = 2.0  # how often the bundle location is checked for a new bundle; 0: never (restart)
    shadow_bundle: str | None = None  # a candidate scored beside the live model; its verdicts go to topics.shadow
    drift_window: int = 10_000  # about how many recent windows the score-drift index covers


@dataclass(frozen=True)
class EventsConfig:
    # episodes: one open/update/close per incident and source; windows: an event per anomalous window; both
    mode: str = "episodes"
    scores_format: str = "json"  # json: a score record per window; arrow: one record per input message (batched input)
    segments: int = 10  # the window is cut into this many equal segments for attribution
    top_segments: int = 3


@dataclass(frozen=True)
class EpisodesConfig:
    open_k: int = 1  # an episode opens when open_k of a source's last open_n windows cross the threshold
    open_n: int = 1
    close_ratio: float = 0.8  # while open, windows above close_ratio x threshold keep it open (hysteresis)
    quiet_windows: int = 50  # it closes after this many windows in a row below that level
    cooldown_windows: int = 0  # windows after a close before the source may open a new one
    update_interval_s: float = 300.0  # at most one episode_update per episode per interval (when its peak grew)


@dataclass(frozen=True)
class AdaptiveConfig:
    """An adaptive threshold per source (pipeline/adaptive.py; needs events.mode episodes or both)."""

    enabled: bool = False
    quantile: float = 0.99  # the tracked quantile of a source's recent normal scores
    margin: float = 1.5  # threshold = margin x that quantile
    rate: float = 0.01  # log-step per window: how fast it follows
    warmup: int = 200  # normal windows of a source before its own threshold applies
    lower: float = 0.5  # bounds, x the calibrated threshold: the guard against learning a slow failure
    upper: float = 2.0


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
    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)

    @property
    def state_topic(self) -> str:
        """`topics.episode_state`, else one per consumer group as its offsets are: two deployments (groups) reading
        one input must not restore each other's episodes. Characters a topic name cannot hold become '_'."""
        group = re.sub(r"[^A-Za-z0-9._-]", "_", self.kafka.group_id)
        return self.topics.episode_state or f"{self.topics.input}-{group}-episode-state"

    @property
    def hot_topics(self) -> list[str]:
        """The written topics that take records in steady operation (events, scores, episode state): the ones the
        worker connects to at start-up. Dead letters and shadow verdicts may never come: connecting to such a
        topic that does not exist would start kafka-python polling its metadata from start-up."""
        t = self.topics
        return [t.events, *([t.scores] if t.scores else []),
                *([self.state_topic] if self.events.mode != "windows" else [])]

    @property
    def written_topics(self) -> list[str]:
        """Every topic the worker produces to, as configured, the ones written most first (events, scores, state,
        dead letters, shadow verdicts)."""
        return [*self.hot_topics, self.topics.dead_letter,
                *([self.topics.shadow_topic] if self.model.shadow_bundle else [])]

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
