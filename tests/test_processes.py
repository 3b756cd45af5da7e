"""`vvv consume GROUP --processes N`: N members of a group in one command, run and stopped as one unit."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
from conftest import VVV, ProcessTree, cli_env, wait_for

from vvv_core import kafka
from vvv_core.broker import free_port, listening
from vvv_core.hook import background_processing
from vvv_core.standins import LocalServer, Reply, image_bytes

EVENTS = 240


@pytest.fixture
def server():
    jpeg = image_bytes(320, 180)
    with LocalServer(lambda _m, _p: Reply(200, jpeg), latency=0.1) as srv:
        yield srv


@pytest.fixture
def unit(settings, cron_db, server, tmp_path):
    """Start `vvv consume thumbnails --db DB --processes 2 [ARGS]` on EVENTS published checks; its log in a file.
    Every process it started is killed afterwards, whatever the test did."""
    tree = ProcessTree()
    videos = [{"video_id": f"p{i:010d}", "thumbnail_url": f"{server.base_url}/{i}.jpg"} for i in range(EVENTS)]
    assert background_processing(videos, [], cron_db, settings).ok
    log = tmp_path / "unit.log"
    env = cli_env(settings, VVV_THUMBNAIL_HOSTS=urlsplit(server.base_url).netloc, VVV_THUMBNAIL_CONCURRENCY="8")

    def start(*args: str) -> subprocess.Popen[bytes]:
        command = [*VVV, "consume", "thumbnails", "--db", cron_db, "--processes", "2", *args]
        with log.open("w") as out:  # a session of its own: its process group is the unit's, as at a terminal
            return subprocess.Popen(command, stderr=out, env=tree.env(**env), process_group=0)

    start.tree, start.log = tree, log
    yield start
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get("TEST_PROCESS_MARK") == tree.mark:
                process.kill()


def members_assigned(log: Path) -> bool:
    """Both members had partitions assigned (each line names its process)."""
    return len(set(re.findall(r"\[(\d+)\]: thumbnails: assigned ", log.read_text()))) == 2


def stored(cron_db: str) -> int:
    return sqlite3.connect(cron_db).execute("SELECT count(*) FROM thumbnail_checks").fetchone()[0]


def committed(settings) -> int:
    return sum(kafka.committed_offsets(settings, settings.group_id("thumbnails"), settings.videos_topic).values())


def test_two_processes_share_the_partitions_and_store_every_check_once(unit, settings, cron_db, server):
    parent = unit("--until-idle", "1")
    assert parent.wait(120) == 0, unit.log.read_text()[-3000:]
    log = unit.log.read_text()
    counts = [int(n) for n in re.findall(r"thumbnails: stopped after (\d+) events", log)]
    assert len(counts) == 2 and all(counts), log[-3000:]  # each member had partitions and did work
    # Checks running when the second member joined were the new owner's to redo (at least once, as for any two
    # members): every event checked, its row stored once.
    assert sum(counts) >= EVENTS and {s.path for s in server.requests} == {f"/{i}.jpg" for i in range(EVENTS)}
    conn = sqlite3.connect(cron_db)
    assert conn.execute("SELECT status, count(*) FROM thumbnail_checks GROUP BY status").fetchall() == [
        ("valid", EVENTS)
    ]
    assert committed(settings) == EVENTS
    assert unit.tree.alive() == []


def two_free_ports() -> int:
    """A port that is free, and the one after it."""
    while listening(port := free_port()) or listening(port + 1) or port == 65535:
        pass
    return port


def healthy(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        return answer.status == 200


def test_sigterm_to_the_parent_stops_every_member_gracefully_commits_and_leaves_no_process(unit, settings, cron_db):
    port = two_free_ports()
    parent = unit("--metrics-port", str(port))
    wait_for(lambda: members_assigned(unit.log), 60, "both members' partitions")
    assert healthy(port) and healthy(port + 1)  # member i serves its metrics on PORT + i
    wait_for(lambda: stored(cron_db) >= 20, 60, "checks under way")
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(30) == 0
    assert unit.log.read_text().count("stopping gracefully") == 2  # each member was asked, once
    assert unit.tree.alive() == []
    assert committed(settings) == stored(cron_db)  # what each member stored is committed, and nothing more


def test_a_terminals_ctrl_c_stops_every_member_gracefully_once(unit, settings, cron_db):
    """Ctrl-C at a terminal signals the foreground process group: the parent alone, which asks each member once
    (a member that had it twice would stop at once, abandoning its checks)."""
    parent = unit()
    wait_for(lambda: members_assigned(unit.log), 60, "both members' partitions")
    wait_for(lambda: stored(cron_db) >= 20, 60, "checks under way")
    os.killpg(parent.pid, signal.SIGINT)
    assert parent.wait(30) == 0
    assert unit.log.read_text().count("stopping gracefully") == 2
    assert unit.tree.alive() == []
    assert committed(settings) == stored(cron_db)


def test_a_member_killed_makes_the_parent_stop_the_other_and_exit_non_zero(unit, cron_db):
    parent = unit()
    wait_for(lambda: members_assigned(unit.log), 60, "both members' partitions")
    first, second = psutil.Process(parent.pid).children()
    first.kill()
    assert parent.wait(30) == 128 + signal.SIGKILL
    log = unit.log.read_text()
    assert f"member {first.pid} exited by itself (code 137): stopping the others" in log
    assert "stopping gracefully" in log and not second.is_running()
    assert unit.tree.alive() == []


def test_the_members_stop_when_the_parent_is_killed(unit):
    parent = unit()
    wait_for(lambda: members_assigned(unit.log), 60, "both members' partitions")
    parent.kill()
    parent.wait()
    wait_for(lambda: not unit.tree.alive(), 30, "the members to stop")
    assert unit.log.read_text().count("stopping gracefully") == 2
