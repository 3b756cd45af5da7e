"""The `vvv` command as a user meets it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import urllib.request

from conftest import VVV, ProcessTree, Trickle, cli_env, wait_for

from vvv_core import kafka
from vvv_core.broker import free_port
from vvv_core.domain.regions import REGIONS
from vvv_core.hook import background_processing
from vvv_core.kafka import read_topic


def vvv(*args: str, settings=None, timeout: float = 90, **env: str) -> subprocess.CompletedProcess[str]:
    """`vvv` as a user runs it; with ``settings``, against this test's broker and namespace."""
    environ = cli_env(settings, **env) if settings is not None else {**os.environ, **env}
    return subprocess.run([*VVV, *args], capture_output=True, text=True, timeout=timeout, env=environ)


def test_no_broker_is_one_clear_line_and_non_zero(sample_db):
    port = free_port()
    done = vvv("consume", "scoring", "--db", sample_db, "--bootstrap", f"127.0.0.1:{port}")
    assert done.returncode == 1
    assert f"vvv: error: no Kafka broker reachable at 127.0.0.1:{port}" in done.stderr
    assert "vvv broker" in done.stderr and "Traceback" not in done.stderr


def test_missing_and_read_only_databases_are_clear_errors(tmp_path, sample_db, settings):
    done = vvv("consume", "scoring", "--db", str(tmp_path / "nope.db"), settings=settings)
    assert done.returncode == 1 and "does not exist" in done.stderr and "Traceback" not in done.stderr
    # chmod does not stop root: an immutable file is read-only for everyone
    subprocess.run(["chattr", "+i", sample_db], check=True)
    try:
        done = vvv("consume", "scoring", "--db", sample_db, settings=settings, timeout=20)
    finally:
        subprocess.run(["chattr", "-i", sample_db], check=True)
    assert done.returncode == 1 and "is read-only" in done.stderr and "Traceback" not in done.stderr


def test_bad_configuration_is_named(sample_db):
    done = vvv("publish", "--db", sample_db, VVV_PARTITIONS="many")
    assert done.returncode == 2
    assert done.stderr == "vvv: error: VVV_PARTITIONS='many': expected a whole number from 1 to 1000\n"


def test_publish_then_consume_until_idle(settings, schemas, sample_db):
    done = vvv("publish", "--db", sample_db, settings=settings)
    assert done.returncode == 0, done.stderr
    assert "delivered 401" in done.stdout  # 308 videos + 93 stale ones
    assert "delivered 0" in vvv("publish", "--db", sample_db, settings=settings).stdout

    done = vvv("consume", "scoring", "--db", sample_db, "--until-idle", "1", settings=settings)
    assert done.returncode == 0, done.stderr
    assert "stopped after 308 events" in done.stderr
    conn = sqlite3.connect(sample_db)
    assert conn.execute("SELECT count(virality_score) FROM videos").fetchone() == (280,)
    assert len(read_topic(settings, settings.results_topic)) == 308


def test_sigterm_lets_running_checks_finish_commits_them_and_exits_0(settings, cron_db):
    """SIGTERM while three checks run (each answer takes about 1.5 s): the member drains them, stores and
    commits them, then exits 0."""
    server = Trickle("body", interval=0.0015)
    videos = ["J78aPJ3VyNs", "9nidKH8cM38", "M9Pmf9AB4Mo"]
    background_processing(
        [{"video_id": v, "thumbnail_url": f"http://127.0.0.1:{server.port}/{v}.jpg"} for v in videos],
        [],
        cron_db,
        settings,
    )
    process = subprocess.Popen(
        [*VVV, "consume", "thumbnails", "--db", cron_db],
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(settings, VVV_THUMBNAIL_HOSTS=f"127.0.0.1:{server.port}"),
    )
    try:
        wait_for(lambda: len(server.threads) == 3, 30, "the three checks to be running")
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        process.kill()
        server.close()
    assert "stopping gracefully" in process.stderr.read()
    conn = sqlite3.connect(cron_db)
    assert conn.execute("SELECT count(*) FROM thumbnail_checks").fetchone() == (3,)
    committed = kafka.committed_offsets(settings, settings.group_id("thumbnails"), settings.videos_topic)
    assert sum(committed.values()) == 3


def test_demo_runs_offline_and_leaves_nothing_behind():
    tree = ProcessTree()
    done = subprocess.run([*VVV, "demo", "--exit"], capture_output=True, text=True, timeout=120, env=tree.env())
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "sample cron database" in out and "delivered 401" in out
    for region in REGIONS:
        assert f"\n{region} " in out
    assert "result messages on vvv.results: liveness 93, scoring 308, thumbnails 308" in out
    top = re.findall(r"^ +([\d.]+) \w+ +([\d,]+) views/h", out.split("top videos")[1], re.MULTILINE)
    ranked = [(float(score), int(velocity.replace(",", ""))) for score, velocity in top]
    assert len(ranked) == 10 and ranked == sorted(ranked, reverse=True)  # equal scores: the faster first
    checked = re.search(r"stale videos checked: (.*)", out).group(1)
    assert all(re.search(rf"{status} \d+", checked) for status in ("alive", "deleted", "private"))
    assert re.search(r"thumbnails: (valid|broken|placeholder) \d+, ", out)
    wait_for(lambda: not tree.alive(), 5, "the demo's processes to end")


def test_demo_keeps_everything_up_with_its_console_until_ctrl_c(tmp_path):
    port = free_port()
    tree = ProcessTree()
    process = subprocess.Popen(
        [*VVV, "demo", "--console-port", str(port)], stdout=subprocess.PIPE, text=True, env=tree.env()
    )
    try:
        lines = iter(process.stdout.readline, "")
        announced = next(line for line in lines if "console: " in line)
        assert f"console: http://127.0.0.1:{port}/" in announced
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
        assert "ViralVidVault console" in page
        pipeline = urllib.request.urlopen(f"http://127.0.0.1:{port}/views/pipeline", timeout=30).read().decode()
        assert "scoring" in pipeline and "thumbnails" in pipeline and "liveness" in pipeline
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
    wait_for(lambda: not tree.alive(), 5, "the demo's processes to end")


def test_broker_command_creates_the_topics_and_stops_on_ctrl_c():
    port, tree = free_port(), ProcessTree()
    process = subprocess.Popen(
        [*VVV, "broker", "--port", str(port)], stdout=subprocess.PIPE, text=True, env=tree.env(VVV_NAMESPACE="brk")
    )
    try:
        assert f"on 127.0.0.1:{port}" in process.stdout.readline()
        from vvv_core.config import Settings
        from vvv_core.kafka import admin

        topics = admin(Settings(bootstrap=f"127.0.0.1:{port}")).list_topics(timeout=5).topics
        assert {"brk.videos", "brk.stale", "brk.results", "brk.scoring.dlq"} <= set(topics)
        assert all(len(topics[t].partitions) == 6 for t in ("brk.videos", "brk.stale", "brk.results"))
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
    wait_for(lambda: not tree.alive(), 5, "the broker's processes to end")
