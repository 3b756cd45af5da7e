"""What was published, one record shared by the hook and ``vvv publish``: neither sends what the other sent.

It lives in the outbox folder, never in the cron database, whose write lock the cron holds
while it calls the hook. A new video's event is known by a fingerprint of what the event says
(region, title, thumbnail, counts): the same snapshot, whether the hook was handed it or
``vvv publish`` found it, has the same fingerprint. Stale checks are known by when they were
last published.

The hook only appends to a journal (``published.log``, one write per call: 1 ms for 10,000
events, where a SQLite transaction took 30); readers fold the journal into ``published.db``
first, under an exclusive ``flock`` that appenders share. Losing the journal's tail to a crash
costs a repeated event at most, never a lost one: the record only suppresses repeats.

Both files are shared with the folder's group, as every file of the outbox (``vvv_core.spool``):
the hook appends as the cron's user, `vvv publish` folds as perhaps another.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import sqlite3
from collections.abc import Iterator
from itertools import chain, repeat
from pathlib import Path

from vvv_core import avro_codec
from vvv_core.db import julian_now
from vvv_core.spool import make_shared_dir, open_shared

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
CONTENT = ("video_id", "region", "title", "thumbnail_url", "view_count", "likes", "comments")
# What a new video's event says about it, as Avro binary from the compiled writer: one call for a batch, a tenth of
# what the values' repr cost (what versions before this one hashed: the hook's largest step then).
_CONTENT = avro_codec.writer(
    {
        "type": "record",
        "name": "Content",
        "fields": [
            {"name": "video_id", "type": "string"},
            *({"name": f, "type": ["null", "string"]} for f in CONTENT[1:4]),
            *({"name": f, "type": ["null", "long"]} for f in CONTENT[4:]),
        ],
    }
)
_hash = functools.partial(hashlib.blake2b, digest_size=8)


def fingerprints(new: dict[str, list]) -> list[bytes]:
    """Of each VideoEvent record given as columns (validated): a hash of what it says about the video, not when or
    under which id it was sent. Each step over the whole batch, with no Python call per record."""
    if not new:
        return []
    contents = _CONTENT.columns([new[f] for f in CONTENT], len(new["video_id"]))
    return list(map(hashlib.blake2b.digest, map(_hash, contents)))


def _older_fingerprint(new: dict[str, list], i: int) -> bytes:
    """The fingerprint versions before the Avro one recorded for record ``i``: the repr of its values, hashed."""
    return _hash(repr(tuple(new[f][i] for f in CONTENT)).encode()).digest()


class PublishedRecord:
    """The journal's lines: ``T <julian day>`` starts a call's entries, then ``N <fingerprint hex> <video id>``
    per new video and ``S <video id>`` per stale check (video ids never hold spaces or newlines)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "published.db"
        self.journal = folder / "published.log"

    def entry(self, new: dict[str, list], stale: dict[str, list]) -> Entry:
        """The journal entry for one call's VideoEvent and StaleCheckEvent records, as columns."""
        return Entry(self.journal, new, stale)

    def unpublished(self, new: dict[str, list]) -> set[str]:
        """Of VideoEvent records given as columns, the videos whose event with this content was not published yet.

        A video an older version recorded has the fingerprint it made, which is tried where the current one
        differs: upgrading sends no video again."""
        with self._folded() as conn:
            known = dict(conn.execute("SELECT video_id, fingerprint FROM new_video")) if conn else {}
        ids = new.get("video_id", [])
        changed = [i for i, fp in enumerate(fingerprints(new)) if known.get(ids[i]) != fp]
        return {ids[i] for i in changed if ids[i] not in known or known[ids[i]] != _older_fingerprint(new, i)}

    def stale_published_within(self, days: float) -> set[str]:
        """Videos whose stale check was published less than ``days`` ago."""
        with self._folded() as conn:
            if conn is None:
                return set()
            rows = conn.execute("SELECT video_id FROM stale_check WHERE published_at >= ?", (julian_now() - days,))
            return {row[0] for row in rows}

    @contextlib.contextmanager
    def _folded(self) -> Iterator[sqlite3.Connection | None]:
        """The record with the journal folded in (and emptied), or None if nothing was ever published."""
        if not self.journal.exists() and not self.path.exists():
            yield None
            return
        os.close(open_shared(self.path, os.O_RDWR))  # SQLite gives its -wal and -shm files the same mode
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(DDL)
            self._fold(conn)
            yield conn
        finally:
            conn.close()

    def _fold(self, conn: sqlite3.Connection) -> None:
        fd = open_shared(self.journal, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with open(fd, "rb", closefd=False) as f:
                text = f.read().decode()
            new: list[tuple[str, bytes, float]] = []
            stale: list[tuple[str, float]] = []
            at = 0.0
            for line in text.splitlines():
                match line.split(" "):
                    case ["T", day]:
                        at = float(day)
                    case ["N", fp, video_id] if len(fp) == 16:
                        new.append((video_id, bytes.fromhex(fp), at))
                    case ["S", video_id]:
                        stale.append((video_id, at))
                    # anything else is a line torn by a crash mid-write: dropped, at worst a repeat
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR REPLACE INTO new_video VALUES (?, ?, ?)", new)
            conn.executemany("INSERT OR REPLACE INTO stale_check VALUES (?, ?)", stale)
            conn.execute("COMMIT")
            os.ftruncate(fd, 0)  # after the commit: a crash in between folds the same lines again, harmlessly
        finally:
            os.close(fd)  # releases the lock


class Entry:
    """One call's lines for the journal: prepared while its events are in flight (``prepare``, the
    fingerprints' CPU time hidden behind the broker's), written once they are delivered or kept."""

    def __init__(self, journal: Path, new: dict[str, list], stale: dict[str, list]) -> None:
        self.journal, self.new, self.stale = journal, new, stale
        self._data: bytes | None = None

    def prepare(self) -> None:
        if self._data is None:
            fps, new_ids = map(bytes.hex, fingerprints(self.new)), self.new.get("video_id", ())
            new = chain.from_iterable(zip(repeat("N "), fps, repeat(" "), new_ids, repeat("\n")))  # no call per line
            stale = chain.from_iterable(zip(repeat("S "), self.stale.get("video_id", ()), repeat("\n")))
            # Led by a newline: a line an earlier crash left torn stays a line of its own, and is dropped.
            self._data = f"\nT {julian_now()!r}\n{''.join(new)}{''.join(stale)}".encode()

    def write(self) -> None:
        """Record the events as delivered or kept in the outbox (so they will be)."""
        if not (self.new.get("video_id") or self.stale.get("video_id")):
            return
        self.prepare()
        make_shared_dir(self.journal.parent)
        fd = open_shared(self.journal, os.O_WRONLY | os.O_APPEND)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # shared among appenders; a reader folding holds it exclusively
            os.write(fd, self._data)  # one O_APPEND write: never interleaved with another call's
        finally:
            os.close(fd)
