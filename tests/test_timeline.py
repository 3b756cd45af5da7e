"""A video's timeline: every event, result, dead letter and replay of one video, and the cron database's row, in
time order, read from the video's partition of each topic only, within a window and a count."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from conftest import BROKER_KIND, run_group, vvv

from vvv_core import kafka, timeline
from vvv_core.avro import SchemaStore
from vvv_core.dlq import replay_dead_letters
from vvv_core.events import new_event_ids, now_ms, video_record
from vvv_core.groups import GROUPS
from vvv_core.hook import background_processing, publish_new
from vvv_core.runtime.deadletter import dead_letter_headers
from vvv_core.runtime.model import Failure, Inbound

DAY_MS = 86_400_000


def send(settings, topic: str, key: bytes, value: bytes, at_ms: int | None = None, headers=None) -> None:
    producer = Producer(kafka.producer_config(settings))
    producer.produce(topic, value, key, headers=headers, **({"timestamp": at_ms} if at_ms else {}))
    assert producer.flush(10) == 0


def a_scored_video(db_path: str) -> str:
    conn = sqlite3.connect(db_path)
    video_id = conn.execute("SELECT video_id FROM videos WHERE virality_score IS NOT NULL LIMIT 1").fetchone()[0]
    conn.close()
    return video_id


@pytest.mark.one_clock
def test_a_videos_timeline_tells_its_whole_story_from_its_partitions_alone(settings, sample_db):
    publish_new(sample_db, settings)
    run_group("scoring", settings, sample_db)
    video_id = a_scored_video(sample_db)
    key = video_id.encode()
    value = SchemaStore().encoder("VideoEvent")(video_record({"video_id": video_id}, next(new_event_ids()), now_ms()))
    send(settings, settings.videos_topic, key, value, now_ms() - 30 * DAY_MS)  # a month ago: outside the window
    send(settings, settings.videos_topic, key, b"not avro at all")  # poison: a dead letter, with its reason
    # a dead letter a member wrote after a failure since fixed (as the console's tests make one), then replayed
    failure = Failure("transient", "OperationalError", "database is locked", attempts=3)
    source = Inbound(settings.videos_topic, 0, 7, key, value, [])
    kafka.ensure_project_topics(kafka.admin(settings), settings, list(GROUPS))
    send(
        settings,
        settings.dead_letter_topic("scoring"),
        key,
        value,
        None,
        dead_letter_headers("scoring", source, failure),
    )
    run_group("scoring", settings, sample_db)
    assert (
        replay_dead_letters(
            settings, "scoring", lambda d: d.key == key and b"locked" in dict(d.headers)["vvv.dlq.error.message"]
        )
        == 1
    )
    background_processing([{"video_id": video_id, "region": "PL", "view_count": 12345}], [], sample_db, settings)
    run_group("scoring", settings, sample_db)

    with kafka.Readers(settings) as readers:
        found = timeline.build(settings, readers, GROUPS, video_id, sample_db)
    partitions = {r.topic: r.partition for r in found.read}
    expected = {t: kafka.java_partition(key, settings.partitions) for t in partitions}
    assert partitions == expected  # one partition of each topic: the video's, never a whole topic
    assert set(partitions) >= {settings.videos_topic, settings.results_topic, settings.dead_letter_topic("scoring")}
    kinds = [e.kind for e in found.entries]
    assert [e.at for e in found.entries] == sorted(e.at for e in found.entries)
    assert kinds.count("undecodable") == 1  # the poison, on the videos topic
    events = [e for e in found.entries if e.kind == "event" and e.where.startswith(settings.videos_topic)]
    assert len(events) == 3  # the first publish, the replay and the hook's call: not the month-old one
    assert sum("a replay of the dead letter" in e.what for e in events) == 1
    assert any("12,345 views" in e.what for e in events)
    results = [e for e in found.entries if e.kind == "result"]
    assert {r.event_id for r in results} == {e.event_id for e in events}  # each event's result, by its id
    letters = {e.what for e in found.entries if e.kind == "dead letter"}
    assert any("database is locked" in w and "replayed" in w for w in letters)
    assert any("DecodeError: not Avro single-object encoded" in w for w in letters), letters
    assert found.database["video"]["virality_score"] is not None
    assert any(e.kind == "snapshot" for e in found.entries)

    with kafka.Readers(settings) as readers:
        older = timeline.build(settings, readers, GROUPS, video_id, None, days=45)
    older_events = [e for e in older.entries if e.kind == "event" and e.where.startswith(settings.videos_topic)]
    assert len(older_events) == 4  # the month-old event is in a longer window

    shown = vvv(settings, "timeline", video_id, "--db", sample_db)
    assert shown.returncode == 0, shown.stderr
    assert f"video {video_id}:" in shown.stdout and "database is locked" in shown.stdout
    assert f"score {found.database['video']['virality_score']:g}" in shown.stdout.splitlines()[-1]
    as_json = json.loads(vvv(settings, "timeline", video_id, "--json").stdout)
    assert as_json["video_id"] == video_id and len(as_json["entries"]) == len(found.entries) - sum(
        e.kind == "snapshot" for e in found.entries
    )


@pytest.mark.one_clock
def test_a_partition_holding_more_than_the_bound_is_read_from_its_newest(settings, sample_db):
    """A busy partition: the timeline reads its newest records only, and says that the window held more."""
    video_id = "busyvideo01"
    background_processing([{"video_id": video_id, "view_count": n} for n in range(1)], [], sample_db, settings)
    for n in range(30):
        background_processing([{"video_id": video_id, "view_count": n}], [], sample_db, settings)
    with kafka.Readers(settings) as readers:
        found = timeline.build(settings, readers, GROUPS, video_id, None, most=10)
    [videos] = [r for r in found.read if r.topic == settings.videos_topic]
    assert videos.records == 10 and videos.cut and videos.end - videos.start == 10
    events = [e for e in found.entries if e.kind == "event"]
    assert [e.what.split(", ")[1] for e in events] == [f"{n} views" for n in range(20, 30)]  # the newest ten
    assert "the window holds more: only its newest 10 records read" in timeline.bound(videos)


@pytest.mark.one_clock
def test_the_window_starts_where_the_time_index_says_once_checked(settings):
    """Records of a month ago and of now on the video's partition: the window is found in the broker's time index
    where it agrees with the records around its answer, and by reading from the start where it does not."""
    key = b"windowvideo"
    value = SchemaStore().encoder("VideoEvent")(
        video_record({"video_id": "windowvideo"}, next(new_event_ids()), now_ms())
    )
    kafka.ensure_project_topics(kafka.admin(settings), settings, list(GROUPS))
    for days in (40, 35, 30, 20):
        send(settings, settings.videos_topic, key, value, now_ms() - days * DAY_MS)
    send(settings, settings.videos_topic, key, value)
    time.sleep(0.2)
    with kafka.Readers(settings) as readers:
        found = timeline.build(settings, readers, ["scoring"], "windowvideo", days=25)
    [videos] = [r for r in found.read if r.topic == settings.videos_topic]
    assert len([e for e in found.entries if e.kind == "event"]) == 2  # 20 days ago, and now
    assert videos.by_time or BROKER_KIND != "kafka"  # Apache Kafka's time index answers right
    if videos.by_time:  # the broker's time index: read from the record before the window on
        assert videos.start == 2 and videos.records == 3
    else:  # the embedded broker's is wrong: read from its start
        assert timeline.TIME_INDEX_AGREES[settings.bootstrap] is False and videos.start == 0


def test_a_look_at_the_ends_asks_again_while_a_partitions_leader_is_being_elected(settings, monkeypatch):
    """Just after a topic is made, Apache Kafka answers ListOffsets "not leader" until the election is over:
    the look asks again (until its timeout) and answers the real ends; a refusal of another kind is said."""
    kafka.ensure_topics(kafka.admin(settings), settings, [settings.videos_topic])
    send(settings, settings.videos_topic, b"video000001", b"x")
    real = kafka.Readers._list_offsets
    refusals = [KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE]

    def electing(self, wanted):
        if refusals:
            raise KafkaException(KafkaError(refusals.pop(0)))
        return real(self, wanted)

    monkeypatch.setattr(kafka.Readers, "_list_offsets", electing)
    monkeypatch.setitem(kafka.LIST_OFFSETS_AGREE, settings.bootstrap, True)  # ListOffsets is how it looks
    with kafka.Readers(settings) as readers:
        ends = readers.ends({settings.videos_topic: None})[settings.videos_topic]
        assert not refusals and sum(high for _low, high in ends.values()) == 1
        refusals.append(KafkaError.TOPIC_AUTHORIZATION_FAILED)
        with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
            readers.ends({settings.videos_topic: None})
