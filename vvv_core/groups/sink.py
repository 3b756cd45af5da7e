"""The sink: the one writer of results into the cron database, for members that run without it.

Members on other hosts (thumbnails, liveness, and scoring in stream mode) publish their results
only; the sink, on the cron's host, reads the results topic and applies each result with its group's own ``apply``
(one definition of storing a result, shared with direct mode). Its consumed offsets are stored
in the same SQLite transaction as the effects, and on assignment it skips what they say is
done: a crash at any instant neither loses nor repeats an effect, without Kafka transactions.
Results their member stored itself (direct mode, ``stored``) are not applied again. What orders
one video's results is its events' time (``event_at``): an older check arriving later changes nothing.

Every result is hostile until checked: ``events.result_event`` refuses the inconsistent and the absurd
when it is read; here, a result for a video the cron database does not know is refused too (a dead
letter saying so, to replay once the video exists), so no producer can grow the verdict tables with
made-up ids. That is looked up inside the write transaction: the cron may call the hook while its own
transaction adding the video is still open, and the sink's write waits for it.

It also keeps **the table**: for each result, the video's current score, thumbnail and liveness
verdicts as the database holds them once the batch is applied (read in the same transaction), as a
``VideoState`` record on the compacted table topic, keyed by video, in the same checkpoint: a service
starting today reads the latest record per video. A record is the whole state, so a repeat is harmless.
"""

from __future__ import annotations

import json
import sqlite3

from vvv_core import events
from vvv_core.domain.scoring import label
from vvv_core.events import ResultEvent
from vvv_core.groups.liveness import LivenessGroup
from vvv_core.groups.scoring import ScoringGroup
from vvv_core.groups.thumbnails import ThumbnailGroup
from vvv_core.registry import schema_store
from vvv_core.runtime import BatchExecutor, ConsumerGroup, Inbound, Outcome
from vvv_core.runtime.model import Partition, Rejected

APPLIERS = {group.name: group for group in (ScoringGroup, ThumbnailGroup, LivenessGroup)}
OFFSETS_DDL = """
CREATE TABLE IF NOT EXISTS vvv_sink_offsets (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,  -- every result before it is applied
    PRIMARY KEY (topic, partition)
)"""


class SinkGroup(ConsumerGroup):
    name = "sink"
    reads = "results"
    event_schema = "Result"
    detail_schema = "Result"  # publishes no results: only its dead letters leave it
    parse_events = staticmethod(events.result_events)
    publishes = False

    def prepare(self) -> None:
        for group in APPLIERS.values():
            group.create_tables(self.conn)
        self.conn.execute(OFFSETS_DDL)
        self._encode_state = schema_store(self.settings).encoder("VideoState", self.settings.table_topic)

    def executor(self) -> BatchExecutor:
        return BatchExecutor(self._judge)

    @staticmethod
    def _judge(items: list[Inbound]) -> list[Outcome]:
        return [Outcome(i, detail={"status": "skipped" if i.event.stored else "applied"}) for i in items]

    def store(self, conn: sqlite3.Connection, outcomes: list[Outcome]) -> None:
        results: list[ResultEvent] = [o.inbound.event for o in outcomes]
        if unknown := _unknown_videos(conn, [r.video_id for r in results if not r.stored]):
            raise Rejected(
                [
                    (o, f"video {r.video_id} is not in the cron database")
                    for o, r in zip(outcomes, results, strict=True)
                    if r.video_id in unknown and not r.stored
                ]
            )
        # A result carries the four fields of an Effect (video, detail, event time and id): applied as one.
        applied = [r for r in results if not r.stored]
        groups = {r.group for r in applied}
        for group in groups:
            APPLIERS[group].apply(conn, applied if len(groups) == 1 else [r for r in applied if r.group == group])
        self._table(conn, outcomes, results)
        positions = {(o.inbound.topic, o.inbound.partition): o.inbound.offset + 1 for o in outcomes}  # in order
        conn.executemany(
            "INSERT INTO vvv_sink_offsets (topic, partition, next_offset) VALUES (?, ?, ?)"
            " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
            [(t, p, o) for (t, p), o in positions.items()],
        )

    def _table(self, conn: sqlite3.Connection, outcomes: list[Outcome], results: list[ResultEvent]) -> None:
        """Each video's current state, read in the batch's transaction, encoded in one call, onto the last
        outcome of the video."""
        last = dict(zip((r.video_id for r in results), outcomes, strict=True))
        rows = conn.execute(
            """SELECT wanted.value, v.virality_score, t.status, l.status FROM json_each(?) AS wanted
               JOIN videos AS v ON v.video_id = wanted.value  -- a made-up video gets no record
               LEFT JOIN thumbnail_checks AS t ON t.video_id = wanted.value
               LEFT JOIN video_liveness AS l ON l.video_id = wanted.value""",
            (json.dumps(list(last)),),
        ).fetchall()
        if not rows:
            return
        video_ids, scores, thumbnails, liveness = map(list, zip(*rows, strict=True))
        labels = [None if score is None else label(score) for score in scores]
        states = self._encode_state.columns(
            [video_ids, scores, labels, thumbnails, liveness, events.now_ms()], len(rows)
        )  # video_id, score, label, thumbnail, liveness, updated_at: one clock reading for the batch
        for video_id, state in zip(video_ids, states, strict=True):
            last[video_id].detail["table"] = state

    def messages(self, outcomes: list[Outcome]) -> tuple[str, list[bytes | None]]:
        return self.settings.table_topic, [o.detail.get("table") for o in outcomes]

    def start_offsets(self, partitions: list[Partition]) -> dict[Partition, int]:
        rows = self.conn.execute("SELECT topic, partition, next_offset FROM vvv_sink_offsets").fetchall()
        return {(t, p): o for t, p, o in rows if (t, p) in set(partitions)}


def _unknown_videos(conn: sqlite3.Connection, video_ids: list[str]) -> set[str]:
    """The videos the cron database has no row for (their results are replayed once it has)."""
    sql = "SELECT value FROM json_each(?) WHERE NOT EXISTS (SELECT 1 FROM videos WHERE video_id = value)"
    return {video_id for (video_id,) in conn.execute(sql, (json.dumps(video_ids),))}
