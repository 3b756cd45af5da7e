"""Fault injection for real: kill -9 of consumer processes, a broker restarted empty, a locked database.

Each test checks the database and the topics afterwards: every event processed, none skipped,
no duplicate rows in SQLite, offsets committed to the end.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from urllib.parse import urlsplit

import psutil
from conftest import VVV, Member, Trickle, cli_env, hold_write_lock, new_broker, results, wait_for

from vvv_core import db, kafka
from vvv_core.broker import free_port
from vvv_core.hook import background_processing, flush_outbox
from vvv_core.kafka import read_topic
from vvv_core.runtime.backends.brokerwatch import BrokerLost
from vvv_core.standins import LocalServer, Reply, image_bytes


def consume(settings, group: str, db_path: str, *more: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vvv_core.cli", "consume", group, "--db", db_path, *more],
        env=cli_env(settings, **env),
        stderr=subprocess.PIPE,
        text=True,
    )


def sample_videos(db_path: str) -> list[str]:
    conn = sqlite3.connect(db_path)
    try:
        return [r[0] for r in conn.execute("SELECT video_id FROM videos ORDER BY video_id")]
    finally:
        conn.close()


def event_ids(settings, schemas, topic: str, schema: str) -> set[str]:
    return {schemas.decode(m.value(), schema)["event_id"] for m in read_topic(settings, topic)}


def assert_all_processed_once(settings, schemas, group: str, topic: str, schema: str) -> list[dict]:
    out = [r for r in results(settings, schemas) if r["group"] == group]
    assert {r["event_id"] for r in out} == event_ids(settings, schemas, topic, schema)  # none skipped
    ends = {m.partition(): m.offset() + 1 for m in read_topic(settings, topic)}
    assert kafka.committed_offsets(settings, settings.group_id(group), topic) == ends
    return out


def test_kill_9_mid_batch_then_restart_processes_every_event(settings, schemas, sample_db):
    videos = sample_videos(sample_db)
    for _ in range(8):  # 24,640 events: many batches per run
        background_processing([{"video_id": v, "thumbnail_url": "u"} for v in videos] * 10, [], sample_db, settings)
    group_id = settings.group_id("scoring")
    for delay in (0.05, 0.15, 0.25):  # three crashes at different points of the work
        before = len(read_topic(settings, settings.results_topic))
        process = consume(settings, "scoring", sample_db, VVV_BATCH_SIZE="300")
        wait_for(lambda n=before: len(read_topic(settings, settings.results_topic)) > n, 30, "this process's results")
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        assert process.wait(10) == -signal.SIGKILL
        committed = sum(kafka.committed_offsets(settings, group_id, settings.videos_topic).values())
        assert committed < 24_640, "the crash should come in the middle of the work"
    done = consume(settings, "scoring", sample_db, "--until-idle", "1")
    assert done.wait(90) == 0, done.stderr.read()[-2000:]

    out = assert_all_processed_once(settings, schemas, "scoring", settings.videos_topic, "VideoEvent")
    conn = sqlite3.connect(sample_db)
    stored = dict(conn.execute("SELECT video_id, virality_score FROM videos WHERE virality_score IS NOT NULL"))
    assert len(stored) == 280
    for r in out:  # SQLite holds exactly what processing each event once gives
        if r["detail"]["reason"] is None:
            assert stored[r["video_id"]] == r["detail"]["score"]
    assert conn.execute("SELECT count(*), count(DISTINCT video_id) FROM videos").fetchone() == (308, 308)


def test_kill_9_mid_http_check_then_restart(settings, schemas, cron_db):
    jpeg = image_bytes(320, 180)
    with LocalServer(lambda _m, _p: Reply(200, jpeg), latency=0.2) as server:
        videos = [{"video_id": f"thumb{i:06d}", "thumbnail_url": f"{server.base_url}/{i}.jpg"} for i in range(150)]
        background_processing(videos, [], cron_db, settings)
        extra = {"VVV_THUMBNAIL_HOSTS": urlsplit(server.base_url).netloc, "VVV_THUMBNAIL_CONCURRENCY": "8"}
        process = consume(settings, "thumbnails", cron_db, **extra)
        wait_for(lambda: len(server.requests) >= 40, 30, "checks under way")
        process.send_signal(signal.SIGKILL)  # eight checks are mid-request now
        assert process.wait(10) == -signal.SIGKILL
        done = consume(settings, "thumbnails", cron_db, "--until-idle", "1", **extra)
        assert done.wait(90) == 0, done.stderr.read()[-2000:]
        assert len(server.requests) >= 150

    assert_all_processed_once(settings, schemas, "thumbnails", settings.videos_topic, "VideoEvent")
    conn = sqlite3.connect(cron_db)
    assert conn.execute(
        "SELECT count(*), count(DISTINCT video_id), min(status), max(status) FROM thumbnail_checks"
    ).fetchone() == (150, 150, "valid", "valid")


def test_broker_restart_empty_consumer_recovers_and_recreates_topics(settings, schemas, sample_db):
    port = free_port()
    s = replace(settings, bootstrap=f"127.0.0.1:{port}")
    broker = new_broker(port).start()
    member = Member("scoring", s, sample_db, until_idle=None).start()
    try:
        background_processing([{"video_id": "J78aPJ3VyNs", "thumbnail_url": "u"}] * 5, [], sample_db, s)
        wait_for(lambda: member.runner.processed == 5, 30, "the first events")
        broker.stop()  # memory only: topics, records, offsets and the group are gone
        time.sleep(3)
        broker = new_broker(port).start()
        for _ in range(3):  # the hook's events wait in the outbox until the broker takes them
            background_processing([{"video_id": "9nidKH8cM38", "thumbnail_url": "u"}] * 5, [], sample_db, s)
        flush_outbox(sample_db, s)
        wait_for(lambda: member.runner.processed >= 20, 60, "the events after the restart")
        assert member.thread.is_alive() and member.error is None
        topics = kafka.admin(s).list_topics(timeout=5).topics
        assert {s.results_topic, s.dead_letter_topic("scoring")} <= set(topics)  # recreated by the consumer
        after = [schemas.decode(m.value(), "Result") for m in read_topic(s, s.results_topic)]
        assert sum(r["video_id"] == "9nidKH8cM38" for r in after) >= 15
    finally:
        member.runner.stop()
        member.thread.join(30)
        broker.stop()
    assert not member.thread.is_alive()


def test_a_locked_database_delays_work_and_loses_none(settings, schemas, sample_db):
    videos = sample_videos(sample_db)
    background_processing([{"video_id": v, "thumbnail_url": "u"} for v in videos], [], sample_db, settings)
    # the cron (another process) holds the write lock for 3 s while the consumer wants to write
    locker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
                "c.execute('BEGIN IMMEDIATE'); c.execute(\"UPDATE videos SET title = title WHERE video_id = 'x'\"); "
                "print('locked', flush=True); time.sleep(3); c.execute('COMMIT')"
            ),
            sample_db,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert locker.stdout.readline().strip() == "locked"
    started = time.monotonic()
    done = consume(settings, "scoring", sample_db, "--until-idle", "1")
    assert done.wait(90) == 0, done.stderr.read()[-2000:]
    assert locker.wait(10) == 0
    assert time.monotonic() - started > 2.5  # it waited for the lock...
    assert_all_processed_once(settings, schemas, "scoring", settings.videos_topic, "VideoEvent")  # ...lost nothing
    conn = sqlite3.connect(sample_db)
    assert conn.execute("SELECT count(virality_score) FROM videos").fetchone() == (280,)


def test_second_signal_stops_at_once(settings, cron_db):
    with LocalServer(lambda _m, _p: Reply(200, image_bytes(320, 180)), latency=5.0) as server:
        background_processing(
            [{"video_id": f"slow{i:07d}", "thumbnail_url": f"{server.base_url}/{i}.jpg"} for i in range(20)],
            [],
            cron_db,
            settings,
        )
        hosts = urlsplit(server.base_url).netloc
        process = consume(settings, "thumbnails", cron_db, VVV_THUMBNAIL_HOSTS=hosts, VVV_STOP_TIMEOUT="30")
        wait_for(lambda: len(server.requests) >= 5, 30, "checks under way")
        process.send_signal(signal.SIGTERM)  # graceful: would wait up to 30 s for the running checks
        time.sleep(0.5)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(5) == 128 + signal.SIGTERM
        assert time.monotonic() - started < 2


def test_an_overrunning_check_is_abandoned_and_the_consumer_stays(settings, schemas, cron_db):
    with LocalServer(lambda _m, path: Reply(200, image_bytes(320, 180), delay=3.0 if "hang" in path else 0)) as server:
        videos = [
            {"video_id": "hangs000001", "thumbnail_url": f"{server.base_url}/hang.jpg"},
            {"video_id": "fine0000001", "thumbnail_url": f"{server.base_url}/fine.jpg"},
        ]
        background_processing(videos, [], cron_db, settings)
        s = replace(
            settings,
            thumbnail_hosts=(urlsplit(server.base_url).netloc,),
            thumbnail_timeout=10,
            time_limit=0.5,
            thumbnail_attempts=2,
            thumbnail_retry_delay=0.1,
        )
        runner = Member("thumbnails", s, cron_db, until_idle=1.0).start().join().runner
    assert runner.processed == 2
    details = {r["video_id"]: r["detail"] for r in results(s, schemas)}
    assert details["hangs000001"]["status"] == "error" and details["hangs000001"]["attempts"] == 2
    assert details["hangs000001"]["reason"] == "time limit of 0.5 s exceeded"
    assert details["fine0000001"]["status"] == "valid"


def test_a_database_locked_past_every_busy_timeout_is_waited_out(settings, schemas, sample_db, monkeypatch, caplog):
    """The cron holds the lock while a member starts (creating tables) and far past SQLite's busy timeout."""
    monkeypatch.setattr(db, "BUSY_TIMEOUT_S", 0.5)  # so that the test waits through several whole attempts
    videos = sample_videos(sample_db)[:20]
    background_processing([{"video_id": v, "thumbnail_url": "u"} for v in videos], [], sample_db, settings)
    with hold_write_lock(sample_db, seconds=3600):
        member = Member("scoring", settings, sample_db, until_idle=1.0).start()
        wait_for(lambda: caplog.text.count("database is locked by another process") >= 3, 30, "the wait reported")
        assert member.thread.is_alive() and member.runner.processed == 0
    member.join(60)
    assert member.runner.processed == 20
    assert "creating tables" in caplog.text
    assert_all_processed_once(settings, schemas, "scoring", settings.videos_topic, "VideoEvent")


def test_a_consumer_whose_broker_is_gone_says_so_briefly_and_exits(settings, sample_db, caplog):
    port = free_port()
    s = replace(settings, bootstrap=f"127.0.0.1:{port}", broker_timeout=6.0)
    broker = new_broker(port).start()
    member = Member("scoring", s, sample_db, until_idle=None).start()
    try:
        wait_for(lambda: member.runner.metrics.ready, 30, "the member to join")
        broker.stop()  # for good
        wait_for(lambda: not member.runner.metrics.ready, 10, "/readyz to say not ready")
        member.thread.join(20)
        assert not member.thread.is_alive()
        assert isinstance(member.error, BrokerLost) and f"no broker reachable at 127.0.0.1:{port}" in str(member.error)
        refused = [r for r in caplog.records if r.name == "librdkafka" and "Connection refused" in r.getMessage()]
        assert len(refused) <= 6  # once a minute per kind of line, not twenty a second
    finally:
        member.runner.stop()
        broker.stop()


def test_killing_vvv_broker_kills_its_broker_too(tmp_path):
    port = free_port()
    process = subprocess.Popen([*VVV, "broker", "--port", str(port)], stdout=subprocess.PIPE, text=True)
    children: list[psutil.Process] = []
    try:
        assert process.stdout.readline().startswith("embedded Kafka-compatible broker")
        children = psutil.Process(process.pid).children()
        assert children
        process.kill()
        process.wait(10)
        _gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive
    finally:
        process.kill()
        for child in children:  # none is left when it fails (a deliberate break) either
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def test_sigterm_with_trickling_servers_stops_within_the_stop_timeout(settings, cron_db):
    """64 checks held by servers sending a byte at a time: the stop waits the stop timeout, then cuts them."""
    trickle = Trickle("body", interval=0.5, lasts=60)
    try:
        videos = [
            {"video_id": f"slow{i:07d}", "thumbnail_url": f"http://127.0.0.1:{trickle.port}/{i}.jpg"} for i in range(64)
        ]
        background_processing(videos, [], cron_db, settings)
        process = consume(
            settings,
            "thumbnails",
            cron_db,
            VVV_THUMBNAIL_HOSTS=f"127.0.0.1:{trickle.port}",
            VVV_THUMBNAIL_TIMEOUT="120",
            VVV_STOP_TIMEOUT="2",
        )
        wait_for(lambda: len(trickle.threads) >= 64, 30, "64 checks under way")
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, process.stderr.read()[-2000:]
        assert time.monotonic() - started < 2 + 3
    finally:
        trickle.close()
