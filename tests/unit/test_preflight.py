"""The Kafka start-up check with fake admin clients: what stops start-up, what only warns, and that no secret is
ever part of the message."""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pytest

from detector.config import Config, EventsConfig, KafkaConfig, TopicsConfig
from detector.kafka import preflight
from detector.kafka.preflight import DENIED, StartupCheckError, check_kafka, judge, probe_confluent, scrub

ck = pytest.importorskip("confluent_kafka")
ck_admin = pytest.importorskip("confluent_kafka.admin")
SECRET = "s3cret-pw"
SASL = KafkaConfig(bootstrap_servers="b1:9093,b2:9093", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                   sasl_username="tsad", sasl_password=SECRET, ssl_cafile="/ca.pem")
OK = frozenset({"READ", "WRITE", "DESCRIBE"})


@dataclass
class Described:
    authorized_operations: list[Any] | None


class FakeAdmin:
    """An AdminClient whose metadata request fails `failures` times (reporting `errors` through error_cb)."""

    def __init__(self, conf: dict[str, Any], failures: int = 0, errors: tuple[Any, ...] = (),
                 answers: dict[str, Any] | None = None, logs: tuple[str, ...] = ()) -> None:
        self.conf, self.failures, self.errors, self.answers = conf, failures, list(errors), answers or {}
        self.logs = logs

    def list_topics(self, timeout: float) -> object:
        if self.failures:
            self.failures -= 1
            raise ck.KafkaException(ck.KafkaError(ck.KafkaError._TRANSPORT, "Failed to get metadata"))
        return object()

    def poll(self, _timeout: float) -> int:
        for error in self.errors:
            self.conf["error_cb"](error)
        self.errors.clear()
        for line in self.logs:
            self.conf["logger"].error(line)
        return 0

    def describe_topics(self, topics: Any, **kwargs: Any) -> dict[str, Future[Any]]:
        assert kwargs["include_authorized_operations"] is True
        out = {}
        for name in topics.topic_names:
            f: Future[Any] = Future()
            answer = self.answers.get(name, ["READ", "WRITE", "DESCRIBE"])
            if isinstance(answer, int):
                f.set_exception(ck.KafkaException(ck.KafkaError(answer)))
            else:
                f.set_result(Described([getattr(ck_admin.AclOperation, op) for op in answer]))
            out[name] = f
        return out


def factory(**kw: Any) -> Any:
    return lambda conf: FakeAdmin(conf, **kw)


def test_a_refused_login_stops_at_once_naming_it_without_the_password() -> None:
    refused = ck.KafkaError(ck.KafkaError._AUTHENTICATION, "sasl_ssl://b1:9093/bootstrap: SASL authentication "
                            f"error: Authentication failed due to invalid credentials (sent {SECRET})")
    with pytest.raises(StartupCheckError) as e:
        probe_confluent(SASL, ["in"], 30.0, factory(failures=99, errors=(refused,)))
    text = str(e.value)
    assert "refused the login of SASL user 'tsad'" in text and "invalid credentials" in text
    assert SECRET not in text and "***" in text


def test_a_certificate_that_does_not_verify_is_named() -> None:
    tls = ck.KafkaError(ck.KafkaError._SSL, "SSL handshake failed: certificate verify failed")
    with pytest.raises(StartupCheckError, match=r"TLS with the brokers failed.*certificate verify failed.*ssl_cafile"):
        probe_confluent(SASL, ["in"], 30.0, factory(failures=99, errors=(tls,)))


def test_brokers_that_hang_up_on_a_plaintext_client_are_named_at_once() -> None:
    hang_up = "b1:9093/bootstrap: Disconnected: connection closed by peer (after 1ms in state APIVERSION_QUERY)"
    with pytest.raises(StartupCheckError, match=r"hang up on an anonymous PLAINTEXT client.*security_protocol"):
        probe_confluent(KafkaConfig(bootstrap_servers="b1:9093"), ["in"], 30.0, factory(failures=99, logs=(hang_up,)))


def test_unreachable_brokers_are_retried_until_the_deadline() -> None:
    with pytest.raises(StartupCheckError, match=r"no broker .*b1:9093,b2:9093.* within 0 s.*security_protocol"):
        probe_confluent(SASL, ["in"], 0.3, factory(failures=10**6))


def test_a_broker_that_comes_back_in_time_passes_and_topics_are_described() -> None:
    access = probe_confluent(SASL, ["in", "out", "hidden"], 30.0, factory(
        failures=2, answers={"in": ["READ", "DESCRIBE"], "out": ["DESCRIBE"],
                             "hidden": ck.KafkaError.TOPIC_AUTHORIZATION_FAILED}))
    assert access == {"in": frozenset({"READ", "DESCRIBE"}), "out": frozenset({"DESCRIBE"}), "hidden": DENIED}


def test_no_read_on_the_input_or_state_topic_stops_start_up() -> None:
    with pytest.raises(StartupCheckError, match=r"not authorised to read the input topic 'in'.*kafka.group_id"):
        judge(SASL, {"in": DENIED, "ev": OK}, "in", ["ev"], None)
    with pytest.raises(StartupCheckError, match=r"episode-state topic 'st' .*refused READ"):
        judge(SASL, {"in": OK, "ev": OK, "st": frozenset({"DESCRIBE", "WRITE"})}, "in", ["ev"], "st")


def test_a_refused_default_state_topic_says_how_to_keep_the_earlier_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """ACLs written for the earlier default ('<input>-episode-state') refuse the per-group one: the message says so."""
    monkeypatch.setattr(preflight, "probe_confluent",
                        lambda k, topics, timeout_s: {t: DENIED if t.endswith("state") else OK for t in topics})
    config = Config(kafka=KafkaConfig(group_id="tsad"), topics=TopicsConfig(input="windows"))
    with pytest.raises(StartupCheckError, match=r"'windows-tsad-episode-state'.*to keep an existing one, such as "
                                                r"'windows-episode-state', set topics.episode_state"):
        check_kafka(config)
    named = Config(kafka=KafkaConfig(group_id="tsad"), topics=TopicsConfig(input="windows", episode_state="e-state"))
    with pytest.raises(StartupCheckError) as refused:
        check_kafka(named)
    assert "'e-state'" in str(refused.value) and "set topics.episode_state" not in str(refused.value)


def test_no_write_on_an_output_only_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "tsad.kafka"):
        judge(SASL, {"in": OK, "ev": OK, "sc": DENIED, "dl": frozenset({"DESCRIBE"})}, "in", ["ev", "sc", "dl"], None)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2 and "'sc'" in warned[0] and "'dl'" in warned[1]
    assert all("stay uncommitted until WRITE is granted" in w for w in warned)


def test_unknown_access_passes() -> None:  # a topic not created yet, or a broker without an authorizer
    judge(SASL, {"in": None, "ev": None}, "in", ["ev"], None)


def test_scrub_masks_every_secret() -> None:
    k = KafkaConfig(sasl_password="pw1", ssl_password="pw2")
    assert scrub(k, "a pw1 b pw2 c") == "a *** b *** c"


def test_without_librdkafka_the_kafka_python_reason_is_taken_from_its_log(monkeypatch: pytest.MonkeyPatch) -> None:
    import kafka
    from kafka.errors import KafkaTimeoutError

    class FailingAdmin:
        def __init__(self, **options: Any) -> None:
            assert options["bootstrap_timeout_ms"] == 1000 and options["sasl_plain_password"] == SECRET
            logging.getLogger("kafka.net.manager").error(
                "Bootstrap connection failed: [Error 58] SaslAuthenticationFailedError: invalid credentials")
            raise KafkaTimeoutError("Unable to bootstrap")

    def no_librdkafka(*_a: Any) -> Any:
        raise ImportError("confluent_kafka")

    monkeypatch.setattr(preflight, "probe_confluent", no_librdkafka)
    monkeypatch.setattr(kafka, "KafkaAdminClient", FailingAdmin)
    config = Config(kafka=SASL, topics=TopicsConfig(input="in"))
    with pytest.raises(StartupCheckError) as e:
        check_kafka(config, timeout_s=1.0)
    assert "refused the login for SASL user 'tsad'" in str(e.value) and "SaslAuthenticationFailedError" in str(e.value)
    assert SECRET not in str(e.value)


def test_the_check_returns_the_written_topics_not_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the worker then connects its producer to (service: Sink.connect over the hot ones among these)."""
    monkeypatch.setattr(preflight, "probe_confluent",
                        lambda k, topics, timeout_s: {t: DENIED if t == "sc" else None if t == "dl" else OK
                                                      for t in topics})
    config = Config(topics=TopicsConfig(input="in", events="ev", dead_letter="dl", scores="sc"),
                    events=EventsConfig(mode="windows"))
    assert check_kafka(config) == ["ev", "dl"]  # refused WRITE: left out; unknown (not created yet): kept
