"""Apache Kafka from its Maven Central jars: one KRaft node, or a cluster of several, on 127.0.0.1.

The jars come from ``kafka/pom.xml`` (``make kafka`` copies them into ``kafka/lib/``); the
settings every node shares are in ``kafka/broker.properties``, which docker-compose.yml uses
too. Each node is a combined controller and broker with its own log directory, formatted on
its first start and kept across restarts (durable, unlike the embedded broker). Its JVM heap
is capped, its log goes to a file in its directory, and it dies with the process that
started it.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from vvv_core.broker import die_with_parent, free_port, listening
from vvv_core.errors import Fatal

KAFKA_DIR = Path(__file__).resolve().parent.parent / "kafka"  # in a checkout; see ``find_jars``
HEAP = "512m"
LOG4J = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
"""


class KafkaNotInstalled(Fatal):
    """No Java 17+ or no Apache Kafka jars here."""


def find_jars(lib: Path | None = None) -> Path:
    """The folder of Apache Kafka's jars, or KafkaNotInstalled saying how to get them."""
    lib = lib or KAFKA_DIR / "lib"
    if not shutil.which("java"):
        raise KafkaNotInstalled("Apache Kafka needs Java 17 or later: no `java` on PATH")
    if not any(lib.glob("kafka_2.13-*.jar")):
        raise KafkaNotInstalled(f"no Apache Kafka jars in {lib}: fetch them with `make kafka` (needs Maven)")
    return lib


def java_major() -> int:
    out = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    version = out.split('"')[1] if '"' in out else "0"
    return int(version.split(".")[0] if not version.startswith("1.") else version.split(".")[1])


def cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, base64url without padding, never starting with "-".

    Like Kafka's own ``Uuid.randomUuid``: an id starting with "-" reads as an option to the
    storage tool's command line (one in 64 ids failed ``kafka-storage format``).
    """
    while (candidate := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return candidate


class Node:
    """One KRaft node (controller and broker) of a cluster."""

    def __init__(self, node_id: int, port: int, controller_port: int, data: Path, host: str = "127.0.0.1") -> None:
        self.node_id = node_id
        self.host = host
        self.port = port
        self.controller_port = controller_port
        self.data = data
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.data / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.data / "server.log"

    def write_config(self, shared: str, voters: str, replication: int, extra: Mapping[str, str]) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        min_isr = min(2, replication)
        self.config.write_text(
            f"{shared}\n"
            f"node.id={self.node_id}\n"
            f"controller.quorum.voters={voters}\n"
            f"listeners=PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}\n"
            f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}\n"
            f"log.dirs={self.data / 'log'}\n"
            f"default.replication.factor={replication}\n"
            f"min.insync.replicas={min_isr}\n"
            f"offsets.topic.replication.factor={replication}\n"
            f"transaction.state.log.replication.factor={replication}\n"
            f"transaction.state.log.min.isr={min_isr}\n"
            f"share.coordinator.state.topic.replication.factor={replication}\n"
            f"share.coordinator.state.topic.min.isr={min_isr}\n"
            + "".join(f"{key}={value}\n" for key, value in extra.items())
        )
        (self.data / "log4j2.properties").write_text(LOG4J.format(log=self.log_file))


class ApacheKafka:
    """``nodes`` KRaft nodes on 127.0.0.1; a context manager that always stops them.

    ``data``: where the nodes keep their logs (kept across ``kill``/``start``, so a restart is
    durable); a temporary folder when not given. ``properties``: broker settings added to the shared ones;
    ``client``: what a client needs to connect to them (credentials), to tell when they are ready;
    ``host`` and ``wrap``: the address they listen on and a command prefix to run them with (another
    network namespace: ``ip netns exec NAME``), for tests that put them on a host of their own.
    """

    def __init__(
        self,
        nodes: int = 1,
        data: Path | None = None,
        lib: Path | None = None,
        port: int | None = None,
        properties: Mapping[str, str] | None = None,
        client: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        wrap: Sequence[str] = (),
    ):
        self.lib = find_jars(lib)
        if java_major() < 17:
            raise KafkaNotInstalled("Apache Kafka 4 needs Java 17 or later")
        self.data = data or Path(os.environ.get("TMPDIR", "/tmp")) / f"vvv-kafka-{uuid.uuid4().hex[:8]}"
        self._own_data = data is None
        self.client = dict(client or {})
        self.host = host
        self.wrap = list(wrap)
        ports = [port or free_port()] + [free_port() for _ in range(nodes - 1)]
        self.nodes = [Node(i + 1, ports[i], free_port(), self.data / f"node{i + 1}", host) for i in range(nodes)]
        voters = ",".join(f"{n.node_id}@{host}:{n.controller_port}" for n in self.nodes)
        shared = (KAFKA_DIR / "broker.properties").read_text()
        for node in self.nodes:
            node.write_config(shared, voters, replication=min(3, nodes), extra=properties or {})
        self._cluster = cluster_id()

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.host}:{n.port}" for n in self.nodes)

    def _java(self, node: Node, main: str, *args: str) -> list[str]:
        return [
            *self.wrap,
            "java",
            f"-Xmx{HEAP}",
            f"-Xms{HEAP}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={node.data / 'log4j2.properties'}",
            "-cp",
            f"{self.lib}/*",
            main,
            *args,
        ]

    def _format(self, node: Node) -> None:
        if (node.data / "log" / "meta.properties").exists():
            return  # formatted on an earlier start: keep its data
        done = subprocess.run(
            self._java(node, "kafka.tools.StorageTool", "format", "-t", self._cluster, "-c", str(node.config)),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise Fatal(f"formatting Apache Kafka storage failed: {(done.stderr or done.stdout)[-500:]}")

    def start_node(self, node: Node) -> None:
        self._format(node)
        node.process = subprocess.Popen(
            self._java(node, "kafka.Kafka", str(node.config)),
            stdout=subprocess.DEVNULL,
            stderr=open(node.data / "stderr.log", "ab"),  # noqa: SIM115 - the child keeps it
            preexec_fn=die_with_parent,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until every running node listens and the cluster answers metadata with every broker in it."""
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        running = [n for n in self.nodes if n.process and n.process.poll() is None]
        for node in self.nodes:
            if node.process and node.process.poll() is not None:
                raise Fatal(f"Apache Kafka node {node.node_id} exited: see {node.log_file}")
        while not all(listening(n.port, self.host) for n in running):
            self._check_alive(deadline)
            time.sleep(0.1)
        client = AdminClient({"bootstrap.servers": self.bootstrap, **self.client})
        while True:
            self._check_alive(deadline)
            try:
                if len(client.list_topics(timeout=2).brokers) >= len(running):
                    return
            except Exception:
                pass
            time.sleep(0.2)

    def _check_alive(self, deadline: float) -> None:
        for node in self.nodes:
            if node.process and node.process.poll() is not None:
                raise Fatal(f"Apache Kafka node {node.node_id} exited: see {node.log_file}")
        if time.monotonic() > deadline:
            raise Fatal(f"Apache Kafka did not become ready in time: see {self.data}/node*/server.log")

    def start(self, timeout: float = 90.0) -> ApacheKafka:
        for node in self.nodes:
            if listening(node.port, self.host):
                raise Fatal(f"port {node.port} is already in use: is a broker running there already?")
        for node in self.nodes:
            self.start_node(node)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def running(self) -> bool:
        """Every node still running."""
        return all(n.process is not None and n.process.poll() is None for n in self.nodes)

    def kill(self, node: Node) -> None:
        """``kill -9`` one node: no clean shutdown, its data stays for a restart."""
        if node.process and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait()

    def stop_node(self, node: Node, timeout: float = 20.0) -> None:
        if node.process and node.process.poll() is None:
            node.process.terminate()
            try:
                node.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(node)

    def stop(self) -> None:
        for node in self.nodes:
            if node.process and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            self.stop_node(node)
        if self._own_data:
            shutil.rmtree(self.data, ignore_errors=True)

    def __enter__(self) -> ApacheKafka:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
