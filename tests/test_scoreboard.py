"""What the views read from the cron database (vvv_core.scoreboard), checked against a count of every row: the
running counts through every kind of write, each listing sorted by every column and paged, the bound on a
listing, a database locked by the cron, and readers that never write."""

from __future__ import annotations

import sqlite3
import time

import pytest
from conftest import hold_write_lock

from vvv_core import db, scoreboard
from vvv_core.groups.liveness import LivenessGroup
from vvv_core.groups.thumbnails import ThumbnailGroup
from vvv_core.report import build_report

NOCASE = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")  # SQLite's NOCASE folds ASCII


def scored(path: str) -> sqlite3.Connection:
    """The sample database with scores as scoring writes them (ties included), and some verdicts."""
    conn = db.connect(path)
    for column, kind in (("virality_score", "REAL"), ("virality_velocity", "INTEGER"), ("virality_engagement", "REAL")):
        db.add_column(conn, "videos", column, kind)
    ThumbnailGroup.create_tables(conn)
    LivenessGroup.create_tables(conn)
    with db.transaction(conn):
        conn.execute(
            "UPDATE videos SET virality_score = 55 + rowid % 46, virality_velocity = (rowid * 7919) % 5000, "
            "virality_engagement = (rowid % 9) / 2.0"
        )
        conn.execute(
            "INSERT INTO thumbnail_checks (video_id, status, reason, attempts, checked_at) "
            "SELECT video_id, CASE rowid % 4 WHEN 0 THEN 'valid' WHEN 1 THEN 'broken' ELSE 'error' END, "
            "'HTTP ' || (500 + rowid % 3), 1, 'now' FROM videos WHERE rowid % 3 = 0"
        )
        conn.execute(
            "INSERT INTO video_liveness (video_id, status, reason, checked_at) "
            "SELECT video_id, CASE rowid % 3 WHEN 0 THEN 'alive' WHEN 1 THEN 'deleted' ELSE 'unknown' END, "
            "'timed out', 'now' FROM videos WHERE rowid % 2 = 0"
        )
    return conn


def recount(conn: sqlite3.Connection) -> tuple[dict[tuple[str, float], int], int]:
    """Videos per region and score, and those not scored, counted from every row."""
    rows = conn.execute(
        "SELECT coalesce(region, '?'), virality_score, count(*) FROM videos WHERE virality_score IS NOT NULL "
        "GROUP BY 1, 2"
    )
    unscored = conn.execute("SELECT count(*) FROM videos WHERE virality_score IS NULL").fetchone()[0]
    return {(r, s): n for r, s, n in rows}, unscored


def counted(conn: sqlite3.Connection) -> tuple[dict[tuple[str, float], int], int]:
    scores = scoreboard.read_scores(conn)
    return {(r, s): n for r, c in scores.regions.items() for s, n in c.items()}, scores.unscored


def test_the_running_counts_follow_every_write_to_the_scores(sample_db):
    conn = scored(sample_db)
    scoreboard.prepare(conn)
    assert scoreboard._counting(conn) and counted(conn) == recount(conn)
    writes = [
        "UPDATE videos SET virality_score = virality_score + 0.5 WHERE rowid % 3 = 0",  # rescored, as scoring does
        "UPDATE videos SET virality_score = NULL WHERE rowid % 7 = 0",
        "UPDATE videos SET virality_score = 75 WHERE virality_score IS NULL AND rowid % 2 = 0",  # scored at last
        "UPDATE videos SET region = 'SE' WHERE region = 'PL' AND rowid % 2 = 0",  # the cron moves a video
        "UPDATE videos SET region = NULL WHERE rowid % 11 = 0",
        "DELETE FROM videos WHERE rowid % 13 = 0",  # the cron drops some
        "INSERT INTO videos (video_id, region, title, virality_score) VALUES ('new00000001', 'PL', 'new', 99.5)",
        "INSERT INTO videos (video_id, region, title) VALUES ('new00000002', 'PL', 'not scored')",
        "UPDATE videos SET title = 'renamed'",  # nothing about scores
    ]
    for write in writes:
        conn.execute(write)
        assert counted(conn) == recount(conn), write
    conn.execute("DROP TRIGGER vvv_score_counts_delete")  # a part gone: not trusted, rebuilt at the next look
    conn.execute("DELETE FROM videos WHERE rowid % 5 = 0")
    assert counted(conn) == recount(conn)
    scoreboard.prepare(conn)
    conn.execute("DELETE FROM videos WHERE rowid % 17 = 0")
    assert scoreboard._counting(conn) and counted(conn) == recount(conn)


def expected_order(rows: list[tuple], column: str, descending: bool) -> list[str]:
    """A listing's video ids as the console promises them, sorted here in Python from every listed row."""
    video_id, title, score, velocity, engagement, thumbnail, liveness = range(7)
    keys = {
        "views": velocity,
        "engagement": engagement,
        "video": video_id,
        "title": title,
        "thumbnail": thumbnail,
        "liveness": liveness,
    }
    best = sorted(rows, key=lambda r: (r[score], r[velocity], r[engagement], r[video_id]), reverse=True)
    listed = best[: scoreboard.LISTED]
    if column == "score":
        return [r[video_id] for r in (listed if descending else listed[::-1])]

    def key(row: tuple) -> object:
        value = row[keys[column]]
        return value.translate(NOCASE) if column == "title" and value is not None else value

    present = sorted((r for r in listed if key(r) is not None), key=key, reverse=descending)  # stable: best first
    return [r[video_id] for r in present + [r for r in listed if key(r) is None]]


@pytest.mark.parametrize("column", list(scoreboard.SORTS))
def test_a_listing_sorted_by_any_column_is_paged_by_the_database(sample_db, monkeypatch, column):
    monkeypatch.setattr(scoreboard, "LISTED", 30)  # the bound, below the region's 39 listable videos
    conn = scored(sample_db)
    scoreboard.prepare(conn)
    rows = conn.execute(
        "SELECT v.video_id, v.title, v.virality_score, v.virality_velocity, v.virality_engagement, t.status, "
        "l.status FROM videos AS v LEFT JOIN thumbnail_checks AS t USING (video_id) "
        "LEFT JOIN video_liveness AS l USING (video_id) WHERE region = 'PL' AND virality_score >= ?",
        (scoreboard.LISTED_FROM,),
    ).fetchall()
    assert len(rows) > scoreboard.LISTED > scoreboard.PAGE
    for descending in (True, False):
        shown, page = [], 1
        while True:
            listing = scoreboard.read_results(conn, {"PL": scoreboard.Order(column, descending, page)}).listings["PL"]
            assert (listing.listed, listing.candidates, listing.order.page) == (30, len(rows), page)
            shown += [v.video_id for v in listing.videos]
            if page == listing.pages:
                break
            page += 1
        assert shown == expected_order(rows, column, descending), (column, descending)
    beyond = scoreboard.read_results(conn, {"PL": scoreboard.Order(column, True, 99)}).listings["PL"]
    assert beyond.order.page == 2 and len(beyond.videos) == 5  # a page past the last shows the last


def test_the_listings_index_and_counts_are_read_when_there(sample_db):
    conn = scored(sample_db)
    scoreboard.prepare(conn)
    plan = " ".join(
        row[3]
        for row in conn.execute(
            f"EXPLAIN QUERY PLAN SELECT video_id FROM videos WHERE region = 'PL' AND virality_score >= "
            f"{scoreboard.LISTED_FROM!r} ORDER BY virality_score DESC LIMIT 5"
        )
    )
    assert "vvv_videos_listed" in plan
    for table in ("thumbnail_checks", "video_liveness"):
        plan = " ".join(
            r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN SELECT status, count(*) FROM {table} GROUP BY 1")
        )
        assert f"COVERING INDEX vvv_{table}_by_status" in plan


def test_the_cron_holding_its_lock_never_waits_for_the_console(sample_db):
    """While another process holds the write lock, the console's look neither waits for it (beyond
    LOCK_WAIT_MS per thing to make) nor fails: it reads the same figures the slow way, and makes its
    counts and indexes at a later look."""
    conn = scored(sample_db)
    with hold_write_lock(sample_db, seconds=30):
        started = time.monotonic()
        scoreboard.prepare(conn)
        assert time.monotonic() - started < 2.0  # four things to make, 0.1 s each at most, and the reading
        assert not scoreboard._counting(conn)
        assert counted(conn) == recount(conn)
    scoreboard.prepare(conn)
    assert scoreboard._counting(conn)


def test_the_report_only_reads(sample_db, tmp_path):
    conn = scored(sample_db)
    conn.close()
    page = build_report(sample_db, None, "no broker in this test")
    made = sqlite3.connect(sample_db).execute("SELECT name FROM sqlite_master WHERE name LIKE 'vvv%'").fetchall()
    assert made == [] and "data-sort='" not in page and "best first" in page  # no headings to click
