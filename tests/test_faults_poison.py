"""Poison input, produced as raw bytes: each gets a clear dead-letter reason, nothing stalls or breaks."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import replace

import pytest
from confluent_kafka import Producer
from conftest import Member, results, vvv

from vvv_core import kafka
from vvv_core.avro import DEFAULT_SCHEMA_DIR, SchemaStore
from vvv_core.dlq import list_dead_letters
from vvv_core.events import now_ms
from vvv_core.kafka import read_topic
from vvv_core.runtime import ConsumerStopped

GOOD_IDS = ["J78aPJ3VyNs", "9nidKH8cM38", "M9Pmf9AB4Mo"]


def event(**changes) -> dict:
    return {"event_id": os.urandom(8).hex(), "video_id": "J78aPJ3VyNs", "created_at": now_ms(), **changes}


@pytest.fixture
def old_schema(tmp_path):
    """A writer schema some producer still uses: VideoEvent without video_id."""
    current = json.loads((DEFAULT_SCHEMA_DIR / "video_event.avsc").read_text())
    old = dict(current, fields=[f for f in current["fields"] if f["name"] != "video_id"])
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "video_event.avsc").write_text(json.dumps(old))
    return tmp_path / "old" / "video_event.avsc"


def poison(schemas: SchemaStore, old_schema) -> list[tuple[bytes, bytes, str]]:
    """(key, value, the reason the dead letter must give)"""
    encode = schemas.encoder("VideoEvent")
    good = encode(event())
    old_writer = SchemaStore(old_schema.parent).encoder("VideoEvent")
    return [
        (b"J78aPJ3VyNs", b"plain text", "missing C3 01 header"),
        (b"J78aPJ3VyNs", b"\xc3\x01" + bytes(8) + good[10:], "unknown writer schema fingerprint"),
        (b"J78aPJ3VyNs", good[:-7], "undecodable"),
        (b"J78aPJ3VyNs", old_writer({k: v for k, v in event().items() if k != "video_id"}), "video_id"),
        (b"J78aPJ3VyNs", b"\xc3\x01" + os.urandom(10_000_000), "unknown writer schema fingerprint"),
        (b"", good, "does not match video_id"),
        (b"x'); DROP TABLE videos;--", encode(event(video_id="x'); DROP TABLE videos;--")), "invalid video_id"),
        (b"v" * 10_000, encode(event(video_id="v" * 10_000)), "(10000 chars)"),
        (b"J78aPJ3VyNs", encode(event(region="R" * 500)), "invalid region"),
        (b"J78aPJ3VyNs", encode(event(view_count=2**63 - 1)), "invalid view_count"),
        (b"J78aPJ3VyNs", encode(event(created_at=253402300799000)), "invalid created_at 9999-12-31"),
        (b"J78aPJ3VyNs", encode(event(created_at=-(2**62))), "invalid created_at -4611686018427387904 ms"),
    ]


def produce_raw(settings, records: list[tuple[bytes, bytes]]) -> None:
    """Write ``records`` to the videos topic as they are (a topic that takes records up to 20 MB)."""
    large = {"max.message.bytes": "20000000"}  # Apache Kafka's default is 1 MB
    kafka.ensure_topics(kafka.admin(settings), settings, [settings.videos_topic], config=large)
    kafka.ensure_project_topics(kafka.admin(settings), settings, ["scoring"])
    producer = Producer(kafka.producer_config(settings, **{"message.max.bytes": 20_000_000}))
    refused = []
    for key, value in records:
        producer.produce(settings.videos_topic, value, key, on_delivery=lambda err, _m: err and refused.append(err))
    assert producer.flush(30) == 0 and refused == []


def test_every_kind_of_poison_is_dead_lettered_with_its_reason(settings, schemas, sample_db, old_schema):
    bad = poison(schemas, old_schema)
    encode = schemas.encoder("VideoEvent")
    records = []
    for i, (key, value, _reason) in enumerate(bad):  # poison between valid events, on every partition
        good_id = GOOD_IDS[i % 3]
        records += [(good_id.encode(), encode(event(video_id=good_id))), (key, value)]
    produce_raw(settings, records)
    conn = sqlite3.connect(sample_db)
    videos_before = conn.execute("SELECT count(*) FROM videos").fetchone()

    member = Member("scoring", settings, sample_db)
    member.runner.schemas = SchemaStore(history=[old_schema])  # it knows the old writer's fingerprint
    runner = member.start().join().runner

    assert (runner.processed, runner.dead_lettered) == (len(records), len(bad))
    assert len(results(settings, schemas)) == len(bad)  # one per valid event
    letters = list_dead_letters(settings, "scoring")
    assert len(letters) == len(bad)
    by_value = {(d.key, d.value): d.why for d in letters}
    for key, value, reason in bad:
        why = by_value[(key, value)]  # key and value untouched, 10 MB included
        assert reason in why["error.message"], (reason, why)
        assert why["source.topic"] == settings.videos_topic and why["attempts"] == "1"
    assert conn.execute("SELECT count(*) FROM videos").fetchone() == videos_before  # no table dropped
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    ends = {m.partition(): m.offset() + 1 for m in read_topic(settings, settings.videos_topic)}
    assert kafka.committed_offsets(settings, settings.group_id("scoring"), settings.videos_topic) == ends


def test_dlq_list_and_replay_from_the_command_line(settings, schemas, sample_db):
    produce_raw(settings, [(b"J78aPJ3VyNs", b"garbage one"), (b"9nidKH8cM38", b"garbage two")])
    assert vvv(settings, "consume", "scoring", "--db", sample_db, "--until-idle", "1").returncode == 0

    listed = vvv(settings, "dlq", "list", "scoring")
    assert listed.returncode == 0 and "2 dead letters" in listed.stdout
    assert "DecodeError: not Avro single-object encoded" in listed.stdout
    rows = [json.loads(line) for line in vvv(settings, "dlq", "list", "scoring", "--json").stdout.splitlines()]
    assert {r["key"] for r in rows} == {"J78aPJ3VyNs", "9nidKH8cM38"} and rows[0]["error.class"] == "DecodeError"

    replayed = vvv(settings, "dlq", "replay", "scoring")
    assert replayed.returncode == 0 and "replayed 2 dead letters" in replayed.stdout
    assert "replayed 0 dead letters" in vvv(settings, "dlq", "replay", "scoring").stdout  # each once
    back = [m for m in read_topic(settings, settings.videos_topic) if m.value().startswith(b"garbage")]
    assert len(back) == 4  # the two originals and the two replayed
    assert sum(1 for m in back if any(k == "vvv.replayed.from" for k, _ in m.headers() or [])) == 2


def test_a_flood_of_dead_letters_stops_the_consumer(settings, sample_db):
    produce_raw(settings, [(b"J78aPJ3VyNs", b"not an event %d" % i) for i in range(300)])
    member = Member("scoring", replace(settings, dlq_max_ratio=0.5), sample_db).start()
    with pytest.raises(ConsumerStopped, match=r"100% of the last \d+ events were dead-lettered"):
        member.join()
    assert member.runner.dead_lettered < 300  # it stopped instead of draining the topic

    done = vvv(settings, "consume", "scoring", "--db", sample_db, "--until-idle", "1")
    assert done.returncode == 1 and "vvv: error: " in done.stderr and "VVV_DLQ_MAX_RATIO" in done.stderr
    assert "Traceback" not in done.stderr
