"""A single-node Apache Kafka broker (KRaft) on 127.0.0.1 for tests, benchmarks and the demo.

The broker's jars come from Maven Central through Maven, once, into a cache directory outside the repository
(`$TSAD_KAFKA_CACHE` or `~/.cache/tsad/kafka-<version>`); later starts reuse them. Needs Java 17+ and Maven.

    with LocalKafka() as kafka:          # free ports, fresh log directory
        print(kafka.bootstrap)           # "127.0.0.1:PORT"
        kafka.restart()                  # same ports, same log directory: data survives
        kafka.pause(); kafka.resume()    # SIGSTOP / SIGCONT (kill() is SIGKILL)

A three-node cluster and SASL_SSL: sample_streams/kafka_cluster.py and sample_streams/kafka_security.py.
"""

from __future__ import annotations

import base64
import fcntl
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

from sample_streams.ports import free_port

KAFKA_VERSION = "3.9.1"
_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tsad.local</groupId><artifactId>kafka-broker-jars</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{version}</version>
    </dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version>
    </dependency>
    <dependency><groupId>ch.qos.reload4j</groupId><artifactId>reload4j</artifactId><version>1.2.25</version>
    </dependency>
  </dependencies>
</project>
"""
_LOG4J = """log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=WARN
log4j.logger.kafka.server.KafkaRaftServer=INFO
"""
READY_LINE = "Kafka Server started"


class KafkaLauncherError(RuntimeError):
    """The local broker cannot be provisioned or started; the message says what is missing."""


def java_major_version(java: str = "java") -> int:
    exe = shutil.which(java)
    if exe is None:
        raise KafkaLauncherError("Java 17+ is required to run the local Kafka broker, but 'java' is not on PATH")
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise KafkaLauncherError(f"cannot read the Java version from {exe} -version: {out.strip()[:200]}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def default_cache_dir(version: str = KAFKA_VERSION) -> Path:
    base = os.environ.get("TSAD_KAFKA_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "tsad" / f"kafka-{version}"


def ensure_jars(cache_dir: Path | None = None, version: str = KAFKA_VERSION) -> Path:
    """Resolve the broker's runtime jars with Maven into `cache_dir/lib` (once); return that directory."""
    cache = cache_dir or default_cache_dir(version)
    lib, marker = cache / "lib", cache / "lib" / ".complete"
    if marker.is_file():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaLauncherError("Maven ('mvn') is required once to fetch the Kafka broker jars from Maven Central, "
                                 "but it is not on PATH")
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:  # several processes (pytest -n 2) may need the jars at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file():  # another process fetched them while this one waited
            return lib
        return _fetch_jars(mvn, cache, lib, marker, version)


def _fetch_jars(mvn: str, cache: Path, lib: Path, marker: Path, version: str) -> Path:
    (cache / "pom.xml").write_text(_POM.format(version=version))
    tmp_lib = cache / "lib.partial"
    shutil.rmtree(tmp_lib, ignore_errors=True)
    cmd = [mvn, "-B", "-q", "dependency:copy-dependencies", f"-DoutputDirectory={tmp_lib}",
           "-DincludeScope=runtime"]
    proc = subprocess.run(cmd, cwd=cache, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise KafkaLauncherError(f"Maven could not fetch the Kafka {version} jars (exit {proc.returncode}):\n"
                                 f"{(proc.stdout + proc.stderr)[-3000:]}")
    shutil.rmtree(lib, ignore_errors=True)
    tmp_lib.replace(lib)
    marker.write_text(version + "\n")
    return lib


def _cluster_id() -> str:
    while True:  # Kafka refuses ids whose text starts with '-'
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


class LocalKafka:
    """One KRaft broker+controller process; `start`, `stop` and `restart` keep the same ports and log dir."""

    def __init__(self, work_dir: str | os.PathLike[str] | None = None, cache_dir: Path | None = None,
                 version: str = KAFKA_VERSION, heap: str = "1g", port: int | None = None) -> None:
        self.version = version
        self.cache_dir = cache_dir
        self.heap = heap
        self._owns_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="tsad-kafka-"))
        self.port = port or free_port()
        self.controller_port = free_port()
        self.log_dir = self.work_dir / "data"
        self.server_log = self.work_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.start_seconds = 0.0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _properties(self) -> dict[str, str]:
        """The broker's server.properties."""
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "5",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
        }

    def _write_config(self) -> Path:
        props = self._properties()
        path = self.work_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.work_dir / "log4j.properties").write_text(_LOG4J.format(log=self.server_log))
        return path

    def _java(self, lib: Path, *args: str, heap: str | None = None) -> list[str]:
        cmd = ["java"]
        if heap:
            cmd += [f"-Xmx{heap}", "-Xms256m"]
        cmd += [f"-Dlog4j.configuration=file:{self.work_dir / 'log4j.properties'}", "-cp", f"{lib}/*", *args]
        return cmd

    def start(self, timeout: float = 120.0) -> str:
        """Start (formatting the log directory on first use) and wait until the broker answers."""
        if self.running:
            return self.bootstrap
        lib, config = self._prepare()
        began = time.monotonic()
        fmt_cmd = self._format_command(lib, config)
        if fmt_cmd:
            fmt = subprocess.run(fmt_cmd, capture_output=True, text=True, check=False)
            if fmt.returncode != 0:
                raise KafkaLauncherError(f"formatting {self.log_dir} failed: {(fmt.stdout + fmt.stderr)[-2000:]}")
        offset = self._launch(lib, config)
        self._wait_ready(offset, began + timeout)
        self.start_seconds = time.monotonic() - began
        return self.bootstrap

    def _prepare(self) -> tuple[Path, Path]:
        """Check Java, fetch the jars, write the configuration: (jar directory, server.properties)."""
        if java_major_version() < 17:
            raise KafkaLauncherError(f"Java 17+ is required to run Kafka {self.version}; found Java "
                                     f"{java_major_version()}")
        lib = ensure_jars(self.cache_dir, self.version)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return lib, self._write_config()

    def _format_command(self, lib: Path, config: Path, cluster_id: str | None = None,
                        extra: tuple[str, ...] = ()) -> list[str] | None:
        """The StorageTool command that formats the log directory, or None when it is formatted already."""
        if (self.log_dir / "meta.properties").is_file():
            return None
        return self._java(lib, "kafka.tools.StorageTool", "format", "-t", cluster_id or _cluster_id(), "-c",
                          str(config), *extra)

    def _launch(self, lib: Path, config: Path) -> int:
        """Spawn the JVM; return the server log's size before it (where to look for the ready line)."""
        offset = self.server_log.stat().st_size if self.server_log.exists() else 0
        with (self.work_dir / "stdout.log").open("ab") as out:
            self.process = subprocess.Popen(self._java(lib, "kafka.Kafka", str(config), heap=self.heap),
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return offset

    def _wait_ready(self, log_offset: int, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise KafkaLauncherError(f"the broker exited with {self.process.returncode} during start-up; "
                                         f"see {self.server_log} and {self.work_dir / 'stdout.log'}")
            if self.server_log.exists():
                with self.server_log.open("rb") as f:
                    f.seek(log_offset)
                    if READY_LINE.encode() in f.read():
                        return
            time.sleep(0.1)
        self.stop()
        raise KafkaLauncherError(f"the broker did not become ready in time; see {self.server_log}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (controlled shutdown), then SIGKILL after `timeout` seconds."""
        proc, self.process, self.paused = self.process, None, False
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)  # a paused broker could not act on SIGTERM
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def kill(self) -> None:
        """SIGKILL, no clean shutdown (for fault injection)."""
        proc, self.process, self.paused = self.process, None, False
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: the JVM freezes with its sockets open (a hung broker, for fault injection); returns once stopped."""
        self._signal(signal.SIGSTOP, stopped=True)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after `pause`; returns once the process runs again."""
        self._signal(signal.SIGCONT, stopped=False)
        self.paused = False

    def _signal(self, sig: signal.Signals, stopped: bool) -> None:
        if self.process is None or self.process.poll() is not None:
            raise KafkaLauncherError(f"cannot send {sig.name}: the broker in {self.work_dir} is not running")
        self.process.send_signal(sig)
        stat = Path(f"/proc/{self.process.pid}/stat")
        deadline = time.monotonic() + 5.0
        while stat.exists() and time.monotonic() < deadline:  # signals are delivered asynchronously
            if (stat.read_text().rsplit(")", 1)[1].split()[0] == "T") == stopped:
                return
            time.sleep(0.01)

    def restart(self, timeout: float = 120.0) -> str:
        self.stop()
        return self.start(timeout)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cleanup(self) -> None:
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cleanup()
