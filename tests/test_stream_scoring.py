"""Scoring from the stream on a broker, on the real trending data: every snapshot published in the order the
cron fetched it, scored with no database, equal to database mode for every video; under exactly-once, a crash
between the state write and the commit, at several points, never leaves a store ahead of what was committed."""

from __future__ import annotations

import itertools
import socket
import sqlite3
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import Producer
from conftest import Member, outbox_count, results, run_group, vvv, wait_for

from vvv_core import db, kafka
from vvv_core.config import Settings
from vvv_core.domain.scoring import Snapshot, score
from vvv_core.events import now_ms
from vvv_core.groups.scoring import ScoringGroup, encode_state
from vvv_core.hook import background_processing, flush_outbox, publish_new
from vvv_core.kafka import read_topic
from vvv_core.runtime import ConsumerStopped
from vvv_core.runtime.backends.kafka import KafkaBackend
from vvv_core.runtime.state import State
from vvv_core.runtime.state.store import PartitionStore

SNAPSHOTS = 1068  # in the sample: 308 videos


def publish_every_snapshot(db_path: str, settings: Settings) -> int:
    """Each snapshot of the cron database through the hook, in the order the cron fetched them (one call per
    fetch time, as the cron would call it), each with its counts and its time as the cron wrote it."""
    conn = sqlite3.connect(db_path)
    rows = conn.execute(
        "SELECT s.video_id, s.region, v.title, v.thumbnail_url, s.view_count, s.likes, s.comments, s.fetched_at"
        " FROM video_snapshots AS s JOIN videos AS v USING (video_id) ORDER BY julianday(s.fetched_at), s.rowid"
    ).fetchall()
    conn.close()
    calls: dict[str, list[dict]] = defaultdict(list)
    names = ("video_id", "region", "title", "thumbnail_url", "view_count", "likes", "comments", "fetched_at")
    for row in rows:
        calls[row[-1]].append(dict(zip(names, row, strict=True)))
    for items in calls.values():
        report = background_processing(items, [], db_path, settings)
        assert report.ok and report.delivered == len(items), report
    return len(rows)


def publish_all(db_path: str, settings: Settings) -> None:
    """`vvv publish`, and the outbox flushed until empty (a first call on Apache Kafka creates the topics and may
    keep its events for the next one)."""
    assert not publish_new(db_path, settings).rejected
    while outbox_count(db_path):
        assert flush_outbox(db_path, settings).error is None or outbox_count(db_path)


def database_scores(db_path: str, settings: Settings) -> dict[str, dict]:
    """What direct mode scores each video from the database (its newest two snapshots)."""
    group = ScoringGroup(settings, db.connect(db_path))
    group.prepare()
    ids = [r[0] for r in group.conn.execute("SELECT video_id FROM videos")]
    history = group._history(set(ids))
    group.conn.close()
    return {video_id: score(history.get(video_id, ())).detail() for video_id in ids}


def stream_scores(settings: Settings, schemas) -> dict[str, dict]:
    """Each video's last result on the results topic (read_committed): what the sink stores last."""
    return {r["video_id"]: r["detail"] for r in results(settings, schemas)}


def stream(settings: Settings, state_dir: Path) -> Settings:
    return replace(settings, state_dir=str(state_dir))


def test_stream_mode_scores_equal_database_mode_on_the_real_data(settings, schemas, sample_db, tmp_path):
    assert publish_every_snapshot(sample_db, settings) == SNAPSHOTS
    runner = run_group("scoring", stream(settings, tmp_path / "host1"), None)
    assert runner.processed == SNAPSHOTS
    assert stream_scores(settings, schemas) == database_scores(sample_db, settings)
    run_group("sink", settings, sample_db)  # the scores into the cron database, through the same apply
    expected = {v: d["score"] for v, d in database_scores(sample_db, settings).items() if d["reason"] is None}
    conn = sqlite3.connect(sample_db)
    stored = dict(conn.execute("SELECT video_id, virality_score FROM videos WHERE virality_score IS NOT NULL"))
    conn.close()
    assert stored == expected and len(stored) == 280
    # The table for downstream services: each video's latest state, as the database holds it
    table = {
        m.key().decode(): schemas.decode(m.value(), "VideoState") for m in read_topic(settings, settings.table_topic)
    }
    assert {v: t["score"] for v, t in table.items() if t["score"] is not None} == expected
    assert {t["label"] for t in table.values()} <= {"VIRAL", "TRENDING", "NORMAL", None} and len(table) == 308
    # Another host, with no store: restored from the changelog, it scores the next snapshots as the database does
    fresh = Member("scoring", stream(settings, tmp_path / "host2"), None, until_idle=None).start()
    wait_for(lambda: len(fresh.runner.owned) == settings.partitions and not fresh.runner.state.restoring, 60, "restore")
    restored = {}
    for tp, store in fresh.runner.state.stores.items():
        restored[tp[1]] = store.items()
    fresh.runner.stop()
    fresh.join()
    kept = {k: v for partition in restored.values() for k, v in partition.items()}
    original = {}
    for path in (tmp_path / "host1" / settings.group_id("scoring")).glob("*.lmdb"):
        store = PartitionStore(path)
        original.update(store.items())
        store.close()
    assert kept == original and len(kept) == 308


def store_rows(state_dir: Path, settings: Settings) -> dict[str, tuple[bytes, int]]:
    """Every key of every partition store on a "host": its value and its store's changelog position."""
    found = {}
    for path in (state_dir / settings.group_id("scoring")).glob("*.lmdb"):
        store = PartitionStore(path)
        found.update({k: (v, store.position) for k, v in store.items().items()})
        store.close()
    return found


@pytest.mark.apache_kafka_only  # tansu shows aborted records to read_committed readers
@pytest.mark.parametrize(
    "point", ["before the offsets", "before the commit", "after the commit"], ids=["offsets", "commit", "after"]
)
def test_a_crash_between_the_state_write_and_the_commit_never_leaves_a_store_ahead(
    settings, schemas, sample_db, tmp_path, monkeypatch, point
):
    """The member dies at ``point`` of its first transaction (its changelog records and results written). Then
    every value in its stores is one the changelog holds committed, before the store's position; a member
    started again on the same host restores, finishes, and a read_committed reader sees each result once,
    each video's last equal to database mode's."""
    eos = replace(settings, exactly_once=True)
    publish_every_snapshot(sample_db, eos)
    host = tmp_path / "host"
    crashed = []

    def crash(original):
        def dying(self, *args):
            if not crashed:
                crashed.append(point)
                self._producer.flush(10)
                if point == "after the commit":
                    original(self, *args)
                raise ConsumerStopped(f"died {point}")
            return original(self, *args)

        return dying

    if point in ("before the offsets", "before the commit"):
        step = "send_offsets_to_transaction" if point == "before the offsets" else "commit_transaction"
        monkeypatch.setattr(KafkaBackend, step, crash(getattr(KafkaBackend, step)))
    else:  # committed, and the member dies before its stores are written
        save = State.save

        def dying_save(self, changes, positions):
            if not crashed:
                crashed.append(point)
                raise ConsumerStopped("died after the commit")
            return save(self, changes, positions)

        monkeypatch.setattr(State, "save", dying_save)
    with pytest.raises(ConsumerStopped):
        run_group("scoring", stream(eos, host), None)
    assert crashed
    committed_values = defaultdict(list)  # key -> [(offset, value)], read_committed: waits out the open transaction
    for m in read_topic(eos, eos.changelog_topic("scoring"), timeout=60):
        committed_values[m.key().decode()].append((m.offset(), m.value()))
    for key, (value, position) in store_rows(host, eos).items():
        assert any(v == value and o < position for o, v in committed_values[key]), f"{key}: ahead of the commit"
    monkeypatch.undo()
    run_group("scoring", stream(eos, host), None)  # restores what its stores lack, redoes what was not committed
    latest = {m.key().decode(): m.value() for m in read_topic(eos, eos.changelog_topic("scoring"))}
    assert {key: value for key, (value, _position) in store_rows(host, eos).items()} == latest  # caught up
    out = results(eos, schemas)
    assert len(out) == len({r["event_id"] for r in out}) == SNAPSHOTS  # each once
    assert stream_scores(eos, schemas) == database_scores(sample_db, eos)
    assert kafka.committed_offsets(eos, eos.group_id("scoring"), eos.videos_topic) == {
        p: high for p, (_low, high) in kafka.watermarks(eos, eos.videos_topic).items() if high
    }


def one_key_per_partition(partitions: int) -> list[str]:
    """Video ids the producers' partitioner (murmur2, as the JVM's clients) puts on each partition, one each."""
    keys: dict[int, str] = {}
    for n in itertools.count():
        keys.setdefault(kafka.java_partition(f"roll{n:07d}".encode(), partitions), f"roll{n:07d}")
        if len(keys) == partitions:
            return [keys[p] for p in range(partitions)]
    raise AssertionError


def compacted(settings: Settings, topic: str) -> bool:
    """Whether every partition of ``topic`` has lost records to compaction (gaps between its offsets)."""
    offsets = defaultdict(list)
    for m in read_topic(settings, topic):
        offsets[m.partition()].append(m.offset())
    return len(offsets) == settings.partitions and all(o[-1] + 1 > len(o) for o in offsets.values())


@pytest.mark.apache_kafka_only  # tansu does not compact
def test_a_restore_from_the_compacted_changelog_gives_the_same_state_and_scores(settings, schemas, sample_db, tmp_path):
    changelog = settings.changelog_topic("scoring")
    kafka.ensure_topics(  # made ahead of the members, so that its cleaner runs while the test watches
        kafka.admin(settings),
        settings,
        [changelog],
        config={"cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01"},
    )
    publish_every_snapshot(sample_db, settings)
    first = Member("scoring", stream(settings, tmp_path / "host1"), None, until_idle=None).start()
    rolls = one_key_per_partition(settings.partitions)
    hour = 0
    while not compacted(settings, changelog):  # each new change rolls a segment (segment.ms): the cleaner's turn
        hour += 1
        assert hour < 60, "the changelog was never compacted"
        at = now_ms() - (60 - hour) * 60_000  # a minute apart, all in the past
        items = [{"video_id": v, "view_count": hour, "fetched_at": at} for v in rolls]
        assert background_processing(items, [], sample_db, settings).ok
        time.sleep(2)
    first.runner.stop()
    first.join()
    before = store_rows(tmp_path / "host1", settings)
    second = Member("scoring", stream(settings, tmp_path / "host2"), None, until_idle=None).start()
    wait_for(lambda: len(second.runner.owned) == settings.partitions and not second.runner.state.restoring, 60, "it")
    second.runner.stop()
    second.join()
    assert {k: v for k, (v, _p) in store_rows(tmp_path / "host2", settings).items()} == {
        k: v for k, (v, _p) in before.items()
    }
    # The same scores: each video's newest snapshot again (a repeat, which changes no state) scored by host 2
    conn = sqlite3.connect(sample_db)
    newest = conn.execute(
        "SELECT s.video_id, s.region, s.view_count, s.likes, s.comments, s.fetched_at FROM video_snapshots AS s"
        " WHERE s.rowid = (SELECT rowid FROM video_snapshots WHERE video_id = s.video_id"
        " ORDER BY julianday(fetched_at) DESC, rowid DESC LIMIT 1)"
    ).fetchall()
    conn.close()
    names = ("video_id", "region", "view_count", "likes", "comments", "fetched_at")
    start = {p: high for p, (_low, high) in kafka.watermarks(settings, settings.results_topic).items()}
    background_processing([dict(zip(names, row, strict=True)) for row in newest], [], sample_db, settings)
    run_group("scoring", stream(settings, tmp_path / "host2"), None)
    since = read_topic(settings, settings.results_topic, start=start)
    again = {r["video_id"]: r["detail"] for r in (schemas.decode(m.value(), "Result") for m in since)}
    assert again == database_scores(sample_db, settings)


def test_seeding_the_changelog_switches_a_running_installation_to_stream_mode_losing_no_history(
    settings, schemas, sample_db, tmp_path
):
    """Direct mode ran (vvv publish, scoring with --db); `vvv state seed` writes each video's newest two snapshots
    to the changelog; then the cron fetches a new snapshot of every video, the hook announces it, and scoring runs
    on a host with no database and no store: each video's score is database mode's, history included."""
    publish_all(sample_db, settings)
    run_group("scoring", settings, sample_db)  # the running installation, in direct mode
    seeded = vvv(settings, "state", "seed", "--db", sample_db)
    assert seeded.returncode == 0, seeded.stderr
    assert "with the newest snapshots of 308 videos" in seeded.stdout
    conn = sqlite3.connect(sample_db)
    with conn:  # the cron's next fetch: every video a little later, with more views
        conn.execute(
            "INSERT INTO video_snapshots SELECT video_id, region, view_count * 2, likes, comments,"
            " strftime('%Y-%m-%d %H:%M:%S', julianday(fetched_at) + 1.0 / 24) FROM video_snapshots AS s"
            " WHERE s.rowid = (SELECT max(rowid) FROM video_snapshots WHERE video_id = s.video_id)"
        )
    conn.close()
    start = {p: high for p, (_low, high) in kafka.watermarks(settings, settings.results_topic).items()}
    publish_all(sample_db, settings)  # the new snapshots, with their counts and times
    run_group("scoring", stream(settings, tmp_path / "worker"), None)
    since = read_topic(settings, settings.results_topic, start=start)
    scored = {r["video_id"]: r["detail"] for r in (schemas.decode(m.value(), "Result") for m in since)}
    assert scored == database_scores(sample_db, settings) and len(scored) == 308


@pytest.mark.apache_kafka_only  # tansu has no open transactions to wait for
def test_a_restore_waits_for_a_transaction_open_on_its_changelog_and_status_shows_it(settings, schemas, tmp_path):
    """A transaction is open on one changelog partition (a member that died mid-commit): its records are past the
    last stable offset, so the restore cannot reach the high watermark; it waits (saying so in the metrics and
    `vvv status`) instead of finishing short or hanging on the marker, and finishes once the transaction ends."""
    from vvv_core import status
    from vvv_core.groups import GROUPS

    kafka.ensure_project_topics(kafka.admin(settings), settings, [], stateful=["scoring"])
    changelog = settings.changelog_topic("scoring")
    dead = Producer(kafka.producer_config(settings, **{"transactional.id": f"{settings.namespace}-dead"}))
    dead.init_transactions(10)
    dead.begin_transaction()
    kept = [Snapshot("PL", 100, 1, 0, now_ms() - 7_200_000)]
    dead.produce(changelog, encode_state(kept), b"stuckvideo1", partition=2)
    dead.flush(10)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    member = Member("scoring", replace(stream(settings, tmp_path), metrics_port=port), None, until_idle=None).start()
    wait_for(lambda: member.runner.state.restoring == {(settings.videos_topic, 2)}, 30, "the others restored, one not")
    time.sleep(2)
    assert member.runner.state.restoring == {(settings.videos_topic, 2)}  # still waiting, not finished short
    [scoring] = [g for g in status.group_status(settings, GROUPS) if g.group == "scoring"]
    assert scoring.restoring == (1, 1)
    dead.commit_transaction(10)
    wait_for(lambda: not member.runner.state.restoring, 30, "the restore, once the transaction ended")
    assert member.runner.state.get((settings.videos_topic, 2), {"stuckvideo1"}) == {"stuckvideo1": encode_state(kept)}
    member.runner.stop()
    member.join()
