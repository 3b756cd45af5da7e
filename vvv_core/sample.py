"""A sample cron database for the 7 regions, from real trending snapshots (see sample_data/README.md)."""

from __future__ import annotations

import csv
import sqlite3
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

# The cron pipeline's tables, as far as this project relies on them.
CRON_SCHEMA = """
CREATE TABLE IF NOT EXISTS videos (
    video_id TEXT PRIMARY KEY,
    region TEXT,
    title TEXT,
    thumbnail_url TEXT,
    virality_score REAL
);
CREATE TABLE IF NOT EXISTS video_snapshots (
    video_id TEXT,
    region TEXT,
    view_count INTEGER,
    likes INTEGER,
    comments INTEGER,
    fetched_at TEXT
);
"""
TIMESTAMP = "%Y-%m-%d %H:%M:%S"


def sample_rows() -> list[dict[str, str]]:
    with resources.files("vvv_core.sample_data").joinpath("trending_sample.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def build_sample_db(path: str | Path, *, now: datetime | None = None, thumbnail_base: str | None = None) -> int:
    """Create (or extend) a cron database at ``path``; return the number of videos.

    Each region's timeline is shifted so that its newest snapshot is an hour old: the
    videos that stopped trending earlier are then stale, as they would be in production.
    ``thumbnail_base`` (e.g. ``http://127.0.0.1:8000``) replaces ``https://i.ytimg.com``.
    """
    rows = sample_rows()
    newest: dict[str, datetime] = defaultdict(lambda: datetime.min)
    for row in rows:
        row["at"] = datetime.fromisoformat(row["fetched_at"].replace("Z", "")).replace(tzinfo=None)
        newest[row["region"]] = max(newest[row["region"]], row["at"])
    target = (now or datetime.now(UTC)).replace(tzinfo=None, microsecond=0) - timedelta(hours=1)
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(CRON_SCHEMA)
        with conn:
            for row in rows:
                fetched = row["at"] + (target - newest[row["region"]])
                thumb = row["thumbnail_url"]
                if thumbnail_base:
                    thumb = thumb.replace("https://i.ytimg.com", thumbnail_base.rstrip("/"))
                conn.execute(
                    "INSERT INTO videos (video_id, region, title, thumbnail_url) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (video_id) DO UPDATE SET thumbnail_url = excluded.thumbnail_url",
                    (row["video_id"], row["region"], row["title"], thumb),
                )
                conn.execute(
                    "INSERT INTO video_snapshots (video_id, region, view_count, likes, comments, fetched_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        row["video_id"],
                        row["region"],
                        int(row["view_count"]),
                        int(row["likes"]),
                        int(row["comments"]),
                        fetched.strftime(TIMESTAMP),
                    ),
                )
        return conn.execute("SELECT count(*) FROM videos").fetchone()[0]
    finally:
        conn.close()


def demo_poison() -> list[tuple[str, bytes, bytes]]:
    """Messages no group can process, published beside the demo's events so its console has dead letters
    to show and replay: (topic's short name, key, value). Each group dead-letters the one it reads."""
    return [
        ("videos", b"J78aPJ3VyNs", b"not an event: a producer's bug wrote plain text"),
        ("stale", b"DEMO-POISON", b"\xc3\x01" + bytes(8) + b"an unknown schema"),
    ]
