"""Shared fixtures: one broker per session, a fresh namespace (topics, groups) per test.

``TEST_BROKER`` picks the broker the whole suite runs against: ``embedded`` (tansu, the
default) or ``kafka`` (Apache Kafka from ``kafka/lib``, fetched by ``make kafka``).
``make test`` runs the suite once on each.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import psutil
import pytest

from vvv_core import db
from vvv_core.apache_kafka import ApacheKafka
from vvv_core.avro import SchemaStore
from vvv_core.broker import EmbeddedBroker
from vvv_core.config import Settings
from vvv_core.groups import GROUPS
from vvv_core.kafka import QUICK_JOIN, read_topic
from vvv_core.outbox import outbox_dir
from vvv_core.runtime import ConsumerGroup
from vvv_core.runtime.backends import Backend
from vvv_core.runtime.loop import GroupRunner
from vvv_core.sample import CRON_SCHEMA, build_sample_db
from vvv_core.spool import Spool

FAST_GROUPS = QUICK_JOIN  # joins in 1 s on tansu


BROKER_KIND = os.environ.get("TEST_BROKER", "embedded")
if BROKER_KIND not in ("embedded", "kafka"):
    raise pytest.UsageError(f"TEST_BROKER={BROKER_KIND!r}: expected embedded or kafka")


# KIP-848 members' sessions are set broker-side: as short as the classic members' FAST_GROUPS, so that a
# member killed with kill -9 gives its partitions up in seconds (Apache Kafka's default is 45 s).
FAST_KIP848 = {"group.consumer.session.timeout.ms": "2000", "group.consumer.heartbeat.interval.ms": "500"}


def new_broker(port: int | None = None) -> EmbeddedBroker | ApacheKafka:
    """A broker of the kind under test on ``port``, with nothing in it, not started yet."""
    return ApacheKafka(port=port, properties=FAST_KIP848) if BROKER_KIND == "kafka" else EmbeddedBroker(port)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clock-ahead",
        type=float,
        default=0.0,
        metavar="DAYS",
        help="run with the wall clock of this process and of every Python process it starts DAYS ahead "
        "(time-machine): a test that passes today must pass then too",
    )


def pytest_configure(config: pytest.Config) -> None:
    if days := config.getoption("clock_ahead"):
        clock = Path(__file__).parent / "clock"  # its sitecustomize moves the clock of each process started
        os.environ["TEST_CLOCK_AHEAD_DAYS"] = str(days)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(clock), os.environ.get("PYTHONPATH")]))
        if os.environ.get("TEST_CLOCK_MOVED_IN") != str(os.getpid()):  # not moved at start-up already
            runpy.run_path(str(clock / "sitecustomize.py"))  # this process's


def pytest_report_header(config: pytest.Config) -> str | None:
    days = config.getoption("clock_ahead")
    return f"clock: {days:g} days ahead, now {datetime.now(UTC).isoformat(timespec='seconds')}" if days else None


MUTMUT_STATS = Path(__file__).parent.parent / "mutmut-stats.json"  # under mutmut: mutants/, its copy of the tree


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of what only Apache Kafka has (replication, a cluster) belong to its run alone; under mutation
    testing (``make mutants``) only the broker-free tests run; with the clock moved ahead, tests that need
    every clock in agreement are skipped, saying so."""
    if "MUTANT_UNDER_TEST" in os.environ or config.pluginmanager.hasplugin("mutmut"):
        needs_broker = [item for item in items if "broker" in getattr(item, "fixturenames", ())]
        config.hook.pytest_deselected(items=needs_broker)
        items[:] = [item for item in items if item not in needs_broker]
        # mutmut stops at the first red test but runs a mutant's tests in no useful order: fastest first (as its
        # last run measured them), a mutant a quick test catches is not held up by a slow one before it
        took = json.loads(MUTMUT_STATS.read_text()).get("duration_by_test", {}) if MUTMUT_STATS.exists() else {}
        items.sort(key=lambda item: took.get(item.nodeid, 0.0))
        return
    if config.getoption("clock_ahead"):  # time-machine moves Python's clocks, not librdkafka's nor the broker's
        skip = pytest.mark.skip(reason="compares Python's clock with librdkafka's or the broker's: one clock only")
        for item in items:
            if "one_clock" in item.keywords:
                item.add_marker(skip)
    if BROKER_KIND == "kafka":
        return
    other = [item for item in items if "apache_kafka_only" in item.keywords]
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = [item for item in items if "apache_kafka_only" not in item.keywords]


class SharedBroker:
    """A broker of ``TEST_BROKER``'s kind that someone else started and keeps (``TEST_BOOTSTRAP``): the
    deliberate breaks (``scripts/breaks.py``) share one per kind across all their runs. Tests that stop,
    freeze or restart their session's broker need one of their own, and ask for ``own_broker``."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker | ApacheKafka | SharedBroker]:
    if shared := os.environ.get("TEST_BOOTSTRAP"):
        yield SharedBroker(shared)
        return
    with new_broker() as b:
        yield b


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker | ApacheKafka]:
    """A broker for this test alone, for tests that stop, freeze or restart it."""
    with new_broker() as b:
        yield b


def broker_processes(b: EmbeddedBroker | ApacheKafka) -> list[subprocess.Popen[bytes]]:
    """The processes to SIGSTOP to freeze ``b``: each node's."""
    return [n.process for n in b.nodes] if isinstance(b, ApacheKafka) else [b.process]


@pytest.fixture
def settings(broker: EmbeddedBroker) -> Settings:
    # The hook's deadline generous: a test about processing must not hinge on one call beating a busy machine
    # (tests of the deadline itself set theirs).
    return Settings(
        bootstrap=broker.bootstrap,
        kafka=dict(FAST_GROUPS),
        namespace=f"t{uuid.uuid4().hex[:10]}",
        hook_timeout=30.0,
    )


@pytest.fixture(scope="session")
def schemas() -> SchemaStore:
    return SchemaStore()


@pytest.fixture
def cron_db(tmp_path: Path) -> str:
    """An empty cron database with the cron pipeline's tables."""
    path = tmp_path / "cron.db"
    conn = sqlite3.connect(path)
    conn.executescript(CRON_SCHEMA)
    conn.close()
    return str(path)


@pytest.fixture
def sample_db(tmp_path: Path) -> str:
    """A cron database filled with the real trending sample."""
    path = tmp_path / "sample.db"
    build_sample_db(path)
    return str(path)


@contextlib.contextmanager
def hold_write_lock(path: str, seconds: float = 5.0) -> Iterator[None]:
    """Another process (the cron) holds the database's write lock in back-to-back transactions."""
    script = (
        "import sqlite3, sys, time\n"
        "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "conn.execute('BEGIN IMMEDIATE'); print('locked', flush=True)\n"
        "while True:\n"
        "    time.sleep(float(sys.argv[2])); conn.execute('COMMIT'); conn.execute('BEGIN IMMEDIATE')\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script, path, str(seconds)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait()


class Trickle:
    """A server that answers one byte at a time, ``interval`` apart: in its headers, or its body."""

    def __init__(self, mode: str, interval: float = 0.1, lasts: float = 20.0) -> None:
        self.mode, self.interval, self.lasts = mode, interval, lasts
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        heads = {
            "headers": b"",
            "body": b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
            "no-length": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
        }
        ends = time.monotonic() + self.lasts  # bounded: the server gives up by itself
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(heads[self.mode])
                drip = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 1000 if self.mode == "headers" else b"\xff" * 1000
                for byte in drip:
                    if time.monotonic() > ends:
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(self.interval)
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()


class ProcessTree:
    """The processes a test starts and every descendant of theirs, known by a mark in their environment (which
    each child inherits): leftover checks look at these alone, never at what else runs on the machine."""

    def __init__(self) -> None:
        self.mark = uuid.uuid4().hex

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "TEST_PROCESS_MARK": self.mark, **extra}

    def alive(self) -> list[str]:
        found = []
        for process in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if process.environ().get("TEST_PROCESS_MARK") == self.mark and process.status() != "zombie":
                    found.append(" ".join(process.info["cmdline"] or [])[:200])
        return found


def outbox_count(db_path: str) -> int:
    """Events waiting in the outbox beside ``db_path``: every file read, less what its progress says was delivered."""
    spool = Spool(outbox_dir(db_path))
    done = spool.delivered()
    return sum(
        len(spool.read(segment, lambda kept: kept["new"] + kept["stale"])) - done.get(segment.name, 0)
        for segment in spool.segments()
    )


def hours_ago(hours: float) -> str:
    """A snapshot time ``hours`` before now, as the cron writes it: tests never name a calendar day, so a
    test that passes today passes next year (``make test-next-year`` runs the suite a year ahead)."""
    return (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S")


def add_video(path: str, video_id: str, region: str | None, snapshots: list[tuple[int, int, int, str]]) -> None:
    """A video and its snapshots (view_count, likes, comments, fetched_at), in insertion order."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO videos (video_id, region, title, thumbnail_url) VALUES (?, ?, ?, ?)",
            (video_id, region, f"title {video_id}", f"https://i.ytimg.com/vi/{video_id}/default.jpg"),
        )
        conn.executemany(
            "INSERT INTO video_snapshots (video_id, region, view_count, likes, comments, fetched_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(video_id, region, *snap) for snap in snapshots],
        )
    conn.close()


class Member:
    """One consumer-group member running in a thread, as `vvv consume` runs it in a process."""

    started: ClassVar[list[Member]] = []  # stopped after each test, passed or failed (see stop_members)

    def __init__(
        self,
        group: str | ConsumerGroup,
        settings: Settings,
        db_path: str | None = None,
        until_idle: float | None = 1.0,
        backend: Backend | None = None,
    ) -> None:
        """``group``: a group's name (its database opened from ``db_path``), or a group made by the test."""
        if isinstance(group, str):  # without a database: results only
            group = GROUPS[group](settings, db.connect(db_path) if db_path else None)
        self.conn = group.conn
        self.runner = GroupRunner(group, settings, until_idle=until_idle, backend=backend)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.runner.run()
        except BaseException as exc:
            self.error = exc
        finally:
            if self.conn is not None:
                self.conn.close()

    def start(self) -> Member:
        Member.started.append(self)
        self.thread.start()
        return self

    def join(self, timeout: float = 60) -> Member:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "consumer did not stop"
        if self.error:
            raise self.error
        return self


@pytest.fixture(autouse=True)
def stop_members() -> Iterator[None]:
    """A test that fails midway must not leave members consuming into the next tests (or past the session)."""
    yield
    running, Member.started = [m for m in Member.started if m.thread.is_alive()], []
    for member in running:
        member.runner.stop()
    for member in running:
        member.thread.join(30)
    assert not any(m.thread.is_alive() for m in running), "a consumer did not stop when asked"


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def join_all(members: list[Member], partitions: int) -> None:
    """Wait until the members share all ``partitions`` of the input topic between them, each owning some."""

    def shared() -> bool:
        owned = [p for m in members for _t, p in m.runner.owned]
        return sorted(owned) == list(range(partitions)) and all(m.runner.owned for m in members)

    wait_for(shared, 30, f"{len(members)} members to share {partitions} partitions")


def stop_one_by_one(members: list[Member], partitions: int) -> None:
    """Stop members one at a time, each after the others have taken over the last one's partitions.

    Members leaving while their group rebalances can wedge a group on tansu for good (see
    vvv_core/kafka.py), so tests with several members never let them stop at the same time.
    """
    for i, member in enumerate(members):
        member.runner.stop()
        member.join()
        if rest := members[i + 1 :]:
            join_all(rest, partitions)


def run_group(group: str, settings: Settings, db_path: str | None, until_idle: float = 1.0) -> GroupRunner:
    return Member(group, settings, db_path, until_idle).start().join().runner


def results(settings: Settings, schemas: SchemaStore) -> list[dict]:
    return [schemas.decode(m.value(), "Result") for m in read_topic(settings, settings.results_topic)]


VVV = [sys.executable, "-m", "vvv_core.cli"]


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a `vvv` process needs to use this test's broker, topics and groups."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap,
        "VVV_NAMESPACE": settings.namespace,
        "VVV_HOOK_TIMEOUT": f"{settings.hook_timeout:g}",
        **{f"VVV_KAFKA_{k.upper().replace('.', '_')}": v for k, v in FAST_GROUPS.items()},
        **extra,
    }


def vvv(settings: Settings, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run the `vvv` command as a user would, against this test's broker and namespace."""
    return subprocess.run([*VVV, *args], capture_output=True, text=True, timeout=timeout, env=cli_env(settings))


_exit_status = 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


def pytest_unconfigure(config: pytest.Config) -> None:
    """End the process once pytest is done, with its status.

    Clients the tests leave to the garbage collector (the hook's cached producers, admin clients)
    are destroyed at interpreter exit, when every test broker is gone; seen once in a full Apache
    Kafka run, a consumer's rd_kafka_destroy then waited for ever, after all tests had passed.
    """
    if config.pluginmanager.hasplugin("mutmut") or "MUTANT_UNDER_TEST" in os.environ:
        return  # mutmut runs pytest inside its own process, many times over
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)
