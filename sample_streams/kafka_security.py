"""SASL_SSL for the local Kafka cluster: a throw-away CA and broker certificate, SCRAM-SHA-512 users, ACLs.

Every listener is secured. Clients and brokers (inter-broker traffic) use the `SASL_SSL` listener with SCRAM-SHA-512;
the users are written into the metadata log when the nodes are formatted (`kafka-storage format --add-scram`), so they
exist before the first start. The `CONTROLLER` listener uses SASL_SSL with PLAIN, since KRaft cannot use SCRAM between
controllers (the credentials live in the metadata log the controllers serve). Authorization is the KRaft
`StandardAuthorizer` with the admin user as the only super user; everyone else needs ACLs (`grant`).

    security = SaslSsl(users={"alice": "alice-secret"})
    with LocalKafkaCluster(brokers=3, security=security) as cluster:
        KafkaProducer(bootstrap_servers=cluster.bootstrap, **security.kafka_python("alice"))
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sample_streams.local_kafka import KafkaLauncherError

MECHANISM = "SCRAM-SHA-512"
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
_PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"


@dataclass(frozen=True)
class TlsFiles:
    """PEM CA certificate (what clients trust) and the brokers' PKCS12 key store (key + chain)."""

    ca_pem: Path
    keystore: Path
    keystore_password: str


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise KafkaLauncherError("'openssl' is required to make the local CA and broker certificates, but it is not "
                                 "on PATH")
    proc = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise KafkaLauncherError(f"openssl {args[0]} failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def make_certificates(directory: Path, hosts: Iterable[str] = ("127.0.0.1", "localhost"),
                      days: int = 825) -> TlsFiles:
    """A fresh CA (EC P-256) and one broker certificate for `hosts` (IP and DNS SANs), signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    sans = ",".join(f"IP:{h}" if _is_ip(h) else f"DNS:{h}" for h in hosts)
    (directory / "broker.ext").write_text(
        f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", str(days), "-subj",
             "/CN=tsad local Kafka CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    _openssl("req", *ec, "-keyout", "broker.key", "-out", "broker.csr", "-subj", "/CN=localhost", cwd=directory)
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "broker.pem", "-days", str(days), "-extfile", "broker.ext", cwd=directory)
    _openssl("pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-certfile", "ca.pem",
             "-name", "broker", "-out", "broker.p12", "-passout", f"pass:{password}", cwd=directory)
    for name in ("ca.key", "broker.key", "broker.p12"):
        (directory / name).chmod(0o600)
    return TlsFiles(directory / "ca.pem", directory / "broker.p12", password)


def _check_name(user: str) -> str:
    if not _NAME.match(user):
        raise ValueError(f"SCRAM user name {user!r} must match {_NAME.pattern}")
    return user


@dataclass
class SaslSsl:
    """SASL_SSL + SCRAM-SHA-512 + StandardAuthorizer settings for the local brokers, and the matching client configs.

    `users` maps client user names to passwords (created at format time). The admin user is the brokers' own
    identity (inter-broker and controller traffic) and the only super user. `tls` is made by `prepare` if unset.
    """

    users: dict[str, str] = field(default_factory=dict)
    admin_user: str = "admin"
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    tls: TlsFiles | None = None
    pending: dict[str, str] = field(default_factory=dict)
    _state: Path | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for user in (self.admin_user, *self.users):
            _check_name(user)

    def prepare(self, work_dir: Path) -> None:
        """Make the CA and broker certificate under `work_dir/tls`; or, for a directory kept from an earlier run, load
        them and the SCRAM passwords stored there (the metadata log keeps the old credentials). Users given now that
        the log does not know yet are left in `pending` for the cluster to create once it runs."""
        if self.tls is not None:
            return
        self._state = work_dir / "tls" / "state.json"
        if self._state.is_file():
            saved = json.loads(self._state.read_text())
            self.admin_user, self.admin_password = saved["admin_user"], saved["admin_password"]
            self.tls = TlsFiles(Path(saved["ca_pem"]), Path(saved["keystore"]), saved["keystore_password"])
            self.pending = {u: p for u, p in self.users.items() if saved["users"].get(u) != p}
            self.users = {**saved["users"], **self.users}
        else:
            self.tls = make_certificates(work_dir / "tls")
        self.save()

    def save(self) -> None:
        """Store the certificates' places and every password beside the certificates (mode 0600)."""
        if self.tls is None or self._state is None:
            return
        self._state.write_text(json.dumps({
            "admin_user": self.admin_user, "admin_password": self.admin_password, "users": self.users,
            "ca_pem": str(self.tls.ca_pem), "keystore": str(self.tls.keystore),
            "keystore_password": self.tls.keystore_password}, indent=2))
        self._state.chmod(0o600)

    @property
    def ca_file(self) -> Path:
        if self.tls is None:
            raise KafkaLauncherError("the certificates are not made yet: start the cluster (or call prepare) first")
        return self.tls.ca_pem

    def passwords(self) -> dict[str, str]:
        return {self.admin_user: self.admin_password, **self.users}

    def format_args(self) -> list[str]:
        """`kafka-storage format` arguments that create every user's SCRAM-SHA-512 credential."""
        return [arg for user, password in self.passwords().items()
                for arg in ("--add-scram", f"{MECHANISM}=[name={user},password={password}]")]

    def broker_properties(self) -> dict[str, str]:
        """Security settings of one node (listener names: SASL_SSL for clients and brokers, CONTROLLER)."""
        if self.tls is None:
            raise KafkaLauncherError("SaslSsl.prepare(work_dir) must run before the broker settings are written")
        user, password = self.admin_user, self.admin_password
        return {
            "listener.security.protocol.map": "CONTROLLER:SASL_SSL,SASL_SSL:SASL_SSL",
            "inter.broker.listener.name": "SASL_SSL",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                f'{_SCRAM_MODULE} required username="{user}" password="{password}";',
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config":
                f'{_PLAIN_MODULE} required username="{user}" password="{password}" user_{user}="{password}";',
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(self.tls.keystore),
            "ssl.keystore.password": self.tls.keystore_password,
            "ssl.key.password": self.tls.keystore_password,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.tls.ca_pem),
            "ssl.client.auth": "none",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{user}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def _password(self, user: str, password: str | None) -> str:
        if password is not None:
            return password
        known = self.passwords()
        if user not in known:
            raise KeyError(f"no password known for user {user!r}; known users: {sorted(known)}")
        return known[user]

    def kafka_python(self, user: str | None = None, password: str | None = None) -> dict[str, Any]:
        """kafka-python client settings (KafkaProducer/KafkaConsumer/KafkaAdminClient keyword arguments)."""
        user = user or self.admin_user
        return {"security_protocol": "SASL_SSL", "sasl_mechanism": MECHANISM, "sasl_plain_username": user,
                "sasl_plain_password": self._password(user, password), "ssl_cafile": str(self.ca_file)}

    def confluent(self, user: str | None = None, password: str | None = None) -> dict[str, str]:
        """confluent-kafka (librdkafka) settings; add `bootstrap.servers`."""
        user = user or self.admin_user
        return {"security.protocol": "SASL_SSL", "sasl.mechanisms": MECHANISM, "sasl.username": user,
                "sasl.password": self._password(user, password), "ssl.ca.location": str(self.ca_file)}


def add_user(bootstrap: str, admin_config: dict[str, Any], user: str, password: str) -> None:
    """Create or change a SCRAM-SHA-512 user on a running cluster (AlterUserScramCredentials, as the admin)."""
    from kafka import KafkaAdminClient
    from kafka.admin import ScramMechanism, UserScramCredentialUpsertion

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **admin_config)
    try:
        result = admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(_check_name(user), ScramMechanism.SCRAM_SHA_512, password)])
    finally:
        admin.close()
    if result.get(user):
        raise KafkaLauncherError(f"creating SCRAM user {user!r} failed: {result[user]}")


def grant(bootstrap: str, admin_config: dict[str, Any], principal: str, *, read_topics: Iterable[str] = (),
          read_groups: Iterable[str] = (), write_topics: Iterable[str] = (),
          transactional_ids: Iterable[str] = (), host: str = "*") -> int:
    """ALLOW ACLs for `principal` ("User:alice" or "alice"): READ on topics and groups, WRITE on topics, DESCRIBE and
    WRITE on transactional ids (all literal names). READ and WRITE imply DESCRIBE. Returns the number created."""
    from kafka import KafkaAdminClient
    from kafka.admin import ACL, ACLOperation, ACLPermissionType, ResourcePattern, ResourceType

    principal = principal if principal.startswith("User:") else f"User:{_check_name(principal)}"
    wanted = ([(ResourceType.TOPIC, t, ACLOperation.READ) for t in read_topics]
              + [(ResourceType.GROUP, g, ACLOperation.READ) for g in read_groups]
              + [(ResourceType.TOPIC, t, ACLOperation.WRITE) for t in write_topics]
              + [(ResourceType.TRANSACTIONAL_ID, t, op) for t in transactional_ids
                 for op in (ACLOperation.DESCRIBE, ACLOperation.WRITE)])
    if not wanted:
        return 0
    acls = [ACL(principal, host, op, ACLPermissionType.ALLOW, ResourcePattern(kind, name))
            for kind, name, op in wanted]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **admin_config)
    try:
        result = admin.create_acls(acls)
    finally:
        admin.close()
    if result["failed"]:
        raise KafkaLauncherError(f"creating ACLs for {principal} failed: {result['failed']}")
    return len(result["succeeded"])


class SecuredClusterMixin:
    """The client side of a `LocalKafkaCluster`: client settings (empty when unsecured), users and ACLs."""

    security: SaslSsl | None

    @property
    def bootstrap(self) -> str:
        raise NotImplementedError

    @property
    def live_bootstrap(self) -> str:
        raise NotImplementedError

    def client_config(self, user: str | None = None, password: str | None = None) -> dict[str, Any]:
        """kafka-python keyword arguments for `user` (default: the admin) without bootstrap; {} when unsecured."""
        return self.security.kafka_python(user, password) if self.security else {}

    def confluent_config(self, user: str | None = None, password: str | None = None) -> dict[str, str]:
        """confluent-kafka settings for `user`, with `bootstrap.servers`."""
        extra = self.security.confluent(user, password) if self.security else {}
        return {"bootstrap.servers": self.bootstrap, **extra}

    def connection_info(self) -> dict[str, Any]:
        """What a client needs: bootstrap, security protocol, SASL mechanism, CA file and the users' passwords."""
        info: dict[str, Any] = {"bootstrap": self.bootstrap, "security_protocol": "PLAINTEXT"}
        if self.security:
            info.update(security_protocol="SASL_SSL", sasl_mechanism=MECHANISM, ca_file=str(self.security.ca_file),
                        admin_user=self.security.admin_user, users=self.security.passwords())
        return info

    def _secured(self) -> SaslSsl:
        if self.security is None:
            raise KafkaLauncherError("this cluster runs without security: pass security=SaslSsl(...)")
        return self.security

    def grant(self, principal: str, *, read_topics: Iterable[str] = (), read_groups: Iterable[str] = (),
              write_topics: Iterable[str] = (), transactional_ids: Iterable[str] = ()) -> int:
        """ALLOW ACLs for `principal`: READ topics/groups, WRITE topics, DESCRIBE+WRITE transactional ids."""
        self._secured()
        return grant(self.live_bootstrap, self.client_config(), principal, read_topics=read_topics,
                     read_groups=read_groups, write_topics=write_topics, transactional_ids=transactional_ids)

    def add_user(self, user: str, password: str) -> None:
        """Create or change a SCRAM-SHA-512 user while the cluster runs (it is then known to `client_config`)."""
        security = self._secured()
        add_user(self.live_bootstrap, self.client_config(), user, password)
        security.users[user] = password
        security.save()

    def _create_pending_users(self) -> None:
        """Users given for a kept directory whose metadata log does not know them yet (see `SaslSsl.prepare`)."""
        if self.security:
            for user, password in list(self.security.pending.items()):
                self.add_user(user, password)
            self.security.pending.clear()
