"""The scoring group end to end: hook -> topic -> group -> SQLite rows and result messages."""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from dataclasses import replace

import pytest
from confluent_kafka import Producer
from conftest import Member, add_video, hours_ago, join_all, results, run_group, stop_one_by_one, wait_for

from vvv_core import events, kafka
from vvv_core.domain.regions import REGIONS
from vvv_core.hook import background_processing, publish_new
from vvv_core.kafka import read_topic
from vvv_core.runtime import ConsumerStopped
from vvv_core.runtime.backends.kafka import KafkaBackend
from vvv_core.runtime.deadletter import read_headers


def scores(db_path: str) -> dict[str, float | None]:
    conn = sqlite3.connect(db_path)
    try:
        return dict(conn.execute("SELECT video_id, virality_score FROM videos"))
    finally:
        conn.close()


def committed(settings, group: str) -> dict[int, int]:
    return kafka.committed_offsets(settings, settings.group_id(group), settings.videos_topic)


def end_offsets(settings, topic: str) -> dict[int, int]:
    ends: dict[int, int] = {}
    for m in read_topic(settings, topic):
        ends[m.partition()] = max(ends.get(m.partition(), 0), m.offset() + 1)
    return ends


def test_real_sample_is_scored_into_sqlite_and_results(settings, schemas, sample_db):
    report = publish_new(sample_db, settings)
    runner = run_group("scoring", settings, sample_db)

    assert runner.processed == report.delivered - len(read_topic(settings, settings.stale_topic)) == 308
    stored = scores(sample_db)
    scored = {v: s for v, s in stored.items() if s is not None}
    assert len(scored) == 280  # 40 videos with 2+ snapshots in each of 7 regions
    out = results(settings, schemas)
    assert len(out) == 308 and {r["group"] for r in out} == {"scoring"}
    by_video = {r["video_id"]: r["detail"] for r in out}
    assert sum(d["reason"] == "insufficient data" for d in by_video.values()) == 28
    for video_id, score in scored.items():
        assert by_video[video_id]["score"] == score and by_video[video_id]["reason"] is None
    assert {d["region"] for d in by_video.values()} == set(REGIONS)
    assert committed(settings, "scoring") == end_offsets(settings, settings.videos_topic)


def test_history_rules_on_a_real_database(settings, schemas, cron_db):
    add_video(
        cron_db,
        "unknownreg1",
        "XX",
        [(1_000_000, 0, 0, "2026-11-28 10:00:00"), (1_024_000, 30_000, 2_000, "2026-11-28 12:00:00")],
    )
    add_video(cron_db, "equaltimes1", "PL", [(100, 0, 0, "2026-11-28 10:00:00"), (200, 5, 0, "2026-11-28 10:00:00")])
    # mixed timestamp formats; the newest row was inserted first; views went down
    add_video(
        cron_db,
        "viewsdown01",
        "PL",
        [
            (900, 9, 0, "2026-11-28T11:00:00Z"),
            (1_000, 0, 0, "2026-11-28 10:00:00"),
            (5, 0, 0, "2026-11-28T09:00:00+00:00"),
        ],
    )
    # same instant written two ways: the later-inserted row (higher rowid) is the newer one
    add_video(
        cron_db,
        "tiebyrowid1",
        "US",
        [
            (10, 0, 0, "2026-11-28 09:00:00"),
            (100, 0, 0, "2026-11-28 12:00:00"),
            (50, 0, 0, "2026-11-28T13:00:00+01:00"),
        ],
    )
    add_video(cron_db, "onesnapshot", "SE", [(100, 0, 0, "2026-11-28 10:00:00")])
    # two snapshots of one time behind the newest: the later-inserted one is the second newest
    tied = hours_ago(3)
    add_video(cron_db, "tiesecond01", "US", [(100, 0, 0, tied), (400, 0, 0, tied), (1_000, 0, 0, hours_ago(2))])
    conn = sqlite3.connect(cron_db)
    with conn:
        conn.execute("UPDATE videos SET virality_score = 42.0 WHERE video_id IN ('equaltimes1', 'onesnapshot')")
    ids = ["unknownreg1", "equaltimes1", "viewsdown01", "tiebyrowid1", "onesnapshot", "notindbatall", "tiesecond01"]
    background_processing([{"video_id": v, "thumbnail_url": "u"} for v in ids], [], cron_db, settings)
    run_group("scoring", settings, cron_db)

    details = {r["video_id"]: r["detail"] for r in results(settings, schemas)}
    assert details["unknownreg1"]["score"] == 66.2  # GB's baseline
    assert details["equaltimes1"]["reason"] == "no time delta"
    assert (details["viewsdown01"]["score"], details["viewsdown01"]["velocity"]) == (7.5, -100)
    assert details["tiebyrowid1"]["reason"] == "no time delta" and details["tiebyrowid1"]["velocity"] == 0
    assert details["onesnapshot"]["reason"] == details["notindbatall"]["reason"] == "insufficient data"
    assert details["tiesecond01"]["velocity"] == 600  # (1,000 - 400) views in the hour, not (1,000 - 100)
    stored = scores(cron_db)
    assert stored["equaltimes1"] == stored["onesnapshot"] == 42.0  # left unchanged
    assert stored["unknownreg1"] == 66.2 and stored["viewsdown01"] == 7.5


def test_direct_mode_reads_each_videos_newest_snapshots_through_its_index(sample_db):
    """Scoring creates ``vvv_snapshots_by_video_time`` (video, time), and a batch's history query reads through it:
    each video's newest rows come in the index's order, the 2 it needs, never all its snapshots sorted."""
    from vvv_core import db
    from vvv_core.config import Settings
    from vvv_core.groups.scoring import ScoringGroup

    group = ScoringGroup(Settings(namespace="t"), db.connect(sample_db))
    group.prepare()
    plan: list[tuple[int, int, str]] = []  # (id, parent, detail) of each step
    real = group.conn.execute

    class Explaining:
        def execute(self, sql, *args):
            plan.extend((step, parent, detail) for step, parent, _, detail in real(f"EXPLAIN QUERY PLAN {sql}", *args))
            return real(sql, *args)

    group.conn = Explaining()
    assert group._history({"J78aPJ3VyNs"})["J78aPJ3VyNs"]
    (lookup,) = [step for step, _parent, detail in plan if detail.startswith("CORRELATED LIST SUBQUERY")]
    inside = [detail for _step, parent, detail in plan if parent == lookup]
    assert inside == ["SEARCH video_snapshots USING INDEX vvv_snapshots_by_video_time (video_id=?)"], plan


def test_old_database_without_optional_columns(settings, schemas, tmp_path):
    path = str(tmp_path / "old.db")
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE videos (video_id TEXT PRIMARY KEY, title TEXT);
        CREATE TABLE video_snapshots (video_id TEXT, view_count INTEGER, likes INTEGER, fetched_at TEXT);
        INSERT INTO videos VALUES ('oldschema01', 'kept');
        INSERT INTO video_snapshots VALUES ('oldschema01', 1000, 10, '2026-11-28 10:00:00'),
                                           ('oldschema01', 21000, 10, '2026-11-28 11:00:00');""")
    conn.close()
    background_processing([{"video_id": "oldschema01", "thumbnail_url": "u"}], [], path, settings)
    run_group("scoring", settings, path)
    # GB baseline (no region): 20,000 views/h = 100 * .55; engagement 10/21,000 = 0.05 % / 4.5 -> 0.5
    assert scores(path) == {"oldschema01": 55.5}
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT title FROM videos").fetchone() == ("kept",)


def test_two_members_share_partitions_and_score_each_event_once(settings, schemas, sample_db):
    members = [Member("scoring", settings, sample_db, until_idle=None).start() for _ in range(2)]
    join_all(members, settings.partitions)  # each partition owned by exactly one member
    publish_new(sample_db, settings)
    wait_for(lambda: sum(m.runner.processed for m in members) >= 308, 30, "the 308 events")
    stop_one_by_one(members, settings.partitions)

    assert all(m.runner.processed > 0 for m in members)
    assert sum(m.runner.processed for m in members) == 308
    event_ids = [r["event_id"] for r in results(settings, schemas)]
    assert len(event_ids) == len(set(event_ids)) == 308


def test_restart_resumes_from_committed_offsets(settings, schemas, sample_db):
    first = [{"video_id": f"vid{i:08d}", "thumbnail_url": "u"} for i in range(30)]
    background_processing(first, [], sample_db, settings)
    assert run_group("scoring", settings, sample_db).processed == 30
    background_processing(
        [{"video_id": f"new{i:08d}", "thumbnail_url": "u"} for i in range(7)], [], sample_db, settings
    )
    assert run_group("scoring", settings, sample_db).processed == 7  # only what came since

    out = results(settings, schemas)
    assert len(out) == 37 and len({r["event_id"] for r in out}) == 37
    assert committed(settings, "scoring") == end_offsets(settings, settings.videos_topic)


def test_undecodable_message_goes_to_dead_letter_and_the_rest_flows(settings, schemas, sample_db):
    background_processing([{"video_id": "J78aPJ3VyNs", "thumbnail_url": "u"}], [], sample_db, settings)
    producer = Producer(kafka.producer_config(settings))
    producer.produce(settings.videos_topic, b"\x01garbage", b"J78aPJ3VyNs", headers=[("trace", b"t1")])
    producer.flush(10)
    background_processing([{"video_id": "9nidKH8cM38", "thumbnail_url": "u"}], [], sample_db, settings)

    runner = run_group("scoring", settings, sample_db)
    assert (runner.processed, runner.dead_lettered) == (3, 1)
    assert sorted(r["video_id"] for r in results(settings, schemas)) == ["9nidKH8cM38", "J78aPJ3VyNs"]
    [dead] = read_topic(settings, settings.dead_letter_topic("scoring"))
    assert (dead.key(), dead.value()) == (b"J78aPJ3VyNs", b"\x01garbage")  # untouched
    headers = read_headers(dead.headers())
    assert headers["error.class"] == "DecodeError" and "C3 01" in headers["error.message"]
    assert headers["source.topic"] == settings.videos_topic and headers["group"] == "scoring"
    assert ("trace", b"t1") in dead.headers()
    assert committed(settings, "scoring") == end_offsets(settings, settings.videos_topic)


def test_exactly_once_mode_commits_results_and_offsets_in_one_transaction(settings, schemas, sample_db):
    eos = replace(settings, exactly_once=True)
    publish_new(sample_db, eos)
    bad = Producer(kafka.producer_config(eos))
    bad.produce(eos.videos_topic, b"garbage", b"J78aPJ3VyNs")
    bad.flush(10)
    runner = run_group("scoring", eos, sample_db)
    assert (runner.processed, runner.dead_lettered) == (309, 1)
    out = results(eos, schemas)  # read_committed, the default isolation level
    assert len(out) == len({r["event_id"] for r in out}) == 308
    assert len(read_topic(eos, eos.dead_letter_topic("scoring"))) == 1
    assert committed(eos, "scoring") == end_offsets(eos, eos.videos_topic)


@pytest.mark.apache_kafka_only  # tansu shows aborted records to read_committed readers
def test_a_batch_failing_between_produce_and_commit_is_seen_once_by_read_committed_readers(
    settings, schemas, sample_db, monkeypatch
):
    """The first run fails after its results are produced, before its offsets are committed; a second run
    redoes the batch. With exactly-once the failed batch's results are aborted: a read_committed reader sees
    each result once. Without it, they would be there twice."""
    eos = replace(settings, exactly_once=True)
    publish_new(sample_db, eos)
    failures = []
    commit_transaction, commit = KafkaBackend.commit_transaction, KafkaBackend.commit

    def failing_transaction(self):
        if failures:
            return commit_transaction(self)
        failures.append(1)
        self._producer.flush(10)  # the results are in the log, uncommitted, when the failure comes
        self.abort_transaction()
        raise ConsumerStopped("injected between produce and commit")

    def failing_commit(self, offsets, wait):  # the same point, were exactly-once off
        if failures:
            return commit(self, offsets, wait)
        failures.append(1)
        raise ConsumerStopped("injected between produce and commit")

    monkeypatch.setattr(KafkaBackend, "commit_transaction", failing_transaction)
    monkeypatch.setattr(KafkaBackend, "commit", failing_commit)
    with pytest.raises(ConsumerStopped):
        run_group("scoring", eos, sample_db)
    assert failures
    assert run_group("scoring", eos, sample_db).processed == 308
    committed_reader = results(eos, schemas)  # read_committed
    assert len(committed_reader) == len({r["event_id"] for r in committed_reader}) == 308
    everything = read_topic(eos, eos.results_topic, isolation="read_uncommitted")
    assert len(everything) > 308  # the aborted batch is there, for readers that do not ask for committed data


@pytest.mark.apache_kafka_only  # tansu shows aborted records to read_committed readers
def test_a_member_dying_after_sending_its_offsets_but_before_its_commit_commits_neither(
    settings, schemas, sample_db, monkeypatch
):
    """The member dies with its transaction open: its results written, its offsets sent to the transaction, the
    commit never made. The broker aborts the transaction; the group's committed offsets never moved (were they
    committed by the consumer instead, the next member would skip the batch); the next member redoes it all,
    and a read_committed reader sees each result once."""
    eos = replace(settings, exactly_once=True)
    publish_new(sample_db, eos)
    commit_transaction, died = KafkaBackend.commit_transaction, []

    def dying(self):
        if died:
            return commit_transaction(self)
        died.append(1)
        self._producer.flush(10)  # results and offsets are with the broker, the transaction open, when it dies
        raise ConsumerStopped("died before the commit")

    monkeypatch.setattr(KafkaBackend, "commit_transaction", dying)
    with pytest.raises(ConsumerStopped):
        run_group("scoring", eos, sample_db)
    assert died
    assert run_group("scoring", eos, sample_db).processed == 308
    out = results(eos, schemas)
    assert len(out) == len({r["event_id"] for r in out}) == 308
    assert committed(eos, "scoring") == end_offsets(eos, eos.videos_topic)


@pytest.mark.apache_kafka_only  # tansu shows open and aborted records to read_committed readers
def test_a_dead_members_open_transaction_holds_readers_back_for_its_short_timeout_only(settings):
    """A member dying with its transaction open holds read_committed readers of its partitions back until the
    broker aborts it: after ``transaction.timeout.ms`` of 10 s (and the broker's check for timed-out transactions,
    every 10 s), not the client's default of 60 s."""
    import logging

    eos = replace(settings, exactly_once=True)
    kafka.ensure_project_topics(kafka.admin(eos), eos, ["scoring"])
    log = logging.LoggerAdapter(logging.getLogger(__name__), {})
    dying = KafkaBackend(eos, "scoring", log, transactional=True)._new_producer()  # as a member makes it
    dying.begin_transaction()
    dying.produce(eos.results_topic, b"in the open transaction", b"video000001", partition=0)
    dying.flush(10)  # with the broker, the transaction open: the member dies here, neither committing nor aborting
    started = time.monotonic()
    later = Producer(kafka.producer_config(eos))
    later.produce(eos.results_topic, b"after it", b"video000002", partition=0)
    later.flush(10)
    seen = lambda: [m.value() for m in read_topic(eos, eos.results_topic, timeout=5)]  # noqa: E731
    wait_for(lambda: seen() == [b"after it"], 45, "the open transaction aborted by the broker")
    assert time.monotonic() - started < 30  # 10 s and the broker's next check, not 60 s
    del dying


@pytest.mark.apache_kafka_only  # tansu shows aborted records to read_committed readers
def test_what_a_transaction_upstream_aborted_is_never_processed(settings, schemas, sample_db):
    producer = Producer(kafka.producer_config(settings, **{"transactional.id": f"{settings.namespace}-upstream"}))
    producer.init_transactions(10)
    producer.begin_transaction()
    aborted = [f"aborted{i:04d}" for i in range(5)]
    background_processing([{"video_id": v} for v in aborted[:1]], [], sample_db, settings)  # creates the topics
    for video_id in aborted:
        record = events.video_record({"video_id": video_id}, f"aborted-{video_id}", events.now_ms())
        producer.produce(settings.videos_topic, schemas.encoder("VideoEvent")(record), video_id.encode())
    producer.flush(10)  # in the log (an abort purges what was not sent yet)
    producer.abort_transaction(10)
    assert len(read_topic(settings, settings.videos_topic, isolation="read_uncommitted")) == 1 + len(aborted)
    publish_new(sample_db, settings)
    runner = run_group("scoring", settings, sample_db)
    assert runner.processed == 308 + 1  # the sample and the one event published outside the transaction
    assert not [r for r in results(settings, schemas) if r["event_id"].startswith("aborted-")]


@pytest.mark.apache_kafka_only  # tansu offers no KIP-848 and stalls cooperative-sticky joins
@pytest.mark.parametrize(
    ("protocol", "assignor", "incremental"),
    [("consumer", None, True), ("classic", "cooperative-sticky", True), ("classic", "roundrobin", False)],
    ids=["KIP-848", "cooperative-sticky", "eager roundrobin"],
)
def test_a_member_joining_and_leaving_under_load(settings, sample_db, protocol, assignor, incremental):
    """A member that keeps partitions through a join and a leave keeps working through both (incremental
    protocols); the eager one stops everyone. Prints the longest stall of the first member for the README."""
    kafka_settings = dict(settings.kafka)
    if protocol == "consumer":
        kafka_settings = {k: v for k, v in kafka_settings.items() if k not in kafka.CLASSIC_ONLY}
    else:
        kafka_settings["partition.assignment.strategy"] = assignor
    s = replace(settings, group_protocol=protocol, kafka=kafka_settings)
    conn = sqlite3.connect(sample_db)
    videos = [r[0] for r in conn.execute("SELECT video_id FROM videos")]
    conn.close()
    first = Member("scoring", s, sample_db, until_idle=None)
    revoked: list[tuple[float, int]] = []  # (when, how many) the first member gave up
    on_revoke = first.runner.revoked

    def recording(partitions) -> None:
        revoked.append((time.monotonic(), len(partitions)))
        on_revoke(partitions)

    first.runner.revoked = recording
    first.start()
    wait_for(lambda: len(first.runner.owned) == s.partitions, 30, "the first member to own every partition")

    publishing, samples = threading.Event(), []

    def publish() -> None:  # a steady stream: 20 events every 20 ms
        i = 0
        while not publishing.is_set():
            background_processing([{"video_id": videos[(i + k) % len(videos)]} for k in range(20)], [], sample_db, s)
            samples.append((time.monotonic(), len(first.runner.owned), first.runner.processed))
            i += 20
            time.sleep(0.02)

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        time.sleep(2)
        joined = time.monotonic()
        second = Member("scoring", s, sample_db, until_idle=None).start()
        join_all([first, second], s.partitions)
        time.sleep(2)
        left = time.monotonic()
        second.runner.stop()
        second.join()
        wait_for(lambda: len(first.runner.owned) == s.partitions, 30, "the first member to take everything back")
        time.sleep(2)
    finally:
        publishing.set()
        publisher.join()
    first.runner.stop()
    first.join()

    def stall(start: float, end: float) -> tuple[float, int]:
        """The longest time the first member processed nothing, and the most partitions it gave up at once."""
        window = [(t, owned, done) for t, owned, done in samples if start <= t <= end]
        longest, since = 0.0, window[0][0]
        for (_t0, _o0, done0), (t1, _o1, done1) in itertools.pairwise(window):
            if done1 > done0:
                since = t1
            longest = max(longest, t1 - since)
        return longest, max((n for t, n in revoked if start <= t <= end), default=0)

    join_stall, join_revoked = stall(joined, left)
    leave_stall, leave_revoked = stall(left, samples[-1][0])
    print(f"\n{protocol}/{assignor}: stall of the member that stays: join {join_stall:.2f}, leave {leave_stall:.2f} s")
    if incremental:  # it gives up only what moves to the newcomer, and nothing when the newcomer leaves
        assert 0 < join_revoked < s.partitions and leave_revoked == 0
    else:  # eager: everything it owns revoked, at the join (all 6) and at the leave (its 3)
        assert join_revoked == s.partitions and leave_revoked == s.partitions // 2
