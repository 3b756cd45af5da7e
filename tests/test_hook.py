"""The producer hook: fast, keyed, bounded when the broker is away, and nothing lost."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import time
import uuid
from dataclasses import replace

import pytest
from conftest import add_video, broker_processes, hold_write_lock, hours_ago, new_broker, outbox_count, vvv

from vvv_core import kafka
from vvv_core.avro import SchemaStore
from vvv_core.broker import free_port
from vvv_core.config import Settings
from vvv_core.hook import background_processing, flush_outbox, publish_new
from vvv_core.kafka import read_topic
from vvv_core.outbox import outbox_dir


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
    """Keyed by the video id, so the cron can map each back to its video; an item naming no usable id by its
    position and what it is; a video rejected twice keeps both reasons (once, where they are the same)."""
    new = [{"video_id": "bad id; --"}, "not a dict", {"video_id": "okvideo0001"}, {"video_id": "vid1", "likes": -1}]
    new.append({"video_id": "vid1", "view_count": -1})
    report = background_processing(new, ["x" * 300, "vid1", "bad id; --", 7], cron_db, settings)
    assert report.delivered == 2 and not report.ok
    expected = "expected 1-64 of A-Z a-z 0-9 _ -"
    assert report.rejected == {
        "bad id; --": f"invalid video_id 'bad id; --': {expected}",
        "new_videos[1]: 'not a dict'": "not a dict",
        "vid1": "invalid likes -1: expected 0..10000000000000; invalid view_count -1: expected 0..10000000000000",
        f"stale_ids[0]: '{'x' * 59}...": f"invalid video_id '{'x' * 39}... (300 chars): {expected}",
        "stale_ids[3]: 7": f"invalid video_id 7: {expected}",
    }


def test_never_raises_into_the_cron_and_says_what_it_could_not_keep(settings, tmp_path):
    down = replace(settings, bootstrap=f"127.0.0.1:{free_port()}", hook_timeout=0.5)
    report = background_processing([{"video_id": "okvideo0001"}], [], str(tmp_path / "no" / "cron.db"), down)
    assert report.error and "cannot keep events in the outbox" in report.error and report.queued == 0


@pytest.mark.parametrize(
    ("breaks", "error"),
    [
        ("settings", "configuration error: VVV_HOOK_TIMEOUT='nan': expected a number from 0.05 to 300"),
        ("schemas", "cannot encode events (FileNotFoundError): no Avro schemas (*.avsc) in "),
        ("one item's encoding", "cannot encode events (RuntimeError): this record breaks the encoder"),
    ],
)
def test_whatever_breaks_after_the_hook_has_the_events_they_are_kept_and_delivered_later(
    settings, schemas, cron_db, monkeypatch, tmp_path, breaks, error
):
    """The settings, the schemas or one item's encoding fail: every valid event waits in the outbox, in order,
    the report names the failure as what it is, and the next call that can encode them delivers them."""
    import vvv_core.hook as hook

    videos = [{"video_id": f"vid{i:08d}", "view_count": i} for i in range(5)]
    with monkeypatch.context() as broken:
        broken.setattr(hook, "_schemas", {})  # what a fresh cron process has
        env = {"KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap, "VVV_NAMESPACE": settings.namespace}
        for name, value in env.items():
            broken.setenv(name, value)
        if breaks == "settings":
            broken.setenv("VVV_HOOK_TIMEOUT", "nan")
        elif breaks == "schemas":  # e.g. a package installed without its data
            (tmp_path / "empty").mkdir()
            broken.setattr(hook, "schema_store", lambda _settings: SchemaStore(tmp_path / "empty"))
        else:
            real = hook.encode

            def failing(s, records, *spans):
                if "vid00000003" in records.new.get("video_id", ()):
                    raise RuntimeError("this record breaks the encoder")
                return real(s, records, *spans)

            broken.setattr(hook, "encode", failing)
        report = background_processing(videos, ["stale0000001", "bad id"], cron_db)
    assert report.error.startswith(error) and (report.delivered, report.queued) == (0, 6)
    assert list(report.rejected.values()) == ["invalid video_id 'bad id': expected 1-64 of A-Z a-z 0-9 _ -"]
    background_processing([{"video_id": "vid00000003", "view_count": 99}], [], cron_db, settings)  # behind them
    events = [schemas.decode(m.value(), "VideoEvent") for m in read_topic(settings, settings.videos_topic)]
    assert [(e["video_id"], e["view_count"]) for e in events if e["video_id"] == "vid00000003"] == [
        ("vid00000003", 3),
        ("vid00000003", 99),
    ]
    assert len(events) == 6 and len(read_topic(settings, settings.stale_topic)) == 1
    assert outbox_count(cron_db) == 0 and not list(outbox_dir(cron_db).glob("*.records"))


def test_a_title_no_encoder_can_write_is_rejected_and_holds_nothing_back(settings, cron_db):
    """A lone surrogate (what a bad decode upstream leaves) cannot be written as UTF-8: refused with its reason, the
    other events delivered and nothing kept, where it once failed the call's encoding and stopped the outbox there."""
    new = [{"video_id": "okvideo0001", "title": "ok é"}, {"video_id": "badtitle001", "title": "caf\udce9"}]
    report = background_processing(new, [], cron_db, settings)
    assert report.rejected == {"badtitle001": "invalid title 'caf\\udce9': not UTF-8 text (a lone surrogate)"}
    assert (report.delivered, report.queued, report.error) == (1, 0, None) and outbox_count(cron_db) == 0
    assert [m.key() for m in read_topic(settings, settings.videos_topic)] == [b"okvideo0001"]


def test_publish_and_the_hook_share_one_record_of_what_was_published(settings, schemas, cron_db):
    """The hook is handed what the newest snapshot says; `vvv publish` then finds the same and sends only the rest."""
    add_video(cron_db, "aaaaaaaaaaa", "PL", [(100, 1, 1, hours_ago(2))])
    add_video(cron_db, "bbbbbbbbbbb", "US", [(100, 1, 1, hours_ago(2))])
    hooked = background_processing(
        [
            {
                "video_id": "aaaaaaaaaaa",
                "region": "PL",
                "title": "title aaaaaaaaaaa",
                "thumbnail_url": "https://i.ytimg.com/vi/aaaaaaaaaaa/default.jpg",
                "view_count": 100,
                "likes": 1,
                "comments": 1,
            }
        ],
        [],
        cron_db,
        settings,
    )
    assert hooked.delivered == 1
    assert publish_new(cron_db, settings).delivered == 1  # only the video the hook did not send
    assert sorted(m.key() for m in read_topic(settings, settings.videos_topic)) == [b"aaaaaaaaaaa", b"bbbbbbbbbbb"]


def test_publish_sends_nothing_again_after_an_upgrade_changed_the_fingerprint(settings, cron_db):
    """What an older version recorded (the values' repr, hashed) still counts as published: the snapshot it sent is
    not sent again, and one whose content changed since is."""
    for video_id in ("aaaaaaaaaaa", "bbbbbbbbbbb"):
        add_video(cron_db, video_id, "PL", [(100, 1, 1, hours_ago(2))])
    said = [(v, "PL", f"title {v}", f"https://i.ytimg.com/vi/{v}/default.jpg", 100, 1, 1) for v in ("aaaaaaaaaaa",)]
    said.append(("bbbbbbbbbbb", "PL", "title bbbbbbbbbbb", "https://i.ytimg.com/vi/bbbbbbbbbbb/default.jpg", 99, 1, 1))
    outbox_dir(cron_db).mkdir()
    lines = [f"N {hashlib.blake2b(repr(c).encode(), digest_size=8).hexdigest()} {c[0]}\n" for c in said]
    (outbox_dir(cron_db) / "published.log").write_text(f"T {2440587.5 + time.time() / 86400!r}\n{''.join(lines)}")
    assert publish_new(cron_db, settings).delivered == 1
    assert [m.key() for m in read_topic(settings, settings.videos_topic)] == [b"bbbbbbbbbbb"]  # its counts changed
    assert publish_new(cron_db, settings).delivered == 0


def test_publish_prints_each_rejected_row_exits_1_and_tries_it_again_later(settings, cron_db):
    add_video(cron_db, "aaaaaaaaaaa", "PL", [(100, 1, 1, hours_ago(2))])
    add_video(cron_db, "bad id; --x", "PL", [(100, 1, 1, hours_ago(2))])
    done = vvv(settings, "publish", "--db", cron_db)
    assert done.returncode == 1
    assert "rejected bad id; --x: invalid video_id 'bad id; --x'" in done.stdout  # keyed by the row's video id
    assert "delivered 1, kept in outbox 0, rejected 1" in done.stdout
    again = vvv(settings, "publish", "--db", cron_db)  # the good one is not sent twice; the bad one is tried again
    assert again.returncode == 1 and "delivered 0, kept in outbox 0, rejected 1" in again.stdout


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
    assert outbox_count(cron_db) == 22

    with new_broker(port):
        report = flush_outbox(cron_db, down)
        assert report.ok and report.delivered == 22
        assert outbox_count(cron_db) == 0
        events = [schemas.decode(m.value(), "VideoEvent") for m in read_topic(down, down.videos_topic)]
        assert len(events) == 21
        assert [e["view_count"] for e in events if e["video_id"] == "vid00000000"] == [0, 99]
        assert len(read_topic(down, down.stale_topic)) == 1


def test_a_broker_frozen_mid_call_costs_the_deadline_and_loses_nothing(own_broker, schemas, cron_db):
    """The broker stops answering (SIGSTOP) after the hook connected: at the deadline every event it
    did not confirm is kept, whether or not librdkafka served a report for it; then all are delivered."""
    target = Settings(bootstrap=own_broker.bootstrap, namespace=f"t{uuid.uuid4().hex[:10]}", hook_timeout=1.0)
    add_video(cron_db, "warmvideo01", "PL", [(1, 0, 0, hours_ago(1))])  # new topics: Apache Kafka elects leaders
    assert publish_new(cron_db, target, timeout=30).delivered == 1  # and the hook's producer is connected
    processes = broker_processes(own_broker)
    videos = [{"video_id": f"vid{i:08d}", "view_count": i} for i in range(2000)]
    for process in processes:
        os.kill(process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        report = background_processing(videos, [], cron_db, target)
        assert time.monotonic() - started < target.hook_timeout + 1.0
    finally:
        for process in processes:
            os.kill(process.pid, signal.SIGCONT)
    assert (report.delivered, report.queued) == (0, 2000)
    assert report.error == "not every event acknowledged by the deadline"  # not "no broker": it had connected
    assert flush_outbox(cron_db, target).delivered == 2000 and outbox_count(cron_db) == 0
    on_topic = {m.key() for m in read_topic(target, target.videos_topic)}
    assert on_topic >= {v["video_id"].encode() for v in videos}  # repeats allowed, losses not


@pytest.mark.apache_kafka_only  # tansu takes records of any size
def test_an_event_the_broker_refuses_on_a_later_call_is_kept_not_counted_delivered(settings, cron_db):
    """The producer serves every call: a refusal on its second call must reach that call's count."""
    kafka.ensure_topics(kafka.admin(settings), settings, [settings.videos_topic], config={"max.message.bytes": "300"})
    assert background_processing([{"video_id": "smallvideo1"}], [], cron_db, settings).delivered == 1
    too_large = {"video_id": "largevideo1", "title": os.urandom(600).hex()}  # over the topic's 300 bytes
    report = background_processing([too_large], [], cron_db, settings)
    assert (report.delivered, report.queued) == (0, 1) and report.error
    assert outbox_count(cron_db) == 1


def test_publish_publishes_each_new_snapshot_once(settings, schemas, cron_db):
    add_video(cron_db, "aaaaaaaaaaa", "PL", [(100, 1, 1, hours_ago(21)), (200, 2, 2, hours_ago(2))])
    add_video(cron_db, "bbbbbbbbbbb", "US", [(100, 1, 1, hours_ago(2))])
    assert publish_new(cron_db, settings).delivered == 2
    assert publish_new(cron_db, settings).delivered == 0  # a rerun publishes nothing new

    conn = sqlite3.connect(cron_db)
    with conn:
        conn.execute("INSERT INTO video_snapshots VALUES ('bbbbbbbbbbb', 'US', 300, 3, 3, ?)", (hours_ago(1),))
    assert publish_new(cron_db, settings).delivered == 1
    keys = [m.key() for m in read_topic(settings, settings.videos_topic)]
    assert sorted(keys) == [b"aaaaaaaaaaa", b"bbbbbbbbbbb", b"bbbbbbbbbbb"]
    last = schemas.decode(read_topic(settings, settings.videos_topic)[-1].value(), "VideoEvent")
    assert last["region"] in ("PL", "US") and last["title"].startswith("title ")


def test_publish_selects_stale_videos_once_per_age_window(settings, schemas, cron_db):
    add_video(cron_db, "oldvideo001", "SE", [(10, 0, 0, hours_ago(24 * 300)), (20, 0, 0, hours_ago(24 * 299))])
    add_video(cron_db, "newvideo001", "SE", [(10, 0, 0, hours_ago(0))])
    # stale by its newest snapshot, not its oldest
    add_video(cron_db, "backagain01", "SE", [(10, 0, 0, hours_ago(24 * 300)), (20, 0, 0, hours_ago(1))])
    publish_new(cron_db, settings)
    publish_new(cron_db, settings)
    stale = [
        schemas.decode(m.value(), "StaleCheckEvent")["video_id"] for m in read_topic(settings, settings.stale_topic)
    ]
    assert stale == ["oldvideo001"]


@pytest.mark.parametrize("broker_up", [True, False], ids=["broker up", "broker down"])
def test_a_locked_database_never_delays_the_hook_nor_loses_an_event(settings, schemas, cron_db, broker_up):
    """The cron holds its write lock in back-to-back 5 s transactions while it calls the hook."""
    port = free_port()
    target = settings if broker_up else replace(settings, bootstrap=f"127.0.0.1:{port}")
    target = replace(target, hook_timeout=1.0)
    videos = [{"video_id": f"vid{i:08d}", "thumbnail_url": "u", "view_count": i} for i in range(3500)]
    with hold_write_lock(cron_db):
        started = time.monotonic()
        report = background_processing(videos, ["stale0000001"], cron_db, target)
        took = time.monotonic() - started
        assert took < target.hook_timeout + 0.5, f"the hook took {took:.2f} s"
        assert report.delivered + report.queued == 3501
        assert report.delivered == (3501 if broker_up else 0)
        if broker_up:
            assert report.ok
    if not broker_up:
        with new_broker(port):
            again = flush_outbox(cron_db, target)
            assert again.ok and again.delivered == 3501 and outbox_count(cron_db) == 0
            keys = [m.key() for m in read_topic(target, target.videos_topic)]
    else:
        keys = [m.key() for m in read_topic(target, target.videos_topic)]
    assert sorted(keys) == sorted(v["video_id"].encode() for v in videos)  # every event, each once


def test_a_second_process_draining_queues_behind_it_in_order(settings, schemas, cron_db):
    """While another process holds the drain lock, new events join the outbox's end; then all go, in order."""
    from vvv_core.spool import Spool

    quick = replace(settings, hook_timeout=0.3)
    with Spool(outbox_dir(cron_db)).drain_lock(time.monotonic() + 1) as held:
        assert held
        for n in range(3):
            report = background_processing([{"video_id": "samevideo01", "view_count": n}], [], cron_db, quick)
            assert report.queued == n + 1  # all that waits in the outbox
    assert outbox_count(cron_db) == 3
    background_processing([{"video_id": "samevideo01", "view_count": 3}], [], cron_db, settings)
    on_topic = read_topic(settings, settings.videos_topic)
    counts = [schemas.decode(m.value(), "VideoEvent")["view_count"] for m in on_topic]
    assert counts == [0, 1, 2, 3] and outbox_count(cron_db) == 0


def test_a_damaged_segment_is_set_aside_not_deleted(settings, cron_db):
    from vvv_core.outbox import outbox_dir

    folder = outbox_dir(cron_db)
    folder.mkdir()
    (folder / "00000000000000000001-1-0.seg").write_bytes(b"VVVOUTBOX1\ntorn")
    assert background_processing([{"video_id": "okvideo0001"}], [], cron_db, settings).delivered == 1
    assert [p.name for p in folder.glob("*.damaged")] == ["00000000000000000001-1-0.damaged"]


def test_whatever_fails_while_sending_every_event_is_kept(settings, cron_db, monkeypatch):
    """A timeout while checking the topics (seen when a broker of a cluster died) must not cost an event."""
    from vvv_core.outbox import OutboxPublisher

    def times_out(self, deadline):
        raise TimeoutError

    monkeypatch.setattr(OutboxPublisher, "_ensure_ready", times_out)
    report = background_processing([{"video_id": f"vid{i:08d}"} for i in range(5)], [], cron_db, settings)
    assert (report.delivered, report.queued) == (0, 5) and report.error == "TimeoutError: "
    assert outbox_count(cron_db) == 5
