"""How results take effect in the cron database, by the one definition direct mode and the sink share
(each group's ``apply``): a video's verdict is replaced only by a later event's, a repeat of the same event
changes nothing, the sink never applies again what a member stored itself, and the sink's offsets commit
with its effects or not at all. Broker-free; each test is one a deliberate break must turn red.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import hours_ago

from vvv_core import db
from vvv_core.config import Settings
from vvv_core.events import ResultEvent
from vvv_core.groups.liveness import LivenessGroup
from vvv_core.groups.sink import SinkGroup
from vvv_core.groups.thumbnails import ThumbnailGroup
from vvv_core.runtime.model import Effect, Inbound, Outcome
from vvv_core.sample import CRON_SCHEMA

GROUPS = {"thumbnails": ThumbnailGroup, "liveness": LivenessGroup}
# One verdict of each group that differs from the other: what a replaced row would show.
STATUSES = {"thumbnails": ("valid", "broken"), "liveness": ("deleted", "alive")}
SETTINGS = Settings(namespace="t")
RESULTS = SETTINGS.results_topic


def detail(group: str, status: str) -> dict[str, Any]:
    if group == "thumbnails":
        return {"status": status, "width": 320, "height": 180, "http_status": 200, "reason": status, "attempts": 1}
    return {"status": status, "http_status": 200, "reason": status, "attempts": 1}


def cron(tmp_path: Path) -> sqlite3.Connection:
    path = tmp_path / "cron.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(CRON_SCHEMA)
        conn.execute("INSERT INTO videos (video_id) VALUES ('video000001')")  # the sink stores known videos' only
    conn = db.connect(path)
    SinkGroup(SETTINGS, conn).prepare()  # the verdict tables and the sink's offsets
    return conn


def status(conn: sqlite3.Connection, group: str, video_id: str = "video000001") -> str | None:
    row = conn.execute(f"SELECT status FROM {GROUPS[group].table} WHERE video_id = ?", (video_id,)).fetchone()
    return row and row[0]


def apply(conn: sqlite3.Connection, group: str, status: str, event_at: int, event_id: str) -> None:
    with db.transaction(conn):
        GROUPS[group].apply(conn, [Effect("video000001", detail(group, status), event_at, event_id)])


def result(offset: int, group: str, status: str, event_at: int, event_id: str, stored: bool = False) -> Outcome:
    """A result as the sink reads it from partition 0 of the results topic, at ``offset``."""
    event = ResultEvent(event_id, "video000001", group, event_at, stored, detail(group, status))
    return Outcome(Inbound(RESULTS, 0, offset, b"video000001", b"", None, event), detail={"status": "applied"})


@pytest.mark.parametrize("group", GROUPS)
def test_an_older_check_arriving_later_never_replaces_a_newer_verdict(tmp_path, group):
    newer, older = STATUSES[group]
    conn = cron(tmp_path)
    apply(conn, group, newer, event_at=2_000, event_id="e2")
    apply(conn, group, older, event_at=1_000, event_id="e1")
    assert status(conn, group) == newer


@pytest.mark.parametrize("group", GROUPS)
def test_a_repeated_result_of_the_same_event_changes_nothing(tmp_path, group):
    """Redone after a rebalance, the same event's check may answer otherwise: the first answer stands."""
    first, again = STATUSES[group]
    conn = cron(tmp_path)
    apply(conn, group, first, event_at=1_000, event_id="e1")
    apply(conn, group, again, event_at=1_000, event_id="e1")
    assert status(conn, group) == first
    apply(conn, group, again, event_at=1_000, event_id="e2")  # another event of the same instant does count
    assert status(conn, group) == again


def test_a_videos_liveness_says_since_when_it_is_dead_and_an_unknown_answer_changes_nothing(tmp_path):
    """``dead_since`` is when the video was first seen deleted or private, kept through later dead answers and
    cleared when it comes back; an ``unknown`` answer (the network failed) never replaces a known status."""
    conn = cron(tmp_path)

    def row() -> tuple[str, str | None]:
        return conn.execute("SELECT status, dead_since FROM video_liveness WHERE video_id = 'video000001'").fetchone()

    apply(conn, "liveness", "deleted", event_at=1_000, event_id="e1")
    assert row()[0] == "deleted" and row()[1] is not None
    first_seen = hours_ago(24)  # as if first seen dead a day ago
    with db.transaction(conn):
        conn.execute("UPDATE video_liveness SET dead_since = ?", (first_seen,))
    apply(conn, "liveness", "private", event_at=2_000, event_id="e2")
    assert row() == ("private", first_seen)
    apply(conn, "liveness", "unknown", event_at=3_000, event_id="e3")
    assert row() == ("private", first_seen)
    apply(conn, "liveness", "alive", event_at=4_000, event_id="e4")
    assert row() == ("alive", None)


def test_the_sink_never_applies_a_result_its_member_stored_itself(tmp_path):
    """A later event's result marked ``stored`` is the member's own business (direct mode): even where it
    would win by its time and id, the sink leaves the row alone; an unstored one it applies."""
    conn = cron(tmp_path)
    apply(conn, "thumbnails", "valid", event_at=1_000, event_id="e1")
    sink = SinkGroup(SETTINGS, conn)
    sink.prepare()
    with db.transaction(conn):
        sink.store(conn, [result(0, "thumbnails", "broken", event_at=2_000, event_id="e2", stored=True)])
    assert status(conn, "thumbnails") == "valid"
    with db.transaction(conn):
        sink.store(conn, [result(1, "thumbnails", "placeholder", event_at=3_000, event_id="e3")])
    assert status(conn, "thumbnails") == "placeholder"


class Crash(BaseException):
    """The process dying at one exact statement."""


class CrashingAt:
    """A connection that dies at the first statement naming ``table``, as a kill -9 would there."""

    def __init__(self, conn: sqlite3.Connection, table: str) -> None:
        self.conn, self.table = conn, table

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.table in sql:
            raise Crash(sql)
        return self.conn.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.table in sql:
            raise Crash(sql)
        return self.conn.executemany(sql, *args)


def test_the_sinks_effects_and_its_offsets_commit_together_or_not_at_all(tmp_path):
    conn = cron(tmp_path)
    sink = SinkGroup(SETTINGS, conn)
    sink.prepare()
    batch = [result(0, "thumbnails", "valid", 1_000, "e1"), result(1, "liveness", "deleted", 1_000, "e2")]
    with pytest.raises(Crash):
        db.write_with_retry(CrashingAt(conn, "vvv_sink_offsets"), sink.store, batch)
    other = sqlite3.connect(tmp_path / "cron.db")  # what survives the crash: the committed rows only
    assert other.execute("SELECT count(*) FROM thumbnail_checks").fetchone() == (0,)
    assert other.execute("SELECT count(*) FROM video_liveness").fetchone() == (0,)
    assert sink.start_offsets([(RESULTS, 0)]) == {}
    db.write_with_retry(conn, sink.store, batch)  # redone after the restart: all of it, once
    assert (status(conn, "thumbnails"), status(conn, "liveness")) == ("valid", "deleted")
    assert sink.start_offsets([(RESULTS, 0)]) == {(RESULTS, 0): 2}


def test_the_sink_finds_a_video_the_cron_adds_in_the_transaction_that_calls_the_hook(tmp_path):
    """The cron calls the hook inside its transaction adding the video: the result may reach the sink before that
    commits. The sink's lookup of known videos is inside its own write transaction, which waits for the cron's, so
    it finds the video and stores the result instead of dead-lettering it."""
    conn = cron(tmp_path)
    sink = SinkGroup(SETTINGS, conn)
    sink.prepare()
    the_cron = sqlite3.connect(tmp_path / "cron.db", isolation_level=None, check_same_thread=False)
    the_cron.execute("BEGIN IMMEDIATE")
    the_cron.execute("INSERT INTO videos (video_id) VALUES ('video000002')")
    event = ResultEvent("e1", "video000002", "thumbnails", 1_000, False, detail("thumbnails", "valid"))
    arrived = Outcome(Inbound(RESULTS, 0, 0, b"video000002", b"", None, event), detail={"status": "applied"})
    committing = threading.Timer(0.5, the_cron.execute, ("COMMIT",))  # the cron's transaction ends meanwhile
    committing.start()
    try:
        db.write_with_retry(conn, sink.store, [arrived])
    finally:
        committing.join()
        the_cron.close()
    assert status(conn, "thumbnails", "video000002") == "valid"
