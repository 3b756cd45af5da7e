"""The producer hook: fast, keyed, bounded when the broker is away, and nothing lost."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace

from conftest import add_video

from vvv_core.broker import EmbeddedBroker, free_port
from vvv_core.hook import background_processing, flush_outbox, publish_new
from vvv_core.kafka import read_topic


def test_one_event_per_video_and_stale_id_keyed_by_video(settings, schemas, cron_db):
    videos = [
        {
            "video_id": f"vid{i:08d}",
            "thumbnail_url": f"https://i.ytimg.com/vi/{i}/default.jpg",
            "region": "NO",
            "title": f"t{i}",
        }
        for i in range(50)
    ]
    report = background_processing(videos, ["stale0000001", "stale0000002"], cron_db, settings)
    assert report.ok and (report.delivered, report.queued) == (52, 0)

    on_topic = read_topic(settings, settings.videos_topic)
    decoded = {m.key().decode(): schemas.decode(m.value(), "VideoEvent") for m in on_topic}
    assert sorted(decoded) == sorted(v["video_id"] for v in videos)
    assert all(d["video_id"] == k and d["region"] == "NO" for k, d in decoded.items())
    stale = [
        schemas.decode(m.value(), "StaleCheckEvent")["video_id"] for m in read_topic(settings, settings.stale_topic)
    ]
    assert sorted(stale) == ["stale0000001", "stale0000002"]


def test_same_video_lands_on_one_partition_in_order(settings, schemas, cron_db):
    for n in range(5):
        background_processing(
            [{"video_id": "samevideo01", "thumbnail_url": "u", "view_count": n}], [], cron_db, settings
        )
    msgs = read_topic(settings, settings.videos_topic)
    assert len({m.partition() for m in msgs}) == 1
    assert [schemas.decode(m.value(), "VideoEvent")["view_count"] for m in msgs] == [0, 1, 2, 3, 4]


def test_invalid_items_are_rejected_with_reasons_not_raised(settings, cron_db):
    report = background_processing(
        [{"video_id": "bad id; --"}, "not a dict", {"video_id": "okvideo0001"}], ["x" * 300], cron_db, settings
    )
    assert report.delivered == 1 and len(report.rejected) == 3 and not report.ok
    assert any("invalid video_id" in reason for reason in report.rejected.values())


def test_never_raises_into_the_cron(settings, tmp_path):
    report = background_processing([{"video_id": "okvideo0001"}], [], str(tmp_path / "missing.db"), settings)
    assert report.error and "does not exist" in report.error


def test_broker_down_returns_in_bounded_time_and_loses_nothing(settings, schemas, cron_db):
    port = free_port()
    down = replace(settings, bootstrap=f"127.0.0.1:{port}", hook_timeout=1.0)
    videos = [{"video_id": f"vid{i:08d}", "thumbnail_url": "u", "view_count": i} for i in range(20)]

    started = time.monotonic()
    report = background_processing(videos, ["stale0000001"], cron_db, down)
    assert time.monotonic() - started < 2.5
    assert (report.delivered, report.queued) == (0, 21) and "no Kafka broker reachable" in report.error
    # a second call while still down keeps the order: the new event queues behind the old ones
    background_processing([{"video_id": "vid00000000", "thumbnail_url": "u", "view_count": 99}], [], cron_db, down)
    conn = sqlite3.connect(cron_db)
    assert conn.execute("SELECT count(*) FROM vvv_outbox").fetchone()[0] == 22

    with EmbeddedBroker(port):
        report = flush_outbox(cron_db, down)
        assert report.ok and report.delivered == 22
        assert conn.execute("SELECT count(*) FROM vvv_outbox").fetchone()[0] == 0
        events = [schemas.decode(m.value(), "VideoEvent") for m in read_topic(down, down.videos_topic)]
        assert len(events) == 21
        assert [e["view_count"] for e in events if e["video_id"] == "vid00000000"] == [0, 99]
        assert len(read_topic(down, down.stale_topic)) == 1


def test_publish_publishes_each_new_snapshot_once(settings, schemas, cron_db):
    add_video(cron_db, "aaaaaaaaaaa", "PL", [(100, 1, 1, "2026-11-28 10:00:00"), (200, 2, 2, "2026-11-29 05:00:00")])
    add_video(cron_db, "bbbbbbbbbbb", "US", [(100, 1, 1, "2026-11-29 05:00:00")])
    assert publish_new(cron_db, settings).delivered == 2
    assert publish_new(cron_db, settings).delivered == 0  # a rerun publishes nothing new

    conn = sqlite3.connect(cron_db)
    with conn:
        conn.execute("INSERT INTO video_snapshots VALUES ('bbbbbbbbbbb', 'US', 300, 3, 3, '2026-11-29 06:00:00')")
    assert publish_new(cron_db, settings).delivered == 1
    keys = [m.key() for m in read_topic(settings, settings.videos_topic)]
    assert sorted(keys) == [b"aaaaaaaaaaa", b"bbbbbbbbbbb", b"bbbbbbbbbbb"]
    last = schemas.decode(read_topic(settings, settings.videos_topic)[-1].value(), "VideoEvent")
    assert last["region"] in ("PL", "US") and last["title"].startswith("title ")


def test_publish_selects_stale_videos_once_per_age_window(settings, schemas, cron_db):
    add_video(cron_db, "oldvideo001", "SE", [(10, 0, 0, "2026-01-01 00:00:00"), (20, 0, 0, "2026-01-02 00:00:00")])
    add_video(cron_db, "newvideo001", "SE", [(10, 0, 0, "2099-01-01 00:00:00")])
    publish_new(cron_db, settings)
    publish_new(cron_db, settings)
    stale = [
        schemas.decode(m.value(), "StaleCheckEvent")["video_id"] for m in read_topic(settings, settings.stale_topic)
    ]
    assert stale == ["oldvideo001"]
