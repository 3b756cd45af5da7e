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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from vvv_core.errors import Fatal

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0  # how long one statement waits for another process's write lock
LOCKED_BACKOFF_MAX = 10.0  # seconds between whole attempts while the lock stays taken
CRON_TABLES = ("videos", "video_snapshots")
T = TypeVar("T")
UNIX_EPOCH_JULIAN_DAY = 2440587.5  # julianday() of 1970-01-01T00:00:00Z


def julian_now() -> float:
    """Now as SQLite's ``julianday()``, from Python's clock: one clock for the whole process (SQLite's own
    ``'now'`` reads the C library's, which a test moving the clock cannot move)."""
    return time.time() / 86_400 + UNIX_EPOCH_JULIAN_DAY


def epoch_ms(column: str) -> str:
    """SQL for a timestamp column as milliseconds since the epoch, whatever format ``julianday()`` reads in it:
    the one conversion, so that a snapshot's time is the same number in every mode."""
    return f"CAST(round((julianday({column}) - {UNIX_EPOCH_JULIAN_DAY}) * 86400000) AS INTEGER)"


class DatabaseError(Fatal):
    """The database cannot be used as it is; the message says what to do."""


def connect(path: str | os.PathLike[str], stopping: Callable[[], bool] = lambda: False) -> sqlite3.Connection:
    """Open the cron's existing database for reading and writing, in WAL mode, or raise DatabaseError.

    A file without the cron's tables (an empty file, another program's database) is refused
    rather than written into. While the cron holds a lock, this waits (see ``wait_out_lock``).
    """
    path = Path(path)
    if not path.is_file():
        raise DatabaseError(
            f"database {path} does not exist (the cron pipeline creates it; `vvv sample --db {path}` builds a sample)"
        )
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise DatabaseError(f"database {path} is read-only: the consumers must write results to it")
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        wait_out_lock(lambda: _check_and_switch_to_wal(conn), "opening the database", stopping)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise DatabaseError(f"database {path} cannot be used: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def _check_and_switch_to_wal(conn: sqlite3.Connection) -> None:
    for table in CRON_TABLES:  # before anything is written: a foreign file stays untouched
        require_table(conn, table)
    conn.execute("PRAGMA journal_mode=WAL")  # readers never block the cron's writer, nor it them


def _locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def wait_out_lock(work: Callable[[], T], what: str, stopping: Callable[[], bool] = lambda: False) -> T:
    """``work()``, attempted again for as long as another process keeps the database locked.

    Each attempt itself waits ``BUSY_TIMEOUT_S`` for the lock; every failed one is logged, so a
    long wait is visible, and a lock delays work but never loses it. ``stopping()`` true ends
    the wait with DatabaseError (what was not written is processed again on restart).
    """
    attempt = 0
    while True:
        try:
            return work()
        except sqlite3.OperationalError as exc:
            if not _locked(exc):
                raise
            attempt += 1
            if stopping():
                raise DatabaseError(f"stopped while waiting for the database lock ({what})") from None
            log.warning("database is locked by another process (%s): still waiting, attempt %d", what, attempt)
            time.sleep(min(2.0**attempt, LOCKED_BACKOFF_MAX))


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


def write_with_retry(conn: sqlite3.Connection, work, *args, stopping: Callable[[], bool] = lambda: False):
    """Run ``work(conn, *args)`` in one transaction, attempted again while the database stays locked."""

    def attempt():
        with transaction(conn):
            return work(conn, *args)

    return wait_out_lock(attempt, "writing results", stopping)


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
