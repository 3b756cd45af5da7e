"""One video's timeline: what happened to it and why, from the topics and the cron database, in time order.

Every event published for it, each group's results (verdict, attempts, the last reason), its dead letters with
their reasons and whether they were replayed (and the events a replay sent back), the table's records, and what
the cron database holds now. Each message's ``traceparent`` is shown too: the trace to look up in a tracing
backend, where each attempt is a span (see ``vvv_core.tracing``).

**Bounded.** A video's records are on one partition of each topic (keys are partitioned as Java's clients do:
``kafka.java_partition``), so only that partition is read, never a whole topic; and only from the start of the
window (``since``, a week back by default), found in the broker's time index (ListOffsets by time) and checked
against the records on either side of it, as ``vvv replay`` checks it (the embedded broker answers it wrongly:
there the partition is read from its start); and at most ``most`` records of each partition, the newest: a
partition holding more in the window is read from that many before its end, and the timeline says so.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Message

from vvv_core import db, kafka, tracing
from vvv_core.avro import SchemaStore
from vvv_core.config import Settings
from vvv_core.dlq import letters, replay_group
from vvv_core.errors import InvalidInput

DAYS = 7.0  # the window's default, back from now
MOST_DAYS = 366.0
MOST_READ = 20_000  # records of each topic's partition read at most: its newest
SNAPSHOTS_SHOWN = 10  # the cron database's newest snapshots of the video shown
TIME_INDEX_AGREES: dict[str, bool] = {}  # per bootstrap: did the broker's time index agree with its records?


@dataclass
class Entry:
    at: int  # ms since the epoch
    kind: str  # event, result, dead letter, replayed, table, snapshot, undecodable
    where: str  # topic[partition]@offset, or the cron database
    what: str  # one line
    event_id: str | None = None
    trace: str | None = None  # the trace id its traceparent names
    sampled: bool = False


@dataclass
class Read:
    """How one topic's partition was read: from where, and whether the window held more than was read."""

    topic: str
    partition: int
    start: int
    end: int
    records: int
    matched: int
    cut: bool  # the window held more than ``most`` records: the oldest were not read
    by_time: bool  # started from the broker's time index (else from its start, or the cap)


@dataclass
class Timeline:
    video_id: str
    since: int  # ms: the window's start
    most: int
    entries: list[Entry] = field(default_factory=list)
    read: list[Read] = field(default_factory=list)
    database: dict[str, Any] | None = None  # what the cron database holds now; None without one
    missing: list[str] = field(default_factory=list)  # topics not on the broker


def build(
    settings: Settings,
    readers: kafka.Readers,
    groups: Iterable[str],
    video_id: str,
    db_path: str | None = None,
    days: float = DAYS,
    most: int = MOST_READ,
    schemas: SchemaStore | None = None,
) -> Timeline:
    """The timeline of ``video_id`` over the last ``days``: ``groups`` name the dead-letter topics to read."""
    schemas = schemas or SchemaStore()
    since = int((time.time() - days * 86_400) * 1000)
    found = Timeline(video_id, since, most)
    groups = list(groups)
    decoders = {
        settings.videos_topic: "VideoEvent",
        settings.stale_topic: "StaleCheckEvent",
        settings.results_topic: "Result",
        settings.table_topic: "VideoState",
        **{settings.dead_letter_topic(g): "" for g in groups},
    }
    topics = readers.topics()
    found.missing = [t for t in decoders if t not in topics or topics[t].error is not None]
    key = video_id.encode()
    wanted = {
        (t, kafka.java_partition(key, len(topics[t].partitions)))
        for t in decoders
        if t not in found.missing and topics[t].partitions
    }
    records = _read(settings, readers, wanted, since, most, found)
    mine = {tp: [m for m in got if m.key() == key and m.timestamp()[1] >= since] for tp, got in records.items()}
    for read in found.read:
        read.matched = len(mine[(read.topic, read.partition)])
    replays = {replay_group(settings, g): settings.dead_letter_topic(g) for g in groups}
    done = readers.committed(replays)
    for (topic, partition), got in sorted(mine.items()):
        if decoders[topic]:
            found.entries += [_entry(m, decoders[topic], schemas) for m in got]
        else:  # a dead-letter topic: its letters, and whether each was replayed (a marker, or a replay of all)
            group = next(g for g in groups if settings.dead_letter_topic(g) == topic)
            done_here = {partition: done[replay_group(settings, group)].get(partition, 0)}
            found.entries += [_letter(group, topic, d) for d in letters(got, done_here)]
    if db_path is not None:
        found.database = _database(db_path, video_id)
        found.entries += found.database.pop("snapshots")
    found.entries.sort(key=lambda e: e.at)
    return found


def _read(
    settings: Settings,
    readers: kafka.Readers,
    wanted: set[kafka.Partition],
    since: int,
    most: int,
    found: Timeline,
) -> dict[kafka.Partition, list[Message]]:
    """Each partition's records in the window (the newest ``most`` at most), from where the time index says
    the window starts, checked against the records around it; where it is wrong, from the partition's start."""
    ends = readers.ends({t: None for t in {t for t, _p in wanted}})
    marks = {tp: ends[tp[0]][tp[1]] for tp in wanted if tp[1] in ends[tp[0]]}
    trusted = TIME_INDEX_AGREES.get(settings.bootstrap, True)
    index = readers.offsets_for_times(dict.fromkeys(marks, since)) if trusted else {}
    starts, by_time = {}, {}
    for tp, (low, high) in marks.items():
        at = index.get(tp)
        at = high if at == -1 else at  # no record at or after the time: the window is empty
        usable = at is not None and low <= at <= high
        start = max(at - 1, low) if usable else low  # the record before too: the answer is checked against it
        starts[tp], by_time[tp] = max(start, high - most), usable and start >= high - most
    records = readers.read_partitions({tp: at for tp, at in starts.items() if at < marks[tp][1]}, most + 1)
    wrong = {tp for tp in starts if by_time[tp] and not _window_starts_at(records.get(tp, []), index[tp], since)}
    if wrong:  # the broker's time index disagrees with its records (the embedded broker): read from the start
        TIME_INDEX_AGREES[settings.bootstrap] = False
        again = {tp: max(marks[tp][0], marks[tp][1] - most) for tp in wrong}
        records |= readers.read_partitions(again, most)
        for tp in wrong:
            starts[tp], by_time[tp] = again[tp], False
    elif any(by_time.values()):
        TIME_INDEX_AGREES[settings.bootstrap] = True
    for tp, (low, high) in sorted(marks.items()):
        got = records.get(tp, [])
        # read from the cap, not the window's start, and the oldest record read still in the window: more before it
        cut = starts[tp] > low and not by_time[tp] and bool(got) and got[0].timestamp()[1] >= since
        found.read.append(Read(*tp, starts[tp], high, len(got), 0, cut, by_time[tp]))
    return {tp: records.get(tp, []) for tp in marks}


def _window_starts_at(records: list[Message], at: int | None, since: int) -> bool:
    """Whether ``at`` is where the window starts: the record before it earlier than ``since``, its own not."""
    if at is None:
        return False
    before = [m for m in records if m.offset() < at]
    after = [m for m in records if m.offset() >= at]
    return (not before or before[-1].timestamp()[1] < since) and (not after or after[0].timestamp()[1] >= since)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _trace(message_headers: list[tuple[str, bytes]] | None) -> tuple[str | None, bool]:
    """The trace a message's ``traceparent`` names, and whether it is sampled."""
    value = tracing.traceparent(message_headers)
    if value is None or len(value) != 55:
        return None, False
    return value[3:35].decode("ascii", errors="replace"), tracing.is_sampled(value)


def _entry(m: Message, schema: str, schemas: SchemaStore) -> Entry:
    where = f"{m.topic()}[{m.partition()}]@{m.offset()}"
    trace, sampled = _trace(m.headers())
    at = m.timestamp()[1]
    try:
        record = schemas.decode(m.value(), schema)
    except InvalidInput as exc:  # poison on a topic: shown with why it cannot be read
        return Entry(at, "undecodable", where, f"{len(m.value() or b'')} bytes: {exc}", None, trace, sampled)
    headers = dict(m.headers() or [])
    if schema == "Result":
        return Entry(at, "result", where, _result(record), record["event_id"], trace, sampled)
    if schema == "VideoState":
        state = ", ".join(f"{k} {record[k]}" for k in ("score", "label", "thumbnail", "liveness") if record[k])
        return Entry(
            at, "table", where, f"the sink's current state: {state or 'nothing known yet'}", None, trace, sampled
        )
    what = f"{schema} {record['event_id']}"
    if schema == "VideoEvent":
        counts = [
            f"{record[k]:,} {k.replace('_count', 's')}"
            for k in ("view_count", "likes", "comments")
            if record[k] is not None
        ]
        snapshot = f", snapshot of {_when(record['fetched_at'])}" if record.get("fetched_at") else ""
        what += f": {record['region'] or 'no region'}{', ' if counts else ''}{', '.join(counts)}{snapshot}"
    if replayed := headers.get("vvv.replayed.from"):
        what += f" (a replay of the dead letter {replayed.decode(errors='replace')})"
    return Entry(at, "event", where, what, record["event_id"], trace, sampled)


def _result(record: dict[str, Any]) -> str:
    """A result in one line: the verdict, its reason, the attempts it took."""
    d, group = record["detail"], record["group"]
    if group == "scoring":
        verdict = f"score {d['score']:g} {d['label']}" if d.get("reason") is None else f"not scored: {d['reason']}"
    else:
        verdict = d.get("status") or "?"
        if d.get("width"):
            verdict += f" {d['width']}x{d['height']}"
        if d.get("http_status"):
            verdict += f" (HTTP {d['http_status']})"
        if d.get("reason"):
            verdict += f": {d['reason']}"
        if d.get("attempts"):
            verdict += f", after {d['attempts']} attempt{'s' if d['attempts'] > 1 else ''}"
    stored = "stored by the member" if record["stored"] else "for the sink to store"
    return f"{group}: {verdict} ({stored}; event {record['event_id']})"


def _letter(group: str, topic: str, letter: Any) -> Entry:
    why = letter.why
    trace, sampled = _trace(letter.headers)
    source = f"{why.get('source.topic')}[{why.get('source.partition')}]@{why.get('source.offset')}"
    what = (
        f"{group}: dead letter, {why.get('error.kind')} {why.get('error.class')}: {why.get('error.message')} "
        f"(after {why.get('attempts')} attempt(s); from {source}){'; replayed' if letter.replayed else ''}"
    )
    try:
        failed = int(datetime.fromisoformat(why["failed.at"]).timestamp() * 1000)
    except (KeyError, ValueError):
        failed = 0
    return Entry(failed, "dead letter", f"{topic}[{letter.partition}]@{letter.offset}", what, None, trace, sampled)


def _database(db_path: str, video_id: str) -> dict[str, Any]:
    """What the cron database holds of the video now (each table where it exists), and its newest snapshots."""
    conn = db.connect(db_path)
    try:
        conn.row_factory = sqlite3.Row
        held: dict[str, Any] = {}
        for table, where in (("videos", "video"), ("thumbnail_checks", "thumbnail"), ("video_liveness", "liveness")):
            if db.columns(conn, table):
                row = conn.execute(f"SELECT * FROM {table} WHERE video_id = ?", (video_id,)).fetchone()
                held[where] = None if row is None else dict(row)
        snapshots = []
        if db.columns(conn, "video_snapshots"):
            rows = conn.execute(
                f"SELECT *, {db.epoch_ms('fetched_at')} AS at_ms FROM video_snapshots WHERE video_id = ?"
                " ORDER BY julianday(fetched_at) DESC, rowid DESC LIMIT ?",
                (video_id, SNAPSHOTS_SHOWN),
            ).fetchall()
            for row in map(dict, rows):
                counts = ", ".join(
                    f"{row[k]:,} {k}" for k in ("view_count", "likes", "comments") if row.get(k) is not None
                )
                snapshots.append(
                    Entry(row["at_ms"] or 0, "snapshot", "cron database", f"fetched: {counts or 'no counts'}")
                )
        held["snapshots"] = snapshots
        return held
    finally:
        conn.close()


def lines(found: Timeline) -> list[str]:
    """The timeline as text (``vvv timeline``)."""
    out = [f"video {found.video_id}: {len(found.entries)} entries since {_when(found.since)} UTC"]
    out += [f"  read {bound(r)}" for r in found.read]
    out += [f"  topic {t} is not on the broker" for t in found.missing]
    for e in found.entries:
        trace = f"  trace {e.trace}{' (sampled)' if e.sampled else ''}" if e.trace else ""
        out.append(f"{_when(e.at)}  {e.kind:<11}  {e.where:<28}  {e.what}{trace}")
    if found.database is not None:
        out.append(f"now{' ' * 22}database     {describe(found.database)}")
    return out


def bound(r: Read) -> str:
    """How one partition was read, in words."""
    how = "from the window's start (the broker's time index)" if r.by_time else f"from offset {r.start}"
    more = f"; the window holds more: only its newest {r.records:,} records read" if r.cut else ""
    return f"{r.topic}[{r.partition}] {how} to {r.end}: {r.records:,} records, {r.matched:,} of this video{more}"


def describe(held: Mapping[str, Any]) -> str:
    """What the cron database holds of the video now, in one line."""
    video, thumbnail, liveness = held.get("video"), held.get("thumbnail"), held.get("liveness")
    if video is None:
        return "no such video in the cron database"
    score = video.get("virality_score")
    parts = [f"score {score:g}" if score is not None else "not scored"]
    parts.append(
        f"thumbnail {thumbnail['status']}" + (f" ({thumbnail['reason']})" if thumbnail.get("reason") else "")
        if thumbnail
        else "thumbnail not checked"
    )
    parts.append(f"liveness {liveness['status']}" if liveness else "liveness not checked")
    return ", ".join(parts)
