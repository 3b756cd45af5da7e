"""The sink: the one writer of results into the cron database, for members that run without it.

Members on other hosts (thumbnails, liveness, and scoring in stream mode) publish their results
only; the sink, on the cron's host, reads the results topic and applies each result with its group's own ``apply``
(one definition of storing a result, shared with direct mode). Its consumed offsets are stored
in the same SQLite transaction as the effects, and on assignment it skips what they say is
done: a crash at any instant neither loses nor repeats an effect, without Kafka transactions.
Results their member stored itself (direct mode, ``stored``) are not applied again. What orders
one video's results is its events' time (``event_at``): an older check arriving later changes nothing.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict

from vvv_core import events
from vvv_core.groups.liveness import LivenessGroup
from vvv_core.groups.scoring import ScoringGroup
from vvv_core.groups.thumbnails import ThumbnailGroup
from vvv_core.runtime import BatchExecutor, ConsumerGroup, Inbound, Outcome
from vvv_core.runtime.model import Effect, Partition

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
    parse_event = staticmethod(events.result_event)
    publishes = False

    def prepare(self) -> None:
        for group in APPLIERS.values():
            group.create_tables(self.conn)
        self.conn.execute(OFFSETS_DDL)

    def executor(self) -> BatchExecutor:
        return BatchExecutor(self._judge)

    @staticmethod
    def _judge(items: list[Inbound]) -> list[Outcome]:
        return [Outcome(i, detail={"status": "skipped" if i.event.stored else "applied"}) for i in items]

    def store(self, conn: sqlite3.Connection, outcomes: list[Outcome]) -> None:
        effects: dict[str, list[Effect]] = defaultdict(list)
        positions: dict[Partition, int] = {}
        for outcome in outcomes:
            item, result = outcome.inbound, outcome.inbound.event
            if not result.stored and result.group in APPLIERS:
                effects[result.group].append(Effect(result.video_id, result.detail, result.event_at, result.event_id))
            positions[(item.topic, item.partition)] = item.offset + 1
        for group, applied in effects.items():
            APPLIERS[group].apply(conn, applied)
        conn.executemany(
            "INSERT INTO vvv_sink_offsets (topic, partition, next_offset) VALUES (?, ?, ?)"
            " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
            [(t, p, o) for (t, p), o in positions.items()],
        )

    def start_offsets(self, partitions: list[Partition]) -> dict[Partition, int]:
        rows = self.conn.execute("SELECT topic, partition, next_offset FROM vvv_sink_offsets").fetchall()
        return {(t, p): o for t, p, o in rows if (t, p) in set(partitions)}
