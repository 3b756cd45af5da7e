"""What the views read from the cron database, at the same cost on a year's data as on a day's.

Three things keep each look short, each created by ``prepare`` where it is missing:

- **Running counts of scores** (``vvv_score_counts``: how many videos of each region have each score), kept
  by triggers on ``videos`` as scores are written, so the summary and the histograms never read every video
  (a GROUP BY over 300,000 of them took 200 ms). An index on every video's score would answer the same,
  but every rescore would move an entry in it; a count is one row of a small table. What both cost
  scoring is measured in ``bench/console.py``.
- **Each region's listing**: its viral and trending videos, best first, at most ``LISTED`` of them, from a
  partial index that holds only those (scoring's updates of the rest never touch it). Sorting a listing by
  any column and paging through it reads at most ``LISTED`` rows, however large the database.
- **Verdict counts**: an index on each verdict table's status and reason.

Who creates them: the console (``prepare``, at each look while one is missing: a verdict table appears when
its group first runs), each in its own short transaction, waiting at most ``LOCK_WAIT_MS`` for another
writer: while the cron writes, it is tried again at the next look. ``vvv report`` and ``vvv status`` never
write: they read the same answers, with them or without them (slower).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from vvv_core import db
from vvv_core.domain.scoring import label

log = logging.getLogger(__name__)

LISTED = 500  # videos in a region's listing at most: its best, sorted and paged by the database
PAGE = 25  # videos per page of a listing
LOCK_WAIT_MS = 100  # how long ``prepare`` waits for another writer's lock before trying at the next look
# The lowest score listed (60.0): scores are written to 0.1, and labels rise with the score.
LISTED_FROM = next(s / 10 for s in range(1001) if label(s / 10) != "NORMAL")
COUNTS = "vvv_score_counts"
NO_REGION = "?"  # how a video without a region is counted and shown

_ADD = """
    INSERT INTO vvv_score_counts (region, score, videos)
        SELECT coalesce(new.region, '?'), new.virality_score, 0
        WHERE new.virality_score IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM vvv_score_counts WHERE region = coalesce(new.region, '?') AND score = new.virality_score);
    UPDATE vvv_score_counts SET videos = videos + 1
        WHERE region = coalesce(new.region, '?') AND score = new.virality_score;"""
_REMOVE = """
    UPDATE vvv_score_counts SET videos = videos - 1
        WHERE region = coalesce(old.region, '?') AND score = old.virality_score;"""
# Plain SQL every SQLite since 3.8 reads (no UPSERT): the cron's own SQLite runs these triggers when it
# deletes a scored video or changes a region, so whatever it uses must parse them.
COUNTING = [
    f"""CREATE TABLE {COUNTS} (
        region TEXT NOT NULL,  -- '?' where the video has none
        score REAL NOT NULL,
        videos INTEGER NOT NULL,
        PRIMARY KEY (region, score)
    ) WITHOUT ROWID""",
    f"""INSERT INTO {COUNTS} (region, score, videos)
        SELECT coalesce(region, '?'), virality_score, count(*) FROM videos WHERE virality_score IS NOT NULL
        GROUP BY 1, 2""",
    f"""CREATE TRIGGER vvv_score_counts_insert AFTER INSERT ON videos WHEN new.virality_score IS NOT NULL
        BEGIN {_ADD} END""",
    f"""CREATE TRIGGER vvv_score_counts_delete AFTER DELETE ON videos WHEN old.virality_score IS NOT NULL
        BEGIN {_REMOVE} END""",
    f"""CREATE TRIGGER vvv_score_counts_update AFTER UPDATE OF virality_score, region ON videos
        WHEN old.virality_score IS NOT new.virality_score OR old.region IS NOT new.region
        BEGIN {_REMOVE} {_ADD} END""",
]
COUNTING_PARTS = (COUNTS, "vvv_score_counts_insert", "vvv_score_counts_delete", "vvv_score_counts_update")
# A listing's best in order from the index alone; the rest of its (at most LISTED) rows read from the table.
# Wider (the video id and title too) made the listings a third faster to read and scoring a tenth slower.
LISTING_COLUMNS = ("region", "virality_score", "virality_velocity", "virality_engagement")
LISTING_INDEX = (
    f"CREATE INDEX vvv_videos_listed ON videos ({', '.join(LISTING_COLUMNS)}) WHERE virality_score >= {LISTED_FROM!r}"
)
VERDICT_TABLES = {"thumbnail_checks": ("error",), "video_liveness": ("unknown",)}  # table -> statuses explained


def prepare(conn: sqlite3.Connection) -> None:
    """Create what makes the views fast, where it is missing and what it is about exists (see the module)."""
    made = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'vvv%'")}
    scored = db.columns(conn, "videos")
    wanted: list[tuple[str, list[str]]] = []
    if "virality_score" in scored and not set(COUNTING_PARTS) <= made:  # a part dropped: the counts rebuilt
        undo = [f"DROP TRIGGER IF EXISTS {name}" for name in COUNTING_PARTS[1:]] + [f"DROP TABLE IF EXISTS {COUNTS}"]
        wanted.append(("running counts of scores", undo + COUNTING))
    if set(LISTING_COLUMNS) <= scored and "vvv_videos_listed" not in made:
        wanted.append(("the listings' index", [LISTING_INDEX]))
    for table in VERDICT_TABLES:
        if db.columns(conn, table) and f"vvv_{table}_by_status" not in made:
            wanted.append((f"{table}'s index", [f"CREATE INDEX vvv_{table}_by_status ON {table} (status, reason)"]))
    if not wanted:
        return
    conn.execute(f"PRAGMA busy_timeout = {LOCK_WAIT_MS}")
    try:
        for what, statements in wanted:
            try:
                with db.transaction(conn):
                    for statement in statements:
                        conn.execute(statement)
                log.info("created %s in the cron database", what)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise
                log.info("%s not created yet: %s (tried again at the next look)", what, exc)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(db.BUSY_TIMEOUT_S * 1000)}")


@contextlib.contextmanager
def reading(db_path: str, prepare_first: bool = False) -> Iterator[sqlite3.Connection]:
    """The cron database in one read transaction: every figure of a look from the same moment (``prepare``d
    first where the caller is the one that creates what the views need: the console)."""
    conn = db.connect(db_path)
    try:
        if prepare_first:
            prepare(conn)
        conn.execute("BEGIN")
        yield conn
    finally:
        conn.close()


@dataclass
class Scores:
    regions: dict[str, Counter[float]]  # region -> score -> how many of its videos have it
    unscored: int

    @property
    def scored(self) -> int:
        return sum(n for counts in self.regions.values() for n in counts.values())

    def labels(self, region: str | None = None) -> Counter[str]:
        """How many videos (of ``region``, or all) have each label."""
        found: Counter[str] = Counter()
        for name, counts in self.regions.items():
            if region in (None, name):
                for score, n in counts.items():
                    found[label(score)] += n
        return found


def read_scores(conn: sqlite3.Connection) -> Scores:
    """From the running counts where they are kept, else by counting every video."""
    if "virality_score" not in db.columns(conn, "videos"):
        return Scores({}, conn.execute("SELECT count(*) FROM videos").fetchone()[0])
    counted = _counting(conn)
    rows = conn.execute(
        f"SELECT region, score, videos FROM {COUNTS} WHERE videos > 0"
        if counted
        else "SELECT coalesce(region, '?'), virality_score, count(*) FROM videos WHERE virality_score IS NOT NULL "
        "GROUP BY 1, 2"
    )
    regions: defaultdict[str, Counter[float]] = defaultdict(Counter)
    for region, score, n in rows:
        regions[region][score] = n
    scores = Scores(dict(regions), 0)
    scores.unscored = conn.execute("SELECT count(*) FROM videos").fetchone()[0] - scores.scored
    return scores


def _counting(conn: sqlite3.Connection) -> bool:
    """Whether the running counts are kept (the table and every trigger there)."""
    names = ", ".join("?" * len(COUNTING_PARTS))
    found = conn.execute(f"SELECT count(*) FROM sqlite_master WHERE name IN ({names})", COUNTING_PARTS).fetchone()
    return found[0] == len(COUNTING_PARTS)


@dataclass
class Verdicts:
    """Counts of one check's verdicts, and the reasons behind the ones that are not answers (the top 10 each)."""

    counts: Counter[str] = field(default_factory=Counter)
    reasons: dict[str, Counter[str]] = field(default_factory=dict)  # status -> reason -> count


def read_verdicts(conn: sqlite3.Connection, table: str) -> Verdicts:
    found = Verdicts()
    if not db.columns(conn, table):
        return found
    found.counts.update(dict(conn.execute(f"SELECT status, count(*) FROM {table} GROUP BY status")))
    for status in VERDICT_TABLES[table]:
        if found.counts[status]:
            found.reasons[status] = Counter(
                dict(
                    conn.execute(
                        f"SELECT coalesce(reason, 'no reason recorded'), count(*) FROM {table} WHERE status = ? "
                        "GROUP BY 1 ORDER BY 2 DESC LIMIT 10",
                        (status,),
                    )
                )
            )
    return found


@dataclass
class Summary:
    scores: Scores
    thumbnails: Verdicts
    liveness: Verdicts


def read_summary(conn: sqlite3.Connection, scores: Scores | None = None) -> Summary:
    """The scores (read here unless given: a look that has them already), and both checks' verdicts."""
    verdicts = [read_verdicts(conn, table) for table in VERDICT_TABLES]
    return Summary(scores or read_scores(conn), *verdicts)


@dataclass
class Video:
    video_id: str
    title: str | None
    score: float
    velocity: int | None
    engagement: float | None
    thumbnail_url: str | None
    thumbnail: str | None  # verdict, None: not checked
    thumbnail_reason: str | None
    liveness: str | None
    liveness_reason: str | None


# What a listing can be sorted by: column -> the key its rows are sorted by (then the best first). Only the
# key is read for each listed video; the rest for the page shown.
SORTS = {
    "score": "l.score",
    "views": "l.velocity",
    "engagement": "l.engagement",
    "video": "l.video_id",
    "title": "l.title COLLATE NOCASE",
    "thumbnail": "(SELECT status FROM thumbnail_checks WHERE video_id = l.video_id)",
    "liveness": "(SELECT status FROM video_liveness WHERE video_id = l.video_id)",
}
# Equal scores ranked by the velocity and engagement behind them; the video id last, in the index's order.
BEST = "l.score DESC, l.velocity DESC, l.engagement DESC, l.video_id DESC"
WORST = "l.score, l.velocity, l.engagement, l.video_id"


@dataclass(frozen=True)
class Order:
    """How a region's listing is shown: sorted by ``column`` (one of SORTS), and which page."""

    column: str = "score"
    descending: bool = True
    page: int = 1

    def sql(self) -> str:
        """ORDER BY for it, of rows that carry their sort key as ``key``."""
        if self.column == "score":
            return BEST if self.descending else WORST
        return f"key {'DESC' if self.descending else 'ASC'} NULLS LAST, {BEST}"


@dataclass
class Listing:
    order: Order  # as shown: its page within the listing
    videos: list[Video]  # that page
    listed: int  # videos in the listing: the region's best, at most LISTED
    candidates: int  # the region's viral and trending videos

    @property
    def pages(self) -> int:
        return max(1, -(-self.listed // PAGE))


@dataclass
class Results:
    scores: Scores
    listings: dict[str, Listing]  # region -> its listing (regions with viral or trending videos)


def read_results(conn: sqlite3.Connection, orders: Mapping[str, Order] | None = None) -> Results:
    """Every region's scores and the page of its listing that ``orders`` asks for (default: the best first)."""
    scores = read_scores(conn)
    listings = {}
    for region, counts in scores.regions.items():
        candidates = sum(n for score, n in counts.items() if score >= LISTED_FROM)
        if candidates:
            listed = min(candidates, LISTED)
            listings[region] = _listing(conn, region, (orders or {}).get(region, Order()), listed, candidates)
    return Results(scores, listings)


def _listing(conn: sqlite3.Connection, region: str, order: Order, listed: int, candidates: int) -> Listing:
    columns = db.columns(conn, "videos")

    def col(name: str, prefix: str = "") -> str:
        return prefix + name if name in columns else "NULL"

    joins, checks, key = [], [], SORTS[order.column]
    for table, alias, column in (("thumbnail_checks", "t", "thumbnail"), ("video_liveness", "lv", "liveness")):
        if db.columns(conn, table):
            joins.append(f"LEFT JOIN {table} AS {alias} USING (video_id)")
            checks.append(f"{alias}.status, {alias}.reason")
        else:  # its group never ran: nothing checked
            checks.append("NULL, NULL")
            key = "NULL" if order.column == column else key
    page = min(order.page, -(-listed // PAGE))
    where = "(region IS NULL OR region = '?')" if region == NO_REGION else "region = :region"
    velocity, engagement = col("virality_velocity"), col("virality_engagement")
    best = f"""SELECT video_id, virality_score AS score, {velocity} AS velocity, {engagement} AS engagement,
                      {col("title")} AS title
               FROM videos WHERE {where} AND virality_score >= {LISTED_FROM!r}
               ORDER BY virality_score DESC, {velocity} DESC, {engagement} DESC, video_id DESC"""
    if order.column == "score" and order.descending:  # the page straight from the index, within the listing
        rest = min(PAGE, listed - (page - 1) * PAGE)
        shown = f"SELECT l.*, NULL AS key FROM ({best} LIMIT {rest} OFFSET :offset) AS l"
    else:  # the listing (its best LISTED), sorted as asked: then the page
        shown = f"""SELECT l.*, {key} AS key FROM ({best} LIMIT {LISTED}) AS l
                    ORDER BY {order.sql()} LIMIT {PAGE} OFFSET :offset"""
    rows = conn.execute(
        f"""WITH shown AS ({shown})
            SELECT l.video_id, l.title, l.score, l.velocity, l.engagement, {col("thumbnail_url", "v.")},
                   {", ".join(checks)}
            FROM shown AS l JOIN videos AS v USING (video_id) {" ".join(joins)}
            ORDER BY {order.sql()}""",
        {"region": region, "offset": (page - 1) * PAGE},
    ).fetchall()
    shown = Order(order.column, order.descending, page)
    return Listing(shown, [Video(*row) for row in rows], listed, candidates)
