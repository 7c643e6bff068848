"""One client-neutral table of every Kafka setting the worker uses, rendered into each client library's keys.

The worker's choices (acks, isolation, timeouts, security) are made once, here, under neutral names; `render`
turns them into kafka-python keyword arguments or librdkafka properties. A setting one client does not have is
left out for it (a `None` key), and a value that must differ per client says so with `ByClient`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from detector.config import KafkaConfig

CLIENTS = ("kafka-python", "confluent")
COMMIT_TIMEOUT_S = 5.0  # a commit (or a read of committed offsets) waits at most this long for the coordinator


class ByClient(NamedTuple):
    """A value that differs between the two clients."""

    kafka_python: Any
    confluent: Any


FETCH_BYTES = 1 << 20  # the most one fetch brings of one partition: both clients' default
# librdkafka stops fetching for this long once its local queue holds queued.max.messages.kbytes (64 MiB) or
# queued.min.messages; its 1 s default starved the batched worker, which drains 64 MiB of windows in well under a
# second (docs/performance.md §6): the fetcher then only looks again sooner, the queue's bound is unchanged.
FETCH_QUEUE_BACKOFF_MS = 10

#: neutral name -> (kafka-python key, librdkafka key); None: the client has no such setting
KEYS: dict[str, tuple[str | None, str | None]] = {
    # connection and security (consumer and producer)
    "bootstrap_servers": ("bootstrap_servers", "bootstrap.servers"),
    "client_id": ("client_id", "client.id"),
    "security_protocol": ("security_protocol", "security.protocol"),
    "sasl_mechanism": ("sasl_mechanism", "sasl.mechanism"),
    "sasl_username": ("sasl_plain_username", "sasl.username"),
    "sasl_password": ("sasl_plain_password", "sasl.password"),
    "ssl_cafile": ("ssl_cafile", "ssl.ca.location"),
    "ssl_certfile": ("ssl_certfile", "ssl.certificate.location"),
    "ssl_keyfile": ("ssl_keyfile", "ssl.key.location"),
    "ssl_password": ("ssl_password", "ssl.key.password"),
    "bootstrap_timeout_ms": ("bootstrap_timeout_ms", None),  # kafka-python: how long a new client looks for a broker
    "request_timeout_ms": ("request_timeout_ms", None),  # kafka-python: one request's answer (admin, start-up check)
    # consumer
    "group_id": ("group_id", "group.id"),
    "enable_auto_commit": ("enable_auto_commit", "enable.auto.commit"),
    "auto_offset_reset": ("auto_offset_reset", "auto.offset.reset"),
    "max_poll_records": ("max_poll_records", None),  # librdkafka: the count passed to consume()
    "fetch_max_wait_ms": ("fetch_max_wait_ms", "fetch.wait.max.ms"),
    "max_partition_fetch_bytes": ("max_partition_fetch_bytes", "max.partition.fetch.bytes"),
    "fetch_queue_backoff_ms": (None, "fetch.queue.backoff.ms"),  # kafka-python fetches in the caller's poll
    "session_timeout_ms": ("session_timeout_ms", "session.timeout.ms"),
    "max_poll_interval_ms": ("max_poll_interval_ms", "max.poll.interval.ms"),
    "heartbeat_interval_ms": ("heartbeat_interval_ms", "heartbeat.interval.ms"),
    "isolation_level": ("isolation_level", "isolation.level"),
    # producer
    "acks": ("acks", "acks"),
    "linger_ms": ("linger_ms", "linger.ms"),
    "batch_size": ("batch_size", "batch.size"),
    "compression_type": ("compression_type", "compression.type"),
    "max_block_ms": ("max_block_ms", None),  # kafka-python's send blocks on metadata; librdkafka's never does
    "retries": ("retries", None),  # librdkafka retries until message.timeout.ms
    "delivery_timeout_ms": ("delivery_timeout_ms", "message.timeout.ms"),
    "enable_idempotence": ("enable_idempotence", "enable.idempotence"),
    "transactional_id": ("transactional_id", "transactional.id"),
    "transaction_timeout_ms": ("transaction_timeout_ms", "transaction.timeout.ms"),
}

_ADAPT: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("bootstrap_servers", "kafka-python"): lambda v: v.split(","),
    ("security_protocol", "confluent"): str.lower,
    ("compression_type", "kafka-python"): lambda v: None if v == "none" else v,
}


def connection(k: KafkaConfig) -> dict[str, Any]:
    """Connection and security settings shared by the consumer and the producer (secrets only when used)."""
    out: dict[str, Any] = {"bootstrap_servers": k.bootstrap_servers, "client_id": k.client_id,
                           "security_protocol": k.security_protocol}
    if k.security_protocol.startswith("SASL"):
        out.update(sasl_mechanism=k.sasl_mechanism, sasl_username=k.sasl_username, sasl_password=k.sasl_password)
    if k.security_protocol.endswith("SSL"):
        out.update(ssl_cafile=k.ssl_cafile, ssl_certfile=k.ssl_certfile, ssl_keyfile=k.ssl_keyfile,
                   ssl_password=k.ssl_password)
    return out


def consumer(k: KafkaConfig, max_poll_records: int, fetch_bytes: int = FETCH_BYTES) -> dict[str, Any]:
    """A group member with manual commits that starts from the beginning of a partition nobody committed;
    `fetch_bytes` is the most one fetch brings of one partition."""
    return {
        **connection(k),
        "group_id": k.group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": max_poll_records,
        "fetch_max_wait_ms": 100,
        "max_partition_fetch_bytes": fetch_bytes,
        "fetch_queue_backoff_ms": FETCH_QUEUE_BACKOFF_MS,
        "session_timeout_ms": k.session_timeout_ms,
        "max_poll_interval_ms": k.max_poll_interval_ms,
        "heartbeat_interval_ms": max(1000, k.session_timeout_ms // 3),
        # exactly-once: never read the outputs of aborted transactions upstream either
        "isolation_level": "read_committed" if k.exactly_once else "read_uncommitted",
    }


def producer(k: KafkaConfig) -> dict[str, Any]:
    """acks=all; transactional (idempotent, with the worker's transactional id) in exactly-once mode."""
    out: dict[str, Any] = {
        **connection(k),
        "acks": "all",
        "linger_ms": k.linger_ms,
        # kafka-python keeps one buffer of this size per partition batch in Python; librdkafka's is native
        "batch_size": ByClient(256 * 1024, 1024 * 1024),
        "compression_type": "none",
        "max_block_ms": 5_000,
        "retries": 5,
        # a record not acknowledged by then is reported failed; the worker retries it (the input stays open).
        # kafka-python requires it above linger + request timeout, hence its shorter request timeout
        "delivery_timeout_ms": 30_000,
        "request_timeout_ms": 20_000,
    }
    if k.exactly_once:
        # A worker killed mid-transaction leaves it open until this timeout; until then read_committed readers
        # (the next owner's episode-state read, downstream consumers) stop before it. Not below the delivery
        # timeout (librdkafka requires that); the Java default is 60 s.
        out.update(enable_idempotence=True, transactional_id=transactional_id(k), transaction_timeout_ms=30_000)
    return out


def transactional_id(k: KafkaConfig) -> str:
    """The configured id, else `<group_id>-<client_id>` (unique per running worker when client ids are)."""
    return k.transactional_id or f"{k.group_id}-{k.client_id}"


def render(settings: Mapping[str, Any], client: str) -> dict[str, Any]:
    """The settings under `client`'s own keys; unset values and settings the client lacks are left out."""
    column = CLIENTS.index(client)
    out: dict[str, Any] = {}
    for name, value in settings.items():
        key = KEYS[name][column]
        if isinstance(value, ByClient):
            value = value[column]
        if key is None or value is None:
            continue
        out[key] = _ADAPT.get((name, client), _same)(value)
    return out


def _same(value: Any) -> Any:
    return value
