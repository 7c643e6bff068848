"""The bounded start-up check: before the worker's clients are made, reach the cluster (TLS and SASL login included)
with an admin client and ask the broker what the worker's principal may do with its topics (KIP-430 authorised
operations). A problem stops start-up as `StartupCheckError` naming it (the CLI exits 2, no secret in the message);
transient trouble (a broker restarting) is retried until the deadline.

The check runs on librdkafka (confluent-kafka) when it is installed, whichever client the worker uses: librdkafka
reports why a connection failed through `error_cb` (`_AUTHENTICATION` for refused credentials, `_SSL` for a
certificate that does not verify), so a definitive refusal stops the check at once. Without it, kafka-python's
admin client is used; it only times out, so the reason is taken from what kafka-python logged while it tried.

Fatal: no broker reachable, a refused TLS certificate or SASL login, no READ on the input topic or on the
episode-state topic. Logged as a warning only: no WRITE on an output topic (its records are refused and their
windows stay uncommitted until the ACL is granted; docs/reliability.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from detector.config import Config, KafkaConfig
from detector.kafka import settings
from detector.kafka.seams import BrokerError

log = logging.getLogger("tsad.kafka")
STARTUP_CHECK_S = 30.0
DENIED = "denied"  # the broker refused to describe the topic: no ACL on it (or it does not exist)
#: topic -> the operations the principal may perform; DENIED; or None: unknown (missing topic, no authorizer)
Access = dict[str, frozenset[str] | str | None]


class StartupCheckError(BrokerError):
    """The worker cannot use Kafka as configured; the message names the problem (never a secret)."""


def check_kafka(config: Config, timeout_s: float = STARTUP_CHECK_S) -> list[str]:
    """Raise StartupCheckError unless the cluster accepts the worker's connection and login and its principal may
    read the input (and episode-state) topic, within `timeout_s`; warn about output topics it may not write.
    Returns the written topics not refused, in `Config.written_topics` order."""
    t = config.topics
    state = config.state_topic if config.events.mode != "windows" else None
    outputs = [topic for topic in config.written_topics if topic != state]
    topics = [t.input, *outputs, *([state] if state else [])]
    try:
        access = probe_confluent(config.kafka, topics, timeout_s)
    except ImportError:
        access = probe_kafka_python(config.kafka, topics, timeout_s)
    note = "" if t.episode_state is not None else (
        f"; the default state topic follows kafka.group_id ({state!r}): to keep an existing one, such as "
        f"'{t.input}-episode-state', set topics.episode_state")
    refused = judge(config.kafka, access, t.input, outputs, state, note)
    return [topic for topic in config.written_topics if topic not in refused]


def who(k: KafkaConfig) -> str:
    if k.security_protocol.startswith("SASL"):
        return f"SASL user {k.sasl_username!r} ({k.sasl_mechanism} over {k.security_protocol})"
    return f"an anonymous {k.security_protocol} client"


def scrub(k: KafkaConfig, text: str) -> str:
    """`text` with any secret of the config masked (defence in depth: client messages should not carry them)."""
    for secret in (k.sasl_password, k.ssl_password):
        if secret:
            text = text.replace(secret, "***")
    return text


def judge(k: KafkaConfig, access: Access, input_topic: str, outputs: list[str], state: str | None,
          state_note: str = "") -> set[str]:
    """Turn the broker's answer into a refusal (input or state topic not readable) or warnings (outputs);
    `state_note` ends a refusal on the state topic. Returns the topics whose WRITE the broker refused."""

    def may(topic: str, operation: str) -> bool | None:
        ops = access.get(topic)
        if ops == DENIED:
            return False
        return None if not ops else operation in ops

    reads = [(input_topic, "the input topic", ""), *([(state, "the episode-state topic", state_note)] if state else [])]
    for topic, what, note in reads:
        if may(topic, "READ") is False:
            why = "to describe it: no ACL on it, or no such topic" if access.get(topic) == DENIED else "READ"
            raise StartupCheckError(
                f"{who(k)} is not authorised to read {what} {topic!r} (the broker refused {why}): grant the "
                "principal READ on the topic and on the consumer group kafka.group_id; docs/reliability.md lists "
                f"the ACLs the worker needs{note}")
    refused = {topic for topic in [*outputs, *([state] if state else [])] if may(topic, "WRITE") is False}
    for topic in [*outputs, *([state] if state else [])]:
        if topic in refused:
            log.warning("kafka start-up check: %s is not authorised to write to topic %r: its records will be "
                        "refused and their input windows stay uncommitted until WRITE is granted", who(k), topic)
    log.info("kafka start-up check passed: %s may read %r", who(k), input_topic)
    return refused


# --- librdkafka -------------------------------------------------------------------------------------------------

AUTH_CODES = ("_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED")
TLS_CODES = ("_SSL",)
#: librdkafka's log line when a broker hangs up before answering ApiVersions: it expects TLS (or SASL) and this
#: client speaks something else; a restarting broker refuses the connection instead
WRONG_PROTOCOL = "in state APIVERSION_QUERY"
WRONG_PROTOCOL_TIMES = 3  # per bootstrap server before that is taken as definitive


def probe_confluent(k: KafkaConfig, topics: list[str], timeout_s: float,
                    admin_factory: Callable[[dict[str, Any]], Any] | None = None) -> Access:
    """Connect with a librdkafka admin client, then describe `topics` with their authorised operations."""
    from confluent_kafka import KafkaError, KafkaException, TopicCollection

    if admin_factory is None:
        from confluent_kafka.admin import AdminClient

        admin_factory = AdminClient
    errors: list[Any] = []
    with _collected("tsad.kafka.librdkafka", WRONG_PROTOCOL) as hung_up:
        conf = {**settings.render(settings.connection(k), "confluent"), "error_cb": errors.append,
                "logger": logging.getLogger("tsad.kafka.librdkafka")}
        admin = admin_factory(conf)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
                break
            except KafkaException as exc:
                admin.poll(0)  # serves error_cb and the logger
                _raise_definitive(k, errors, hung_up.lines)
                if time.monotonic() >= deadline:
                    last = errors[-1].str() if errors else str(exc)
                    raise StartupCheckError(scrub(k, f"no broker of kafka.bootstrap_servers ({k.bootstrap_servers}) "
                                                     f"answered {who(k)} within {timeout_s:.0f} s: {last}; if the "
                                                     "brokers require TLS or SASL, check kafka.security_protocol")
                                            ) from None
    left = max(1.0, deadline - time.monotonic())
    futures = admin.describe_topics(TopicCollection(topics), include_authorized_operations=True, request_timeout=left)
    access: Access = {}
    for topic, future in futures.items():
        try:
            ops = future.result(timeout=left).authorized_operations
            access[topic] = frozenset(op.name for op in ops) if ops else None
        except KafkaException as exc:
            code = exc.args[0].code() if exc.args else None
            access[topic] = DENIED if code == KafkaError.TOPIC_AUTHORIZATION_FAILED else None
    return access


def _raise_definitive(k: KafkaConfig, errors: list[Any], hung_up: list[str]) -> None:
    if len(hung_up) >= WRONG_PROTOCOL_TIMES * len(k.bootstrap_servers.split(",")):
        raise StartupCheckError(f"the brokers hang up on {who(k)} before answering its first request: they expect "
                                f"another protocol (TLS or SASL?); check kafka.security_protocol ({hung_up[-1]})")
    for error in errors:
        if error.name() in AUTH_CODES:
            raise StartupCheckError(scrub(k, f"the brokers refused the login of {who(k)}: {error.str()}; check "
                                             "kafka.sasl_username and the password (TSAD_KAFKA_SASL_PASSWORD)"))
        if error.name() in TLS_CODES:
            raise StartupCheckError(scrub(k, f"TLS with the brokers failed for {who(k)}: {error.str()}; check "
                                             "kafka.ssl_cafile (the CA that signed the brokers' certificates)"))


# --- kafka-python -----------------------------------------------------------------------------------------------

TELLING = ("SaslAuthenticationFailedError", "CERTIFICATE_VERIFY_FAILED", "Invalid frame length")


class _Collect(logging.Handler):
    """Keeps the messages that contain one of `wanted`."""

    def __init__(self, wanted: tuple[str, ...]) -> None:
        super().__init__(logging.DEBUG)
        self.wanted, self.lines = wanted, list[str]()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if any(t in text for t in self.wanted):
            self.lines.append(text)


@contextmanager
def _collected(name: str, *wanted: str) -> Iterator[_Collect]:
    """What the library logs under `name` while the check runs, kept instead of printed (INFO and up)."""
    logger, handler = logging.getLogger(name), _Collect(wanted)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def probe_kafka_python(k: KafkaConfig, topics: list[str], timeout_s: float) -> Access:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    options = settings.render({**settings.connection(k), "bootstrap_timeout_ms": int(timeout_s * 1000),
                               "request_timeout_ms": 10_000}, "kafka-python")
    with _collected("kafka", *TELLING) as seen:
        try:
            admin = KafkaAdminClient(**options)
        except KafkaError as exc:
            why = seen.lines[-1] if seen.lines else f"{type(exc).__name__}: {exc}"
            hint = ("the brokers refused the login" if "SaslAuthentication" in why
                    else "TLS with the brokers failed" if "CERTIFICATE" in why
                    else "the brokers speak another protocol (TLS?)" if "frame length" in why
                    else "no broker answered")
            raise StartupCheckError(scrub(k, f"{hint} for {who(k)} at {k.bootstrap_servers} within "
                                             f"{timeout_s:.0f} s: {why}")) from None
    try:
        described = admin.describe_topics(topics)
    except KafkaError as exc:
        raise StartupCheckError(scrub(k, f"describing the worker's topics as {who(k)} failed: {exc}")) from None
    finally:
        admin.close()
    access: Access = {}
    for d in described:
        ops = d.get("authorized_operations")
        access[d["name"]] = (DENIED if d.get("error_code") == 29 else
                             frozenset(str(getattr(op, "name", op)).upper() for op in ops) if ops else None)
    return access
