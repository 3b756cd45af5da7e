"""Members on any host: thumbnails and liveness without the cron database, and the sink that stores their
results exactly once (its offsets in the same SQLite transaction as the effects)."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import time
from urllib.parse import urlsplit

import pytest
from confluent_kafka import Producer
from conftest import VVV, Member, cli_env, results, run_group, vvv, wait_for

from vvv_core import kafka
from vvv_core.events import now_ms
from vvv_core.hook import background_processing
from vvv_core.kafka import read_topic
from vvv_core.standins import LocalServer, demo_thumbnails

COUNTED = """
CREATE TABLE IF NOT EXISTS applied_count (n INTEGER NOT NULL);
INSERT INTO applied_count VALUES (0);
CREATE TRIGGER counted_insert AFTER INSERT ON thumbnail_checks BEGIN UPDATE applied_count SET n = n + 1; END;
CREATE TRIGGER counted_update AFTER UPDATE ON thumbnail_checks BEGIN UPDATE applied_count SET n = n + 1; END;
"""


def counting(cron_db: str) -> None:
    """Every effect on thumbnail_checks counted, by triggers in the database itself."""
    conn = sqlite3.connect(cron_db)
    conn.executescript(
        "CREATE TABLE IF NOT EXISTS thumbnail_checks (video_id TEXT PRIMARY KEY, status TEXT NOT NULL, width INTEGER,"
        " height INTEGER, http_status INTEGER, reason TEXT, attempts INTEGER NOT NULL, checked_at TEXT NOT NULL,"
        " event_at INTEGER);" + COUNTED
    )
    conn.close()


def add_videos(cron_db: str, videos: list[str]) -> None:
    """The videos the cron knows: the sink stores results for these only."""
    with sqlite3.connect(cron_db) as conn:
        conn.executemany("INSERT INTO videos (video_id) VALUES (?)", [(v,) for v in videos])


def applied(cron_db: str) -> int:
    return sqlite3.connect(cron_db).execute("SELECT n FROM applied_count").fetchone()[0]


def rows(cron_db: str) -> dict[str, tuple]:
    conn = sqlite3.connect(cron_db)
    return {r[0]: r[1:] for r in conn.execute("SELECT video_id, status, reason, event_at FROM thumbnail_checks")}


def publish_results(settings, schemas, results: list[tuple[str, str, int, bool]]) -> None:
    """(video_id, status, event_at, stored) as thumbnails members publish them."""
    kafka.ensure_project_topics(kafka.admin(settings), settings, ["sink"])
    encode = schemas.encoder("Result")
    producer = Producer(kafka.producer_config(settings))
    for i, (video_id, status, event_at, stored) in enumerate(results):
        detail = {"status": status, "width": None, "height": None, "http_status": 200, "reason": f"r{i}", "attempts": 1}
        record = {
            "event_id": f"e{i}",
            "group": "thumbnails",
            "video_id": video_id,
            "processed_at": now_ms(),
            "event_at": event_at,
            "stored": stored,
            "detail": ("com.viralvidvault.results.ThumbnailDetail", detail),
        }
        producer.produce(settings.results_topic, encode(record), video_id.encode())
    assert producer.flush(30) == 0


def test_thumbnails_without_the_database_and_the_sink_storing_their_results(settings, schemas, cron_db):
    """The worker has no path to the cron database: its verdicts reach SQLite through the results topic."""
    with LocalServer(demo_thumbnails()) as server:
        thumbs = settings.replace(thumbnail_hosts=(urlsplit(server.base_url).netloc,))
        videos = [f"vid{i:08d}" for i in range(30)]
        add_videos(cron_db, videos)
        items = [{"video_id": v, "thumbnail_url": f"{server.base_url}/vi/{v}/default.jpg"} for v in videos]
        background_processing(items, [], cron_db, thumbs)
        worker = Member("thumbnails", thumbs, until_idle=1.0).start()  # no database at all
        assert worker.conn is None
        worker.join()
    assert worker.runner.processed == 30
    tables = sqlite3.connect(cron_db).execute("SELECT name FROM sqlite_schema WHERE name = 'thumbnail_checks'")
    assert tables.fetchall() == []  # nothing written by the worker
    published = {r["video_id"]: r for r in results(settings, schemas)}
    assert not any(r["stored"] for r in published.values())
    assert run_group("sink", settings, cron_db).processed == 30
    stored = rows(cron_db)
    assert {v: row[0] for v, row in stored.items()} == {v: r["detail"]["status"] for v, r in published.items()}
    assert len({status for status, *_ in stored.values()}) > 1  # the stand-in's mix of verdicts


def test_an_older_result_arriving_later_never_replaces_a_newer_one(settings, schemas, cron_db):
    counting(cron_db)
    add_videos(cron_db, ["vid00000001"])
    newer, older = now_ms() - 1000, now_ms() - 2000
    publish_results(
        settings, schemas, [("vid00000001", "valid", newer, False), ("vid00000001", "broken", older, False)]
    )
    run_group("sink", settings, cron_db)
    assert rows(cron_db)["vid00000001"][:3] == ("valid", "r0", newer)


def test_results_a_member_stored_itself_are_not_applied_again(settings, sample_db):
    """Direct mode: the member stored them; the sink recognises them and applies none."""
    counting(sample_db)
    background_processing([{"video_id": "J78aPJ3VyNs", "thumbnail_url": "refused://x"}], [], sample_db, settings)
    run_group("thumbnails", settings, sample_db)
    assert applied(sample_db) == 1
    sink = run_group("sink", settings, sample_db)
    assert sink.processed == 1 and applied(sample_db) == 1


@pytest.mark.timeout(180)
def test_a_sink_killed_at_any_instant_neither_loses_nor_repeats_an_effect(settings, schemas, cron_db):
    counting(cron_db)
    count = 4000
    add_videos(cron_db, [f"vid{i:08d}" for i in range(count)])
    publish_results(settings, schemas, [(f"vid{i:08d}", "valid", now_ms() - count + i, False) for i in range(count)])
    env = cli_env(settings, VVV_BATCH_SIZE="50")  # many small turns: each kill lands mid-way
    kills = 0
    for _ in range(3):  # killed three times, each time while it is applying results
        sink = subprocess.Popen([*VVV, "sink", "--db", cron_db], env=env, stderr=subprocess.DEVNULL)
        before = applied(cron_db)
        wait_for(lambda b=before, p=sink: applied(cron_db) > b or p.poll() is not None, 60, "the sink to apply some")
        if applied(cron_db) < count:
            sink.send_signal(signal.SIGKILL)
            kills += 1
        else:  # it applied everything before the kill came: stop it the ordinary way
            sink.send_signal(signal.SIGTERM)
        sink.wait(30)
    stored = len(rows(cron_db))
    done = subprocess.run(
        [*VVV, "sink", "--db", cron_db, "--until-idle", "1"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert kills >= 1
    assert len(rows(cron_db)) == count and applied(cron_db) == count  # every effect, each exactly once
    # Kafka's committed offsets lag behind the database's after a kill; the sink skips what the database says
    # is done, so the last run takes exactly what was left (the upserts would hide a repeat: this does not).
    assert re.search(r"stopped after (\d+) events", done.stderr)[1] == str(count - stored)


@pytest.mark.apache_kafka_only  # tansu never reports a group's members
def test_status_says_which_mode_each_group_runs_in(settings, cron_db):
    background_processing([{"video_id": "vid00000001", "thumbnail_url": "refused://x"}], [], cron_db, settings)
    worker = Member("thumbnails", settings, until_idle=None).start()
    direct = Member("liveness", settings, cron_db, until_idle=None).start()
    wait_for(lambda: worker.runner.owned and direct.runner.owned, 30, "the members to join")
    time.sleep(1)
    out = vvv(settings, "status").stdout
    assert "results-only" in next(line for line in out.splitlines() if line.startswith("thumbnails"))
    assert "direct" in next(line for line in out.splitlines() if line.startswith("liveness"))


def test_the_table_holds_each_videos_latest_score_thumbnail_and_liveness(settings, schemas, cron_db):
    """Results of all three groups for a video, some stored by their member (direct mode): the sink's table record
    after each is the video's whole current state, read from the database; the latest per key is the state now."""
    conn = sqlite3.connect(cron_db)
    conn.execute("INSERT INTO videos (video_id, region, virality_score) VALUES ('tablevideo1', 'PL', 88.5)")
    conn.commit()  # scored in direct mode: in the database already, its result `stored`
    at = now_ms() - 10_000
    publish_results(settings, schemas, [("tablevideo1", "broken", at, False)])
    encode, producer = schemas.encoder("Result"), Producer(kafka.producer_config(settings))
    for i, (group, detail) in enumerate(
        [
            ("scoring", ("ScoreDetail", {"score": 88.5, "label": "VIRAL", "velocity": 1, "engagement": 1.0})),
            ("liveness", ("LivenessDetail", {"status": "deleted", "http_status": 404, "reason": None, "attempts": 1})),
        ]
    ):
        record = {
            "event_id": f"t{i}",
            "group": group,
            "video_id": "tablevideo1",
            "processed_at": now_ms(),
            "event_at": at + 1000,
            "stored": group == "scoring",
            "detail": (
                f"com.viralvidvault.results.{detail[0]}",
                {"region": None, "reason": None, **detail[1]} if group == "scoring" else detail[1],
            ),
        }
        producer.produce(settings.results_topic, encode(record), b"tablevideo1")
    assert producer.flush(30) == 0
    run_group("sink", settings, cron_db)
    states = [schemas.decode(m.value(), "VideoState") for m in read_topic(settings, settings.table_topic)]
    assert [(s["score"], s["label"], s["thumbnail"], s["liveness"]) for s in states][-1] == (
        88.5,
        "VIRAL",
        "broken",
        "deleted",
    )
    assert all(m.key() == b"tablevideo1" for m in read_topic(settings, settings.table_topic))


def test_scoring_runs_without_the_database_in_stream_mode(settings, schemas, cron_db, tmp_path):
    """On a host with no cron database: the events' snapshots kept in a local store, the scores published, and
    the sink storing them in the cron database."""
    snapshots = [(1_000, 3600), (21_000, 0)]  # views, seconds before now: 20,000 views in an hour
    for views, ago in snapshots:
        item = {"video_id": "streamvideo", "region": "GB", "view_count": views, "fetched_at": now_ms() - ago * 1000}
        assert background_processing([item], [], cron_db, settings).delivered == 1
    state = tmp_path / "state"
    env = cli_env(settings, VVV_STATE_DIR=str(state))
    done = subprocess.run([*VVV, "consume", "scoring", "--until-idle", "1"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert [r["detail"]["score"] for r in results(settings, schemas)] == [0.0, 55.0]  # GB: 20,000/h is 100 * .55
    assert list((state / settings.group_id("scoring")).glob("*.lmdb"))
    conn = sqlite3.connect(cron_db)
    conn.execute("INSERT INTO videos (video_id, region) VALUES ('streamvideo', 'GB')")
    conn.commit()
    run_group("sink", settings, cron_db)
    assert conn.execute("SELECT virality_score FROM videos").fetchone() == (55.0,)
