"""The cron pipeline's SQLite file, shared with the cron and with every consumer process.

The cron owns ``videos`` and ``video_snapshots``; this project only adds its own tables,
columns and indexes, idempotently, and never deletes or rewrites cron rows.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0  # how long one statement waits for another process's write lock
LOCKED_RETRIES = 5  # whole-transaction retries after that, with backoff: a lock delays work, never loses it


class DatabaseError(RuntimeError):
    """The database cannot be used as it is; the message says what to do."""


def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open an existing database for reading and writing, in WAL mode, or raise DatabaseError."""
    path = Path(path)
    if not path.is_file():
        raise DatabaseError(f"database {path} does not exist (create it with the cron pipeline, or `vvv demo`)")
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise DatabaseError(f"database {path} is read-only: the consumers must write results to it")
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")  # readers never block the cron's writer, nor it them
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise DatabaseError(f"database {path} cannot be used: {exc}") from None
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction, taken with the write lock up front so it cannot deadlock midway."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def write_with_retry(conn: sqlite3.Connection, work, *args):
    """Run ``work(conn, *args)`` in a transaction, retrying it while the database stays locked."""
    for attempt in range(LOCKED_RETRIES + 1):
        try:
            with transaction(conn):
                return work(conn, *args)
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or attempt == LOCKED_RETRIES:
                raise
            log.warning("database is locked, retrying the batch (attempt %d of %d)", attempt + 1, LOCKED_RETRIES)
            time.sleep(min(2.0**attempt, 10.0))
    raise AssertionError("unreachable")


def columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def require_table(conn: sqlite3.Connection, table: str) -> None:
    if not columns(conn, table):
        raise DatabaseError(f"table {table} is missing: is this the cron pipeline's database?")


def add_column(conn: sqlite3.Connection, table: str, column: str, declaration: str) -> None:
    """Idempotent ``ALTER TABLE ADD COLUMN`` (SQLite has no IF NOT EXISTS for it)."""
    if column not in columns(conn, table):
        try:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        except sqlite3.OperationalError as exc:
            if "duplicate column" not in str(exc):  # else another process added it just now
                raise
