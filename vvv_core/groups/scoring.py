"""Scoring group: re-score each video from its newest snapshots into ``videos.virality_score``.

Two modes, one formula (``domain/scoring.py``):

- **direct** (``--db``): each batch is one history query on the cron database and one write
  transaction, so the database work does not grow with the number of round trips;
- **stream** (no database): each event carries the snapshot it announces, and the group keeps each
  video's newest two in its state store (``runtime/state/``), restored from the changelog on
  assignment; its results are stored by the sink with the same ``apply``.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from json.encoder import encode_basestring_ascii as quote

from confluent_kafka import Producer

from vvv_core import db, events, kafka
from vvv_core.config import Settings
from vvv_core.domain.scoring import HISTORY_DEPTH, Snapshot, remember, score
from vvv_core.runtime import BatchExecutor, EffectGroup, Inbound, Outcome
from vvv_core.runtime.model import Effect, Partition


def encode_state(kept: list[Snapshot]) -> bytes:
    """A video's state in the store and the changelog: its newest snapshots, newest first, as JSON
    ``[[fetched_at_ms, view_count, likes, comments, region], ...]`` (small, and readable with any tool).
    Written directly, the bytes ``json.dumps`` writes (a test holds it to them) at a fifth of its cost."""
    rows = (f"[{s.fetched_at_ms}, {s.view_count}, {s.likes}, {s.comments}, {_json(s.region)}]" for s in kept)
    return f"[{', '.join(rows)}]".encode()


def _json(text: str | None) -> str:
    return "null" if text is None else quote(text)


def decode_state(value: bytes) -> list[Snapshot]:
    return [Snapshot(region, views, likes, comments, at) for at, views, likes, comments, region in json.loads(value)]


def seed_changelog(conn: sqlite3.Connection, settings: Settings) -> int:
    """The one-time switch to stream mode (``vvv state seed``): each video's newest two snapshots from the cron
    database written to the changelog, keyed by video, so on the partition of its events (the same producers'
    partitioner, the same partition count). Members starting after it restore them, and go on from the offsets
    direct mode committed; an event already in a seeded state changes nothing. Returns the videos seeded."""
    kafka.ensure_project_topics(kafka.check_broker(settings), settings, [], stateful=[ScoringGroup.name])
    columns = db.columns(conn, "video_snapshots")
    c = {name: name if name in columns else "NULL" for name in ("region", "view_count", "likes", "comments")}
    rows = conn.execute(f"""
        SELECT video_id, region, view_count, likes, comments, at FROM (
            SELECT video_id, {c["region"]} AS region, {c["view_count"]} AS view_count, {c["likes"]} AS likes,
                   {c["comments"]} AS comments, {db.epoch_ms("fetched_at")} AS at,
                   row_number() OVER (PARTITION BY video_id ORDER BY julianday(fetched_at) DESC, rowid DESC) AS n
            FROM video_snapshots WHERE julianday(fetched_at) IS NOT NULL)
        WHERE n <= {HISTORY_DEPTH} ORDER BY video_id, n""")
    history: dict[str, list[Snapshot]] = defaultdict(list)
    for video_id, region, views, likes, comments, at in rows:
        history[video_id].append(Snapshot(region, views or 0, likes or 0, comments or 0, at))
    producer, refused = Producer(kafka.producer_config(settings)), []
    topic = settings.changelog_topic(ScoringGroup.name)
    for video_id, kept in history.items():
        while True:
            try:
                producer.produce(
                    topic, encode_state(kept), video_id.encode(), on_delivery=lambda e, _m: e and refused.append(e)
                )
                break
            except BufferError:  # the local queue is full: let the broker catch up
                producer.poll(0.1)
    if producer.flush(60) or refused:
        raise kafka.BrokerUnavailable(settings.bootstrap, f"{len(refused)} records refused, {len(producer)} unanswered")
    return len(history)


class ScoringGroup(EffectGroup):
    name = "scoring"
    reads = "videos"
    event_schema = "VideoEvent"
    detail_schema = "ScoreDetail"
    parse_events = staticmethod(events.video_events)
    needs_db = False  # without it: stream mode
    stateful = True

    @classmethod
    def create_tables(cls, conn: sqlite3.Connection) -> None:
        """The columns scores are stored in, by a member in direct mode or by the sink."""
        db.add_column(conn, "videos", "virality_score", "REAL")
        # What is behind a score, for ranking videos whose scores are equal (100 is common: it saturates)
        db.add_column(conn, "videos", "virality_velocity", "INTEGER")
        db.add_column(conn, "videos", "virality_engagement", "REAL")
        db.add_column(conn, "videos", "virality_event_at", "INTEGER")  # the source event of the stored score

    def prepare(self) -> None:
        if self.conn is None:
            return  # stream mode: the state store is the runtime's
        db.require_table(self.conn, "videos")
        db.require_table(self.conn, "video_snapshots")
        self.create_tables(self.conn)
        # Each video's newest snapshots straight from the index, however long its history: without
        # it every lookup scans all snapshots (the old design's 20x slowdown). julianday() orders
        # every timestamp format SQLite accepts; equal times fall back to rowid, the index's last key.
        self.conn.execute(
            "CREATE INDEX IF NOT EXISTS vvv_snapshots_by_video_time"
            " ON video_snapshots (video_id, julianday(fetched_at))"
        )
        present = db.columns(self.conn, "video_snapshots")
        # An older cron database may lack some columns: they count as unknown (region) or 0.
        self._columns = {c: f"s.{c}" if c in present else "NULL" for c in ("region", "view_count", "likes", "comments")}

    def executor(self) -> BatchExecutor:
        return BatchExecutor(self._score_batch if self.conn is not None else self._score_from_state)

    def _history(self, video_ids: set[str]) -> dict[str, list[Snapshot]]:
        c = self._columns
        rows = self.conn.execute(
            f"""
            SELECT s.video_id, {c["region"]}, {c["view_count"]}, {c["likes"]}, {c["comments"]},
                   {db.epoch_ms("s.fetched_at")}
            FROM json_each(?) AS wanted
            JOIN video_snapshots AS s ON s.rowid IN (
                SELECT rowid FROM video_snapshots
                WHERE video_id = wanted.value AND julianday(fetched_at) IS NOT NULL
                ORDER BY julianday(fetched_at) DESC, rowid DESC
                LIMIT {HISTORY_DEPTH})
            ORDER BY s.video_id, julianday(s.fetched_at) DESC, s.rowid DESC""",
            (json.dumps(list(video_ids)),),
        )
        history: dict[str, list[Snapshot]] = defaultdict(list)
        for video_id, region, views, likes, comments, fetched_at_ms in rows:
            history[video_id].append(Snapshot(region, views or 0, likes or 0, comments or 0, fetched_at_ms))
        return history

    def _score_batch(self, items: list[Inbound]) -> list[Outcome]:
        wanted = {item.event.video_id for item in items}
        history = self._history(wanted)
        details = {video_id: score(history.get(video_id, ())).detail() for video_id in wanted}  # one per video
        return [Outcome(item, detail=details[item.event.video_id]) for item in items]

    def _score_from_state(self, items: list[Inbound]) -> list[Outcome]:
        """Each event's snapshot into its video's state (a batch's reads in one query per partition), then the
        score of the newest two, as direct mode reads them from the database."""
        by_partition: dict[Partition, list[Inbound]] = defaultdict(list)
        for item in items:
            by_partition[(item.topic, item.partition)].append(item)
        outcomes = []
        for partition, batch in by_partition.items():
            stored = self.state.get(partition, {i.event.video_id for i in batch})
            kept = {video_id: decode_state(value) for video_id, value in stored.items()}
            changed = set()
            for item in batch:
                e = item.event
                snapshot = Snapshot(e.region, e.view_count or 0, e.likes or 0, e.comments or 0, e.snapshot_at)
                if (newest := remember(kept.get(e.video_id, ()), snapshot)) is not None:
                    kept[e.video_id] = newest
                    changed.add(e.video_id)
                outcomes.append(Outcome(item, detail=score(kept.get(e.video_id, ())).detail()))
            for video_id in changed:  # a video's state once a batch, as it is after the batch's last event
                self.state.put(partition, video_id, encode_state(kept[video_id]))
        return outcomes

    @classmethod
    def apply(cls, conn: sqlite3.Connection, effects: list[Effect]) -> None:
        """Each video's last score of the batch (``effects`` are in their events' order), unless the stored one
        came from a later event: a result arriving late (redone after a rebalance, or sent by a member cut off
        from the broker once its partitions had moved) never replaces a newer score. A result without a score
        (``reason`` set) leaves the stored one as it is."""
        latest = {
            e.video_id: (e.detail["score"], e.detail["velocity"], e.detail["engagement"], e.event_at, e.video_id)
            for e in effects
            if e.detail["reason"] is None
        }
        conn.executemany(
            "UPDATE videos SET virality_score = ?1, virality_velocity = ?2, virality_engagement = ?3,"
            " virality_event_at = ?4 WHERE video_id = ?5 AND coalesce(virality_event_at, 0) <= ?4",
            latest.values(),
        )
