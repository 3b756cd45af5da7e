"""One partition's local store: a SQLite file of key -> value, and how far into the changelog it is.

SQLite was chosen by measurement (``bench/store.py``, the README's state-store section): it is built
in, a batch's rows and the changelog position they reached go in one transaction (so the two never
disagree, whatever the crash), and it was within a few percent of lmdb and rocksdict at this job's
size. ``synchronous=NORMAL`` in WAL mode: a power cut may lose the last transactions, never corrupt
the file, and a store that lost them is only behind, which a restore catches up.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS position (one INTEGER PRIMARY KEY CHECK (one = 1), next_offset INTEGER NOT NULL);
"""


class StoreDamaged(Exception):
    """The file is not a store this code can trust: it is wiped and restored from the changelog's start."""


class PartitionStore:
    """``position``: the changelog offset the store holds everything before (0: nothing yet)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
            row = self._conn.execute("SELECT next_offset FROM position").fetchone()
            if self._conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise StoreDamaged(f"{path} fails SQLite's check")
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreDamaged(f"{path}: {exc}") from None
        self.position = row[0] if row else 0

    def get(self, keys: Iterable[str]) -> dict[str, bytes]:
        keys = list(keys)
        found: dict[str, bytes] = {}
        for start in range(0, len(keys), 500):  # within SQLite's limit on parameters
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(self._conn.execute(f"SELECT key, value FROM state WHERE key IN ({marks})", chunk))
        return found

    def write(self, rows: Iterable[tuple[str, bytes]], position: int) -> None:
        """``rows`` and the changelog position they reached, in one transaction."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", rows)
            self._conn.execute("INSERT OR REPLACE INTO position (one, next_offset) VALUES (1, ?)", (position,))
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        self.position = position

    def __len__(self) -> int:
        return self._conn.execute("SELECT count(*) FROM state").fetchone()[0]

    def items(self) -> dict[str, bytes]:
        return dict(self._conn.execute("SELECT key, value FROM state"))

    def close(self) -> None:
        self._conn.close()

    @staticmethod
    def wipe(path: Path) -> None:
        for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
