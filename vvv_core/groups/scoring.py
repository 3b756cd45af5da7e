"""Scoring group: re-score each video from its snapshot history into ``videos.virality_score``.

The whole batch is one history query and one write transaction: the database work does not
grow with the number of round trips, and the cron's writer is kept waiting only briefly.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict

from vvv_core import db, events
from vvv_core.db import UNIX_EPOCH_JULIAN_DAY
from vvv_core.domain.scoring import Snapshot, score
from vvv_core.runtime import BatchExecutor, EffectGroup, Inbound, Outcome
from vvv_core.runtime.model import Effect

HISTORY_DEPTH = 2  # the formula reads the two newest snapshots only
MS_PER_DAY = 86_400_000


class ScoringGroup(EffectGroup):
    name = "scoring"
    reads = "videos"
    event_schema = "VideoEvent"
    detail_schema = "ScoreDetail"
    parse_event = staticmethod(events.video_event)

    def prepare(self) -> None:
        db.require_table(self.conn, "videos")
        db.require_table(self.conn, "video_snapshots")
        db.add_column(self.conn, "videos", "virality_score", "REAL")
        # What is behind a score, for ranking videos whose scores are equal (100 is common: it saturates)
        db.add_column(self.conn, "videos", "virality_velocity", "INTEGER")
        db.add_column(self.conn, "videos", "virality_engagement", "REAL")
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
        return BatchExecutor(self._score_batch)

    def _history(self, video_ids: set[str]) -> dict[str, list[Snapshot]]:
        c = self._columns
        rows = self.conn.execute(
            f"""
            SELECT s.video_id, {c["region"]}, {c["view_count"]}, {c["likes"]}, {c["comments"]},
                   CAST(round((julianday(s.fetched_at) - {UNIX_EPOCH_JULIAN_DAY}) * {MS_PER_DAY}) AS INTEGER)
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
        history = self._history({item.event.video_id for item in items})
        scores = {video_id: score(history.get(video_id, ())) for video_id in {i.event.video_id for i in items}}
        return [Outcome(item, detail=scores[item.event.video_id].detail()) for item in items]

    @classmethod
    def apply(cls, conn: sqlite3.Connection, effects: list[Effect]) -> None:
        conn.executemany(
            "UPDATE videos SET virality_score = ?, virality_velocity = ?, virality_engagement = ? WHERE video_id = ?",
            {
                (e.detail["score"], e.detail["velocity"], e.detail["engagement"], e.video_id)
                for e in effects
                if e.detail["reason"] is None
            },
        )
