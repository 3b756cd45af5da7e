"""What was published, one record shared by the hook and ``vvv publish``: neither sends what the other sent.

It lives in the outbox folder (``cron.db.outbox/published.db``), never in the cron database,
whose write lock the cron holds while it calls the hook. A new video's event is known by a
fingerprint of what the event says (region, title, thumbnail, counts): the same snapshot, whether
the hook was handed it or ``vvv publish`` found it, has the same fingerprint. Stale checks are
known by when they were last published.
"""

from __future__ import annotations

import contextlib
import hashlib
import operator
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from vvv_core.db import UNIX_EPOCH_JULIAN_DAY

BUSY_TIMEOUT_S = 10.0
DDL = """
CREATE TABLE IF NOT EXISTS new_video (
    video_id TEXT PRIMARY KEY,
    fingerprint BLOB NOT NULL,
    published_at REAL NOT NULL  -- julianday
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stale_check (
    video_id TEXT PRIMARY KEY,
    published_at REAL NOT NULL
) WITHOUT ROWID;"""
_content = operator.itemgetter("video_id", "region", "title", "thumbnail_url", "view_count", "likes", "comments")


def fingerprint(record: dict[str, Any]) -> bytes:
    """Of a VideoEvent record: what it says about the video, not when or under which id it was sent."""
    return hashlib.blake2b(repr(_content(record)).encode(), digest_size=8).digest()


class PublishedRecord:
    def __init__(self, folder: Path) -> None:
        self.path = folder / "published.db"

    @contextlib.contextmanager
    def _open(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(DDL)
            yield conn
        finally:
            conn.close()

    def note(self, new: Iterable[tuple[str, bytes]], stale: Iterable[str]) -> None:
        """Record events that were delivered or kept in the outbox (so they will be)."""
        new, stale = list(new), list(stale)
        if not new and not stale:
            return
        now = time.time() / 86400 + UNIX_EPOCH_JULIAN_DAY
        with self._open() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR REPLACE INTO new_video VALUES (?, ?, ?)", [(v, f, now) for v, f in new])
            conn.executemany("INSERT OR REPLACE INTO stale_check VALUES (?, ?)", [(v, now) for v in stale])
            conn.execute("COMMIT")

    def unpublished(self, new: dict[str, bytes]) -> set[str]:
        """Of {video_id: fingerprint}, the videos whose event with this content was not published yet."""
        if not self.path.exists():
            return set(new)
        with self._open() as conn:
            known = dict(conn.execute("SELECT video_id, fingerprint FROM new_video"))
        return {video_id for video_id, fp in new.items() if known.get(video_id) != fp}

    def stale_published_within(self, days: float) -> set[str]:
        """Videos whose stale check was published less than ``days`` ago."""
        if not self.path.exists():
            return set()
        with self._open() as conn:
            rows = conn.execute("SELECT video_id FROM stale_check WHERE published_at >= julianday('now') - ?", (days,))
            return {row[0] for row in rows}
