from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from detector.config import Config, ConfigError, load_config
from detector.kafka import settings


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "detector.yaml"
    path.write_text(text)
    return path


def test_defaults_file_and_environment_layering(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "kafka:\n  bootstrap_servers: k1:9092\nbatch:\n  max_size: 64\n")
    config = load_config(path, env={"TSAD_BATCH_MAX_WAIT_MS": "5", "TSAD_TOPICS_SCORES": "all-scores",
                                    "TSAD_MODEL_DEVICE": "cpu"})
    assert config.kafka.bootstrap_servers == "k1:9092"
    assert config.batch.max_size == 64 and config.batch.max_wait_ms == 5.0
    assert config.topics.scores == "all-scores" and config.model.device == "cpu"
    assert config.topics.input == "windows"  # default
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.batch = None  # type: ignore[misc]


def test_env_only_without_a_file() -> None:
    config = load_config(None, env={"TSAD_KAFKA_GROUP_ID": "g2", "TSAD_HTTP_PORT": "9100"})
    assert config.kafka.group_id == "g2" and config.http.port == 9100


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("batch:\n  max_size: many\n", {}, "batch.max_size: expected int, got 'many'"),
        ("batch:\n  max_size: 0\n", {}, "batch.max_size: must be positive"),
        ("batch:\n  max_sise: 8\n", {}, "batch: unknown key(s) max_sise"),
        ("bacth: {}\n", {}, "unknown section(s): bacth"),
        ("kafka:\n  security_protocol: TLS\n", {}, "kafka.security_protocol: must be one of"),
        ("kafka:\n  security_protocol: SASL_SSL\n  sasl_mechanism: PLAIN\n  sasl_username: u\n", {},
         "kafka.sasl_password: required with SASL_SSL; set TSAD_KAFKA_SASL_PASSWORD"),
        ("kafka:\n  sasl_password: hunter2\n", {}, "kafka.sasl_password: secrets must not be in the config file"),
        ("kafka:\n  ssl_cafile: /nonexistent/ca.pem\n", {}, "kafka.ssl_cafile: file /nonexistent/ca.pem not found"),
        ("input:\n  format: xml\n", {}, "input.format: must be json, f32 or auto"),
        ("model:\n  dtype: fp8\n", {}, "model.dtype: must be float32 or bfloat16"),
        ("topics:\n  events: windows\n", {}, "topics: input, events, dead_letter and scores must be distinct"),
        ("batch:\n  max_size: 64\n  max_in_flight: 10\n", {}, "batch.max_in_flight: must be at least"),
        ("", {"TSAD_HTTP_PORT": "http"}, "http.port: expected int, got 'http'"),
        ("", {"TSAD_KAFKA_EXACTLY_ONCE": "maybe"}, "kafka.exactly_once: expected bool"),
        ("- just\n- a list\n", {}, "top level must be a mapping"),
        ("kafka: [\n", {}, "not valid YAML"),
        ("kafka:\n  client: librdkafka\n", {}, "kafka.client: must be one of ['kafka-python', 'confluent']"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, env: dict, message: str) -> None:
    path = _yaml(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, env=env)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/nonexistent/detector.yaml", env={})


def test_secret_from_environment_is_used_and_masked(tmp_path: Path, caplog) -> None:
    path = _yaml(tmp_path, "kafka:\n  security_protocol: SASL_SSL\n  sasl_mechanism: SCRAM-SHA-512\n"
                           "  sasl_username: tsad\n")
    config = load_config(path, env={"TSAD_KAFKA_SASL_PASSWORD": "hunter2"})
    assert config.kafka.sasl_password == "hunter2"
    redacted = config.redacted()
    assert redacted["kafka"]["sasl_password"] == "***"
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("config: %s", redacted)
    assert "hunter2" not in caplog.text


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {"security_protocol": "PLAINTEXT"}),
        ({"TSAD_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "TSAD_KAFKA_SASL_MECHANISM": "PLAIN",
          "TSAD_KAFKA_SASL_USERNAME": "u", "TSAD_KAFKA_SASL_PASSWORD": "p"},
         {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u",
          "sasl_plain_password": "p"}),
        ({"TSAD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "TSAD_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
          "TSAD_KAFKA_SASL_USERNAME": "u", "TSAD_KAFKA_SASL_PASSWORD": "p", "TSAD_KAFKA_SSL_PASSWORD": "kp"},
         {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256", "ssl_password": "kp"}),
        ({"TSAD_KAFKA_SECURITY_PROTOCOL": "SSL"}, {"security_protocol": "SSL"}),
    ],
)
def test_security_settings_reach_the_client(env: dict, expected: dict) -> None:
    options = settings.render(settings.connection(load_config(None, env=env).kafka), "kafka-python")
    for key, value in expected.items():
        assert options[key] == value
    if env.get("TSAD_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT") == "PLAINTEXT":
        assert "sasl_plain_password" not in options


def test_security_settings_reach_the_confluent_client(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-")
    env = {"TSAD_KAFKA_CLIENT": "confluent", "TSAD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "TSAD_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "TSAD_KAFKA_SASL_USERNAME": "u",
           "TSAD_KAFKA_SASL_PASSWORD": "p", "TSAD_KAFKA_SSL_CAFILE": str(ca),
           "TSAD_KAFKA_BOOTSTRAP_SERVERS": "a:9092,b:9092"}
    options = settings.render(settings.connection(load_config(None, env=env).kafka), "confluent")
    assert options == {"bootstrap.servers": "a:9092,b:9092", "client.id": "tsad-worker",
                       "security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "u",
                       "sasl.password": "p",
                       "ssl.ca.location": str(ca)}
    plain = settings.render(settings.connection(load_config(None, env={}).kafka), "confluent")
    assert plain["security.protocol"] == "plaintext" and "sasl.password" not in plain


def test_confluent_client_without_the_package_is_a_config_error(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "confluent_kafka" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'tsad\[confluent\]'"):
        load_config(None, env={"TSAD_KAFKA_CLIENT": "confluent"})


def test_default_config_is_valid() -> None:
    assert load_config(None, env={}) == Config()


def test_the_documented_example_config_is_valid() -> None:
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "docs" / "detector.example.yaml"
    config = load_config(example, env={})
    assert config.topics.events == "anomalies" and config.model.bundle == "/models/current"


def test_one_settings_table_renders_both_clients() -> None:
    """The worker's Kafka choices are made once under neutral names; each client gets its own keys."""
    k = load_config(None, env={"TSAD_KAFKA_EXACTLY_ONCE": "1", "TSAD_KAFKA_GROUP_ID": "g",
                               "TSAD_KAFKA_CLIENT_ID": "w1", "TSAD_KAFKA_BOOTSTRAP_SERVERS": "a:1,b:2"}).kafka
    neutral = settings.consumer(k, 500)
    python_keys, librdkafka_keys = settings.render(neutral, "kafka-python"), settings.render(neutral, "confluent")
    assert python_keys["isolation_level"] == librdkafka_keys["isolation.level"] == "read_committed"
    assert python_keys["bootstrap_servers"] == ["a:1", "b:2"] and librdkafka_keys["bootstrap.servers"] == "a:1,b:2"
    assert python_keys["max_poll_records"] == 500 and "max.poll.records" not in librdkafka_keys
    producer = settings.producer(k)
    python_keys, librdkafka_keys = settings.render(producer, "kafka-python"), settings.render(producer, "confluent")
    assert python_keys["transactional_id"] == librdkafka_keys["transactional.id"] == "g-w1"
    assert python_keys["batch_size"] == 256 * 1024 and librdkafka_keys["batch.size"] == 1024 * 1024
    assert python_keys["compression_type"] is None and librdkafka_keys["compression.type"] == "none"
    assert "max_block_ms" in python_keys and "message.timeout.ms" in librdkafka_keys
    assert set(settings.KEYS) >= set(neutral) | set(producer)  # every neutral name is in the table


def test_a_partition_fetch_holds_a_whole_batched_message() -> None:
    """Where batched messages may arrive, one fetch of a partition may bring one at its size limit; per-window
    formats keep the clients' 1 MiB."""
    from detector.kafka.factory import fetch_bytes

    batched = load_config(None, env={"TSAD_INPUT_FORMAT": "batch", "TSAD_INPUT_MAX_BATCH_BYTES": str(16 << 20)})
    assert fetch_bytes(batched) == 16 << 20
    assert fetch_bytes(load_config(None, env={"TSAD_INPUT_FORMAT": "f32"})) == 1 << 20
    neutral = settings.consumer(batched.kafka, 64, fetch_bytes(batched))
    assert settings.render(neutral, "confluent")["max.partition.fetch.bytes"] == 16 << 20
    assert settings.render(neutral, "kafka-python")["max_partition_fetch_bytes"] == 16 << 20


def test_librdkafka_looks_again_soon_after_its_fetch_queue_filled() -> None:
    """With librdkafka's 1 s default the batched worker drained its 64 MiB queue and then waited: the fetcher must
    look again well within one batch's wait (docs/performance.md §6). kafka-python has no such setting."""
    neutral = settings.consumer(load_config(None, env={"TSAD_INPUT_FORMAT": "batch"}).kafka, 64)
    assert settings.render(neutral, "confluent")["fetch.queue.backoff.ms"] <= 20
    assert not any("backoff" in key for key in settings.render(neutral, "kafka-python"))


def test_metrics_source_labels_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"metrics\.source_labels"):
        load_config(None, env={"TSAD_METRICS_SOURCE_LABELS": "-1"})
    assert load_config(None, env={"TSAD_METRICS_SOURCE_LABELS": "5"}).metrics.source_labels == 5


def test_written_topics_are_every_output_the_configuration_enables() -> None:
    """What the start-up check looks at, and what the worker connects to (Sink.connect, the hot ones): scores,
    state and shadow only when enabled."""
    from detector.config import EventsConfig, KafkaConfig, ModelConfig, TopicsConfig

    topics = TopicsConfig(input="in", events="ev", dead_letter="dlq")
    plain = Config(topics=topics, events=EventsConfig(mode="windows"))
    assert plain.written_topics == ["ev", "dlq"]  # the ones written most first
    full = Config(topics=dataclasses.replace(topics, scores="sc"), kafka=KafkaConfig(group_id="g"),
                  events=EventsConfig(mode="episodes"), model=ModelConfig(shadow_bundle="candidate/"))
    assert full.written_topics == ["ev", "sc", "in-g-episode-state", "dlq", "ev-shadow"]
    assert plain.hot_topics == ["ev"] and full.hot_topics == ["ev", "sc", "in-g-episode-state"]
