"""Consumers on several hosts: network namespaces for the broker, two worker hosts and the cron host.

The workers run thumbnails and liveness with no path to the cron database; the cron host runs the
hook, scoring and the sink. While events flow, one worker's cable is pulled (its partitions move to
the other) and put back, and the sink is killed with SIGKILL and started again. Afterwards every
video has exactly the verdicts the stand-in servers dictate, each applied once, and no dead letters.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from urllib.parse import urlsplit

import pytest
from conftest import FAST_KIP848, VVV, wait_for
from nethosts import Hosts, available
from test_stream_scoring import database_scores  # one definition of database mode's answer

from vvv_core.apache_kafka import ApacheKafka
from vvv_core.avro import SchemaStore
from vvv_core.config import Settings
from vvv_core.groups.liveness import LivenessGroup
from vvv_core.groups.thumbnails import ThumbnailGroup
from vvv_core.kafka import read_topic
from vvv_core.standins import LocalServer, demo_oembed, demo_thumbnails

pytestmark = [pytest.mark.apache_kafka_only, pytest.mark.timeout(300)]
VIDEOS = [f"mh{i:09d}" for i in range(120)]
TABLES = ("thumbnail_checks", "video_liveness")


def counted(cron_db: str) -> None:
    """The videos the cron knows, and the verdict tables made ahead, with triggers counting every effect on them."""
    conn = sqlite3.connect(cron_db)
    conn.executemany("INSERT INTO videos (video_id) VALUES (?)", [(v,) for v in VIDEOS])
    ThumbnailGroup.create_tables(conn)
    LivenessGroup.create_tables(conn)
    conn.execute("CREATE TABLE effects (target TEXT PRIMARY KEY, n INTEGER NOT NULL)")
    for table in TABLES:
        conn.execute("INSERT INTO effects VALUES (?, 0)", (table,))
        for event in ("INSERT", "UPDATE"):
            conn.execute(
                f"CREATE TRIGGER count_{table}_{event} AFTER {event} ON {table}"
                f" BEGIN UPDATE effects SET n = n + 1 WHERE target = '{table}'; END"
            )
    conn.commit()
    conn.close()


def query(cron_db: str, sql: str) -> list[tuple]:
    conn = sqlite3.connect(cron_db, timeout=30)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def first_assignment_after(log: str, since: float) -> float | None:
    """When a member's log first says it was assigned partitions after ``since`` (epoch seconds)."""
    with open(log, encoding="utf-8") as lines:
        assigned = [line for line in lines if ": assigned " in line and "nothing" not in line]
    times = [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp() for line in assigned]
    return next((when for when in times if when > since), None)


def test_workers_on_two_hosts_a_pulled_cable_and_a_killed_sink(tmp_path, cron_db):
    if (why := available()) is not None:
        pytest.fail(why) if os.environ.get("CI") else pytest.skip(why)
    counted(cron_db)
    hosts = Hosts(["broker", "w1", "w2", "cron"])
    with (
        hosts,
        ApacheKafka(host=hosts.addresses["broker"], wrap=hosts.command("broker"), properties=FAST_KIP848) as broker,
        LocalServer(demo_thumbnails(), host=hosts.gateway) as thumbs,
        LocalServer(demo_oembed(), host=hosts.gateway) as oembed,
    ):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VVV_", "KAFKA_"))} | {
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "VVV_NAMESPACE": "mh",
            "VVV_THUMBNAIL_HOSTS": urlsplit(thumbs.base_url).netloc,
            "VVV_OEMBED_URL": f"{oembed.base_url}/oembed",
            "VVV_LIVENESS_RATE": "6000",
            "VVV_THUMBNAIL_RETRY_DELAY": "1",
            "VVV_LIVENESS_RETRY_DELAY": "1",
        }
        processes: dict[str, subprocess.Popen] = {}

        def start(name: str, host: str, *args: str) -> None:
            log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
            processes[name] = subprocess.Popen(hosts.command(host, *VVV, *args), env=env, stderr=log, stdout=log)

        assert subprocess.run(hosts.command("cron", *VVV, "topics"), env=env, capture_output=True).returncode == 0
        for host in ("w1", "w2"):
            start(f"thumbnails-{host}", host, "consume", "thumbnails")
            start(f"liveness-{host}", host, "consume", "liveness")
        start("scoring", "cron", "consume", "scoring", "--db", cron_db)
        start("sink", "cron", "sink", "--db", cron_db)

        def hook(batch: list[str]) -> None:  # the cron, on its host
            items = [{"video_id": v, "thumbnail_url": f"{thumbs.base_url}/vi/{v}/default.jpg"} for v in batch]
            code = "import json, sys; from vvv_core.hook import background_processing as b; " + (
                "r = b(json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]); sys.exit(not r.ok)"
            )
            done = subprocess.run(
                hosts.command("cron", sys.executable, "-c", code, json.dumps(items), json.dumps(batch), cron_db),
                env=env,
                capture_output=True,
            )
            assert done.returncode == 0, done.stderr

        try:
            pulled = 0.0
            for i in range(6):
                hook(VIDEOS[i * 20 : (i + 1) * 20])
                if i == 1:
                    time.sleep(4)  # both workers busy with partitions of their own
                    pulled = time.time()
                    hosts.link("w1", up=False)
                if i == 3:
                    hosts.link("w1", up=True)
                if i == 4:
                    processes["sink"].send_signal(signal.SIGKILL)
                    processes["sink"].wait()
                    start("sink", "cron", "sink", "--db", cron_db)
                time.sleep(2)

            def finished() -> bool:
                counts = [query(cron_db, f"SELECT count(*) FROM {t}")[0][0] for t in TABLES]
                return counts == [len(VIDEOS)] * 2

            wait_for(finished, 120, "every verdict in the cron database")
            time.sleep(2)  # anything applied twice would show by now
        finally:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                process.wait(30)

        settings = Settings(
            bootstrap=broker.bootstrap, namespace="mh", thumbnail_hosts=(urlsplit(thumbs.base_url).netloc,)
        )
        settings = settings.replace(oembed_url=f"{oembed.base_url}/oembed")
        thumbnails, liveness = ThumbnailGroup(settings, None), LivenessGroup(settings, None)
        thumbnails.prepare()
        liveness.prepare()
        expected_thumbnails = {v: thumbnails.verdict(f"{thumbs.base_url}/vi/{v}/default.jpg").status for v in VIDEOS}
        expected_liveness = {v: liveness.verdict(v).status for v in VIDEOS}
        assert dict(query(cron_db, "SELECT video_id, status FROM thumbnail_checks")) == expected_thumbnails
        assert dict(query(cron_db, "SELECT video_id, status FROM video_liveness")) == expected_liveness
        assert dict(query(cron_db, "SELECT target, n FROM effects")) == dict.fromkeys(TABLES, len(VIDEOS))
        for group in ("thumbnails", "liveness", "scoring", "sink"):
            assert read_topic(settings, settings.dead_letter_topic(group)) == [], f"dead letters of {group}"

        moved = [first_assignment_after(str(tmp_path / f"{g}-w2.log"), pulled) for g in ("thumbnails", "liveness")]
        assert all(m is not None for m in moved), "w2 never took over w1's partitions"
        took_over = max(m - pulled for m in moved)
        results = sorted(m.timestamp()[1] / 1000 for m in read_topic(settings, settings.results_topic))
        stall = max(b - a for a, b in itertools.pairwise(results))
        print(
            f"\nmulti-host: w1's partitions moved to w2 {took_over:.1f} s after its cable was pulled; "
            f"longest stall between results {stall:.1f} s"
        )
        assert took_over < 15  # the broker-side session (2 s) and a rebalance


PUBLISH_HISTORY = """
import sqlite3, sys, time
from collections import defaultdict
from vvv_core.config import Settings
from vvv_core.hook import background_processing, flush_outbox
db = sys.argv[1]
conn = sqlite3.connect(db)
rows = conn.execute(
    "SELECT s.video_id, s.region, v.title, v.thumbnail_url, s.view_count, s.likes, s.comments, s.fetched_at"
    " FROM video_snapshots AS s JOIN videos AS v USING (video_id) ORDER BY julianday(s.fetched_at), s.rowid"
).fetchall()
calls = defaultdict(list)
names = ("video_id", "region", "title", "thumbnail_url", "view_count", "likes", "comments", "fetched_at")
for row in rows:
    calls[row[-1]].append(dict(zip(names, row)))
settings = Settings.from_env()
for items in calls.values():  # each fetch's snapshots, in the order the cron fetched them, 10 a call
    for start in range(0, len(items), 10):
        report = background_processing(items[start : start + 10], [], db, settings)
        assert not report.rejected, report  # what the broker did not take in time waits in the outbox, in order
        time.sleep(float(sys.argv[2]))
while flush_outbox(db, settings).queued:
    time.sleep(1)
print(len(rows))
"""


def test_scoring_on_two_worker_hosts_with_a_killed_member_and_a_pulled_cable_equals_database_mode(tmp_path, sample_db):
    """Scoring in stream mode on the workers (no database there), the sink on the cron host; while the real
    snapshots are published in the cron's order, one worker's member is killed with SIGKILL (and started again
    on its store) and the other's cable is pulled and put back. Every video's score equals database mode's."""
    if (why := available()) is not None:
        pytest.fail(why) if os.environ.get("CI") else pytest.skip(why)

    hosts = Hosts(["broker", "w1", "w2", "cron"])
    with (
        hosts,
        ApacheKafka(host=hosts.addresses["broker"], wrap=hosts.command("broker"), properties=FAST_KIP848) as broker,
    ):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VVV_", "KAFKA_"))} | {
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "VVV_NAMESPACE": "ms",
            "VVV_EXACTLY_ONCE": "1",  # a member cut off is fenced: its late writes never land (see the README)
        }
        processes: dict[str, subprocess.Popen] = {}

        def start(name: str, host: str, *args: str) -> None:
            log = open(tmp_path / f"{name}.log", "a")  # noqa: SIM115 - closed with the process
            host_env = env | {"VVV_STATE_DIR": str(tmp_path / host / "state")}  # each host's own disk
            processes[name] = subprocess.Popen(hosts.command(host, *VVV, *args), env=host_env, stderr=log, stdout=log)

        assert subprocess.run(hosts.command("cron", *VVV, "topics"), env=env, capture_output=True).returncode == 0
        for host in ("w1", "w2"):
            start(f"scoring-{host}", host, "consume", "scoring")
        start("sink", "cron", "sink", "--db", sample_db)
        time.sleep(5)  # both members in the group, each with partitions of its own
        publisher = subprocess.Popen(
            hosts.command("cron", sys.executable, "-c", PUBLISH_HISTORY, sample_db, "0.1"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(3)
            assert publisher.poll() is None  # mid-stream
            processes["scoring-w1"].send_signal(signal.SIGKILL)
            processes["scoring-w1"].wait()
            start("scoring-w1", "w1", "consume", "scoring")  # on its store, behind: restored from its position
            time.sleep(3)
            assert publisher.poll() is None  # mid-stream
            hosts.link("w2", up=False)
            time.sleep(6)  # its session expires: its partitions move to w1, restored there from the changelog
            hosts.link("w2", up=True)
            out, err = publisher.communicate(timeout=120)
            assert publisher.returncode == 0, err
            assert out.strip() == "1068"
            expected = {v: d["score"] for v, d in database_scores(sample_db, Settings()).items() if d["reason"] is None}

            def stored() -> dict[str, float]:
                return dict(
                    query(sample_db, "SELECT video_id, virality_score FROM videos WHERE virality_score IS NOT NULL")
                )

            deadline = time.monotonic() + 120
            while stored() != expected and time.monotonic() < deadline:
                time.sleep(0.5)
            assert stored() == expected  # every video's score equal to database mode's (else: which differ)
            # every member kept going: a rebalance failing a transaction is started over, never a stop
            gone = {name: p.returncode for name, p in processes.items() if p.poll() is not None}
            assert not gone, (gone, (tmp_path / "scoring-w2.log").read_text()[-3000:])
        finally:
            for process in [*processes.values(), publisher]:
                process.terminate()
            for process in [*processes.values(), publisher]:
                process.wait(30)
        assert len(expected) == 280
        settings = Settings(bootstrap=broker.bootstrap, namespace="ms")
        for group in ("scoring", "sink"):
            assert read_topic(settings, settings.dead_letter_topic(group)) == [], f"dead letters of {group}"
        schemas = SchemaStore()
        out = [schemas.decode(m.value(), "Result") for m in read_topic(settings, settings.results_topic)]
        published = [schemas.decode(m.value(), "VideoEvent") for m in read_topic(settings, settings.videos_topic)]
        # read_committed: a result per event on the topic (the hook may send an event twice: see its outbox), no more
        assert sorted(r["event_id"] for r in out) == sorted(e["event_id"] for e in published)
        assert len({e["event_id"] for e in published}) == 1068
        logs = (tmp_path / "scoring-w1.log").read_text() + (tmp_path / "scoring-w2.log").read_text()
        assert "restored" in logs
