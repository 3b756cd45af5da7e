"""The `vvv` command as a user meets it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import itertools
import os
import re
import signal
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from conftest import VVV, ProcessTree, Trickle, add_video, cli_env, hours_ago, wait_for

from vvv_core import kafka
from vvv_core.broker import free_port
from vvv_core.domain.regions import REGIONS
from vvv_core.hook import background_processing
from vvv_core.kafka import read_topic
from vvv_core.standins import LocalServer, demo_oembed, demo_thumbnails


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


def test_a_results_only_member_whose_checks_hang_in_a_name_lookup_stops_within_the_stop_timeout(settings, cron_db):
    """Every check waits in a name lookup no deadline reaches (an offline resolver) or for its retry: SIGTERM
    stops the member within VVV_STOP_TIMEOUT + 3 s, exit 0; its events are redelivered on restart. (The
    workers once held the process's exit until their lookups ended: 15.3 s, found with a real resolver.)"""
    videos = ["J78aPJ3VyNs", "9nidKH8cM38", "M9Pmf9AB4Mo", "1ZNZY-gd3K0"]
    background_processing(
        [{"video_id": v, "thumbnail_url": f"http://thumbs.invalid/vi/{v}/default.jpg"} for v in videos],
        [],
        cron_db,
        settings,
    )
    hung = str(Path(__file__).parent / "hung_lookup")
    process = subprocess.Popen(
        [*VVV, "consume", "thumbnails"],
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(
            settings,
            PYTHONPATH=os.pathsep.join(filter(None, [hung, os.environ.get("PYTHONPATH")])),
            TEST_LOOKUP_SECONDS="12",
            VVV_THUMBNAIL_HOSTS="thumbs.invalid",
            VVV_THUMBNAIL_RETRY_DELAY="1",
            VVV_STOP_TIMEOUT="2",
        ),
    )
    try:
        wait_for(lambda: "assigned" in process.stderr.readline(), 30, "the member's assignment")
        time.sleep(1)  # its checks are in their lookups now
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert time.monotonic() - stopped_at <= 2 + 3
    finally:
        process.kill()
    assert "stopping gracefully" in process.stderr.read()


def test_demo_runs_offline_keeps_its_database_and_leaves_no_process_behind(tmp_path):
    tree = ProcessTree()
    done = subprocess.run(
        [*VVV, "demo", "--exit"], capture_output=True, text=True, timeout=120, env=tree.env(TMPDIR=str(tmp_path))
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "stand-ins for YouTube for every check (nothing leaves this machine)" in out
    assert "sample cron database" in out and "delivered 401" in out and "2 poison events" in out
    for region in REGIONS:
        assert f"\n{region} " in out
    assert "result messages on vvv.results: liveness 93, scoring 308, thumbnails 308" in out
    assert "dead letters (the console shows why, and replays them): scoring 1, thumbnails 1, liveness 1, sink 0" in out
    top = re.findall(r"^ +([\d.]+) \w+ +([\d,]+) views/h", out.split("top videos")[1], re.MULTILINE)
    ranked = [(float(score), int(velocity.replace(",", ""))) for score, velocity in top]
    assert len(ranked) == 10 and ranked == sorted(ranked, reverse=True)  # equal scores: the faster first
    checked = re.search(r"stale videos checked: (.*)", out).group(1)
    assert all(re.search(rf"{status} \d+", checked) for status in ("alive", "deleted", "private"))
    assert re.search(r"thumbnails: (valid|broken|placeholder) \d+, ", out)
    (kept,) = tmp_path.glob("vvv-demo-*/cron.db")
    assert f"the database is kept: {kept}" in out
    assert sqlite3.connect(kept).execute("SELECT count(*) FROM thumbnail_checks").fetchone() == (308,)
    wait_for(lambda: not tree.alive(), 5, "the demo's processes to end")


def test_demo_keeps_everything_up_with_its_console_and_stops_quietly_on_a_terminals_ctrl_c(tmp_path):
    """The console shows each member's health and retries (the demo tells it the members it started), a
    dead letter to replay, and the line that points `vvv status` at the demo's broker; Ctrl-C from a terminal
    (SIGINT to the whole process group) stops groups, console and broker in that order: no ERROR or WARNING
    line, within VVV_STOP_TIMEOUT + 3 s."""
    port = free_port()
    tree = ProcessTree()
    process = subprocess.Popen(
        [*VVV, "demo", "--console-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=tree.env(TMPDIR=str(tmp_path)),
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        lines = iter(process.stdout.readline, "")
        announced = next(line for line in lines if "console: " in line)
        assert f"console: http://127.0.0.1:{port}/" in announced
        (reach,) = [line.strip() for line in itertools.islice(lines, 2) if "export " in line]
        bootstrap = re.fullmatch(r"export KAFKA_BOOTSTRAP_SERVERS=(127\.0\.0\.1:\d+)", reach)[1]
        status = subprocess.run(
            [*VVV, "status"],
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("VVV_")}
            | {"KAFKA_BOOTSTRAP_SERVERS": bootstrap},
        )
        assert status.returncode == 0 and "scoring" in status.stdout, status.stderr
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
        assert "ViralVidVault console" in page

        def rows() -> dict[str, str]:
            pipeline = urllib.request.urlopen(f"http://127.0.0.1:{port}/views/pipeline", timeout=30).read().decode()
            return dict(re.findall(r"<tr data-group='(\w+)'>(.*?)</tr>", pipeline))

        def all_ready() -> bool:
            found = rows()
            return set(found) == {"scoring", "thumbnails", "liveness", "sink"} and all(
                ">ready<" in r for r in found.values()
            )

        wait_for(all_ready, 60, "every member to be ready (joined its group again)")
        for group, row in rows().items():
            assert f"vvv-{group}-direct:" in row  # each member, from its own probes: not `?`
            retrying = re.findall(r"<td class='n'>([^<]*)</td>", row)[1]
            assert retrying.isdigit(), row  # a figure, not `?`
        letters = (
            urllib.request.urlopen(f"http://127.0.0.1:{port}/views/dead-letters?group=scoring", timeout=30)
            .read()
            .decode()
        )
        assert "replay this one" in letters and "missing C3 01 header" in letters
    finally:
        os.killpg(process.pid, signal.SIGINT)
        asked = time.monotonic()
        code = process.wait(60)
    assert code == 0 and time.monotonic() - asked <= 10 + 3
    loud = [line for line in process.stderr.read().splitlines() if " ERROR " in line or " WARNING " in line]
    assert [line for line in loud if "dead-lettering" not in line] == []  # the poison's, before Ctrl-C
    assert "the database is kept:" in process.stdout.read()
    wait_for(lambda: not tree.alive(), 5, "the demo's processes to end")


def test_demo_never_mixes_stand_ins_with_real_endpoints(cron_db, tmp_path):
    """With --db: every check to the stand-ins, on a copy (the user's file untouched), or, with --real, every
    check to the endpoints the settings name ("real": here local servers that count what they are asked), the
    verdicts into the file itself."""
    add_video(cron_db, "J78aPJ3VyNs", "PL", [(100, 1, 1, hours_ago(3)), (500, 5, 1, hours_ago(1))])
    add_video(cron_db, "9nidKH8cM38", "GB", [(100, 1, 1, hours_ago(80))])  # stale: a liveness check
    with LocalServer(demo_thumbnails()) as thumbs, LocalServer(demo_oembed()) as oembed:
        conn = sqlite3.connect(cron_db)
        with conn:
            conn.execute(
                "UPDATE videos SET thumbnail_url = ? || '/vi/' || video_id || '/default.jpg'", (thumbs.base_url,)
            )
        conn.close()
        real = {"VVV_THUMBNAIL_HOSTS": urlsplit(thumbs.base_url).netloc, "VVV_OEMBED_URL": f"{oembed.base_url}/oembed"}
        before = Path(cron_db).read_bytes()

        done = vvv("demo", "--db", cron_db, "--exit", timeout=120, TMPDIR=str(tmp_path), **real)
        assert done.returncode == 0, done.stderr[-2000:]
        assert (
            "stand-ins for YouTube for every check" in done.stdout
            and f"cron database {cron_db} copied to" in done.stdout
        )
        assert (len(thumbs.requests), len(oembed.requests)) == (0, 0)  # nothing reached the configured endpoints
        assert Path(cron_db).read_bytes() == before
        (copy,) = tmp_path.glob("vvv-demo-*/cron.db")
        assert sqlite3.connect(copy).execute("SELECT count(*) FROM thumbnail_checks").fetchone() == (2,)

        done = vvv("demo", "--db", cron_db, "--real", "--exit", timeout=120, **real)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "YouTube's real endpoints for every check" in done.stdout
        assert (len(thumbs.requests), len(oembed.requests)) == (2, 1)  # every check, none to a stand-in
        stored = sqlite3.connect(cron_db)
        assert stored.execute("SELECT count(*) FROM thumbnail_checks").fetchone() == (2,)
        assert stored.execute("SELECT count(*) FROM video_liveness").fetchone() == (1,)


def test_demo_with_a_missing_database_says_how_to_build_one(tmp_path):
    missing = tmp_path / "nope.db"
    done = vvv("demo", "--db", str(missing), "--exit")
    assert done.returncode == 1 and not missing.exists()
    assert done.stderr == (
        f"vvv: error: vvv demo --db {missing}: no such database; build a sample one with "
        f"`vvv sample --db {missing}`, or leave out --db for a fresh one\n"
    )


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
