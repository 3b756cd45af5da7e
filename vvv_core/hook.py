"""The cron pipeline's side: hand events to Kafka and return at once.

``background_processing`` is the drop-in for the old Celery dispatcher; ``publish_new`` is
``vvv publish``, which finds the work in the database itself. Neither raises into the cron.
The hook never touches the database (the cron may hold its write lock for seconds) and
returns within ``VVV_HOOK_TIMEOUT`` plus the time to write one spool file: what the broker
does not take in that time waits in the outbox beside the database (see ``vvv_core.outbox``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from vvv_core import db
from vvv_core.avro import SchemaStore
from vvv_core.config import ConfigError, Settings
from vvv_core.events import InvalidEvent, stale_record, video_record
from vvv_core.outbox import Message, OutboxPublisher, outbox_dir

log = logging.getLogger(__name__)

PUBLISHED_DDL = """
CREATE TABLE IF NOT EXISTS vvv_published (
    video_id TEXT PRIMARY KEY,
    snapshot_rowid INTEGER NOT NULL,  -- the newest snapshot when the video was last published
    published_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)"""

STALE_PUBLISHED_DDL = """
CREATE TABLE IF NOT EXISTS vvv_stale_published (
    video_id TEXT PRIMARY KEY,
    published_at REAL NOT NULL  -- julianday, to compare with the stale age
)"""


@dataclass
class PublishReport:
    delivered: int = 0
    queued: int = 0  # not delivered in time: kept in the outbox, nothing is lost
    rejected: dict[str, str] = field(default_factory=dict)  # item -> why it is not a valid event
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.rejected

    def __str__(self) -> str:
        text = f"delivered {self.delivered}, kept in outbox {self.queued}, rejected {len(self.rejected)}"
        return text + (f" ({self.error})" if self.error else "")


_schemas: SchemaStore | None = None
_publishers: dict[Settings, OutboxPublisher] = {}


def _publisher(settings: Settings) -> OutboxPublisher:
    if settings not in _publishers:
        _publishers[settings] = OutboxPublisher(settings)
    return _publishers[settings]


def _encoders() -> SchemaStore:
    global _schemas
    if _schemas is None:
        _schemas = SchemaStore()
    return _schemas


def build_messages(
    settings: Settings, new_videos: Iterable[dict[str, Any]], stale_ids: Iterable[str], report: PublishReport
) -> list[Message]:
    """Encoded messages for valid items; invalid ones are listed in ``report.rejected``."""
    store = _encoders()
    encode_video, encode_stale = store.encoder("VideoEvent"), store.encoder("StaleCheckEvent")
    messages = []
    for topic, items, make, encode in (
        (settings.videos_topic, new_videos, video_record, encode_video),
        (settings.stale_topic, stale_ids, stale_record, encode_stale),
    ):
        for item in items:
            try:
                record = make(item)
            except (InvalidEvent, AttributeError) as exc:
                report.rejected[repr(item)[:80]] = str(exc) if isinstance(exc, InvalidEvent) else "not a dict"
                continue
            messages.append(Message(topic, record["video_id"].encode(), encode(record)))
    return messages


def background_processing(
    new_videos: list[dict[str, Any]], stale_ids: list[str], db_path: str, settings: Settings | None = None
) -> PublishReport:
    """Publish one event per new video and one per stale id; return within the hook timeout.

    ``db_path`` is the cron database, beside which the outbox lives; the hook never opens it.
    Never raises: problems are logged and described in the returned report.
    """
    report = PublishReport()
    try:
        settings = settings or Settings.from_env()
        messages = build_messages(settings, new_videos, stale_ids, report)
        _deliver(settings, db_path, messages, report)
    except ConfigError as exc:
        log.error("hook: configuration error: %s", exc)
        report.error = f"configuration error: {exc}"
    except Exception as exc:  # the cron must go on whatever happens here
        log.exception("background_processing failed")
        report.error = f"{type(exc).__name__}: {exc}"
    for item, reason in report.rejected.items():
        log.error("hook: rejected %s: %s", item, reason)
    return report


def _deliver(settings: Settings, db_path: str, messages: list[Message], report: PublishReport) -> None:
    delivery = _publisher(settings).deliver(outbox_dir(db_path), messages, settings.hook_timeout)
    report.delivered += delivery.delivered
    report.queued += delivery.queued
    report.error = report.error or delivery.error


def flush_outbox(db_path: str, settings: Settings) -> PublishReport:
    """Deliver what waits in the outbox (``vvv outbox flush``)."""
    return background_processing([], [], db_path, settings)


def _select_new(conn: sqlite3.Connection) -> list[tuple[dict[str, Any], int]]:
    """Videos whose newest snapshot was not published yet, with that snapshot's rowid."""
    snap = db.columns(conn, "video_snapshots")
    vids = db.columns(conn, "videos")

    def col(table_cols: set[str], alias: str, name: str) -> str:
        return f"{alias}.{name}" if name in table_cols else "NULL"

    rows = conn.execute(f"""
        WITH newest AS (
            SELECT video_id, rowid AS snapshot_rowid, {col(snap, "s", "region")} AS region,
                   {col(snap, "s", "view_count")} AS view_count, {col(snap, "s", "likes")} AS likes,
                   {col(snap, "s", "comments")} AS comments,
                   row_number() OVER (PARTITION BY video_id ORDER BY julianday(fetched_at) DESC, rowid DESC) AS n
            FROM video_snapshots AS s)
        SELECT n.video_id, n.snapshot_rowid, coalesce(n.region, {col(vids, "v", "region")}),
               {col(vids, "v", "title")}, {col(vids, "v", "thumbnail_url")}, n.view_count, n.likes, n.comments
        FROM newest AS n
        LEFT JOIN videos AS v ON v.video_id = n.video_id
        LEFT JOIN vvv_published AS p ON p.video_id = n.video_id
        WHERE n.n = 1 AND p.snapshot_rowid IS NOT n.snapshot_rowid
        ORDER BY n.snapshot_rowid""").fetchall()
    names = ("video_id", "snapshot_rowid", "region", "title", "thumbnail_url", "view_count", "likes", "comments")
    return [(dict(zip(names, row, strict=True)), row[1]) for row in rows]


def _select_stale(conn: sqlite3.Connection, stale_hours: float) -> list[str]:
    """Videos whose newest snapshot is older than the stale age, not published in this age window."""
    window = stale_hours / 24.0
    rows = conn.execute(
        """
        SELECT s.video_id FROM video_snapshots AS s
        LEFT JOIN vvv_stale_published AS p ON p.video_id = s.video_id
        GROUP BY s.video_id
        HAVING max(julianday(s.fetched_at)) < julianday('now') - :window
           AND (max(p.published_at) IS NULL OR max(p.published_at) < julianday('now') - :window)
        ORDER BY s.video_id""",
        {"window": window},
    ).fetchall()
    return [row[0] for row in rows]


def publish_new(db_path: str, settings: Settings) -> PublishReport:
    """``vvv publish``: every video with an unpublished newest snapshot, and every stale video.

    A video is marked published once its event was delivered or kept in the outbox, so a
    rerun publishes nothing new and nothing is lost in between.
    """
    conn = db.connect(db_path)
    try:
        db.require_table(conn, "video_snapshots")
        db.require_table(conn, "videos")
        conn.execute(PUBLISHED_DDL)
        conn.execute(STALE_PUBLISHED_DDL)
        new = _select_new(conn)
        stale = _select_stale(conn, settings.stale_hours)
        report = PublishReport()
        messages = build_messages(settings, [item for item, _ in new], stale, report)
        log.info("publishing %d new videos and %d stale ones", len(new), len(stale))
        _deliver(settings, db_path, messages, report)
        with db.transaction(conn):
            conn.executemany(
                """INSERT INTO vvv_published (video_id, snapshot_rowid) VALUES (?, ?)
                   ON CONFLICT (video_id) DO UPDATE SET snapshot_rowid = excluded.snapshot_rowid,
                                                        published_at = excluded.published_at""",
                [(item["video_id"], rowid) for item, rowid in new],
            )
            conn.executemany(
                """INSERT INTO vvv_stale_published (video_id, published_at) VALUES (?, julianday('now'))
                   ON CONFLICT (video_id) DO UPDATE SET published_at = excluded.published_at""",
                [(video_id,) for video_id in stale],
            )
        return report
    finally:
        conn.close()
