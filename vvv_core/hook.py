"""The cron pipeline's side: hand events to Kafka and return at once.

``background_processing`` is the drop-in for the old Celery dispatcher; ``publish_new`` is
``vvv publish``, which finds the work in the database itself, and ``flush_outbox`` is ``vvv outbox
flush``. None raises into the cron. The hook never touches the database (the cron may hold its
write lock for seconds) and returns within ``VVV_HOOK_TIMEOUT`` plus the time to write what it
keeps: what the broker does not take in that time waits in the outbox beside the database (see
``vvv_core.outbox``). The two commands drain the outbox to its end, bounded by a timeout of their own.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import compress, repeat
from typing import Any

from vvv_core import db, tracing
from vvv_core.avro import SchemaStore
from vvv_core.config import ConfigError, Settings
from vvv_core.errors import InvalidInput
from vvv_core.events import event_ids, now_ms, stale_columns, stale_record, video_columns, video_record
from vvv_core.outbox import DRAIN_TIMEOUT, OutboxPublisher, outbox_dir
from vvv_core.published import PublishedRecord
from vvv_core.registry import schema_store
from vvv_core.spool import Encode, Message, Spool

log = logging.getLogger(__name__)


@dataclass
class PublishReport:
    delivered: int = 0  # acknowledged by the broker in this call, events the outbox held included
    queued: int = 0  # waiting in the outbox when the call returned: nothing is lost
    unconfirmed: int = 0  # of those, sent but cut off before the broker answered: a repeat when sent again
    # video id (else "new_videos[3]: <the item>", "stale_ids[0]: ...") -> why it is not a valid event
    rejected: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.rejected

    def __str__(self) -> str:
        text = f"delivered {self.delivered}, kept in outbox {self.queued}"
        if self.unconfirmed:
            text += f" ({self.unconfirmed} of them sent unconfirmed: possible repeats)"
        text += f", rejected {len(self.rejected)}"
        return text + (f" ({self.error})" if self.error else "")

    def reject(self, key: str, reason: str) -> None:
        """One item's rejection; a video rejected twice (a new video and a stale id) keeps both reasons."""
        known = self.rejected.get(key)
        self.rejected[key] = reason if known is None or reason in known else f"{known}; {reason}"


Columns = dict[str, list]  # records by field: {name: [each record's value]}; {} for none


@dataclass
class Records:
    """Valid events as Avro records, a column per field, before encoding: what the outbox keeps (a dict per
    record, ``rows``) when encoding fails. Columns, not a dict per record: the hook's steps each take a batch."""

    new: Columns = field(default_factory=dict)
    stale: Columns = field(default_factory=dict)

    @classmethod
    def of(cls, new: list[dict[str, Any]], stale: list[dict[str, Any]]) -> Records:
        """From records one by one (a call's, or kept in the outbox: each has the first one's fields)."""
        return cls(*({f: [r.get(f) for r in rows] for f in rows[0]} if rows else {} for rows in (new, stale)))

    def rows(self) -> dict[str, list[dict[str, Any]]]:
        """The records one by one, as the outbox keeps them."""
        return {k: [dict(zip(c, r, strict=True)) for r in zip(*c.values(), strict=True)] for k, c in self._both()}

    def __len__(self) -> int:
        return count(self.new) + count(self.stale)

    def _both(self) -> tuple[tuple[str, Columns], tuple[str, Columns]]:
        return ("new", self.new), ("stale", self.stale)


def count(columns: Columns) -> int:
    """How many records ``columns`` hold."""
    return len(columns["video_id"]) if columns else 0


MAX_ID_SHOWN = 256  # a longer "id" is no video's: it is described instead (it could be megabytes)
_schemas: dict[str, SchemaStore] = {}  # by registry URL ("" for none): one per process, as the producer
_publishers: dict[Settings, OutboxPublisher] = {}


def _publisher(settings: Settings) -> OutboxPublisher:
    if settings not in _publishers:
        _publishers[settings] = OutboxPublisher(settings)
    return _publishers[settings]


def _encoders(settings: Settings) -> SchemaStore:
    if settings.schema_registry_url not in _schemas:
        _schemas[settings.schema_registry_url] = schema_store(settings)
    return _schemas[settings.schema_registry_url]


def validate(new_videos: Iterable[dict[str, Any]], stale_ids: Iterable[str], report: PublishReport) -> Records:
    """The records of the valid items; each invalid one is listed in ``report.rejected`` with why.

    Each list is checked a column at a time (``events.video_columns``); one holding any invalid item, item by item."""
    videos, stale = list(new_videos), list(stale_ids)
    ids, at = event_ids(len(videos) + len(stale)), now_ms()  # one call's events share their creation time
    ids_new, ids_stale = ids[: len(videos)], ids[len(videos) :]
    new = video_columns(videos, ids_new, at)
    if new is None:
        new = _one_by_one("new_videos", videos, video_record, ids_new, at, report)
    checked = stale_columns(stale, ids_stale, at)
    if checked is None:
        checked = _one_by_one("stale_ids", stale, stale_record, ids_stale, at, report)
    return Records(new, checked)


Make = Callable[[Any, str, int], dict[str, Any]]  # an item, its event id, its creation time -> its record


def _one_by_one(name: str, items: list, make: Make, ids: list[str], at: int, report: PublishReport) -> Columns:
    """The records of the valid ``items``, as columns; each invalid one in ``report.rejected`` with why."""
    records = []
    for position, (item, event_id) in enumerate(zip(items, ids, strict=True)):
        try:
            records.append(make(item, event_id, at))
        except (InvalidInput, AttributeError) as exc:
            reason = str(exc) if isinstance(exc, InvalidInput) else "not a dict"
            video_id = item if make is stale_record else item.get("video_id") if isinstance(item, dict) else None
            report.reject(rejection_key(video_id, item, f"{name}[{position}]"), reason)
    return Records.of(records, []).new


def rejection_key(video_id: Any, item: Any, position: str) -> str:
    """The video id an item names, for the cron to map a rejection back to its video; where it names
    none usable (not a dict, no id, not text, too long to be one), its position and what it is."""
    if isinstance(video_id, str) and 0 < len(video_id) <= MAX_ID_SHOWN and video_id.isprintable():
        return video_id
    shown = repr(item)
    return f"{position}: {shown[:60]}..." if len(shown) > 60 else f"{position}: {shown}"


def encode(settings: Settings, records: Records, spans: list | None = None) -> list[Message]:
    """The messages for ``records``; raises if the settings or schemas are unusable. With tracing on, each
    carries its event's ``traceparent``, and the spans of those sampled are added to ``spans`` (else ended)."""
    store = _encoders(settings)
    traces = tracing.active("vvv-hook")
    messages: list[Message] = []
    for name, topic, columns in (
        ("VideoEvent", settings.videos_topic, records.new),
        ("StaleCheckEvent", settings.stale_topic, records.stale),
    ):
        encoder = store.encoder(name, topic)  # both made (with a registry, registered) even for no records
        if not columns:
            continue
        values = encoder.columns(store.in_order(name, columns), len(columns["video_id"]))
        headers: Iterable[list | None] = repeat(None)
        if traces is not None:
            headers, started = traces.publishing(columns, topic)
            if spans is None:  # kept records encoded from the outbox: handed over now
                for span in started:
                    span.end()
            else:
                spans += started
        keys = map(str.encode, columns["video_id"])
        # Messages made as tuples of their class: Message(...) is a Python call per message, a tenth of the hook's time
        messages += map(tuple.__new__, repeat(Message), zip(repeat(topic), keys, values, headers))
    return messages


def background_processing(
    new_videos: list[dict[str, Any]], stale_ids: list[str], db_path: str, settings: Settings | None = None
) -> PublishReport:
    """Publish one event per new video and one per stale id; return within the hook timeout.

    ``db_path`` is the cron database, beside which the outbox lives; the hook never opens it.
    Never raises, and never loses a valid event: whatever fails after the items are validated
    (the settings, the schemas, encoding, the broker), each valid event is delivered or kept in
    the outbox, and the returned report says which.
    """
    report = PublishReport()
    with _no_collections():
        with contextlib.suppress(ConfigError):  # unusable settings are said, and the events kept, below
            settings = settings or Settings.from_env()
            _publisher(settings).connect()  # a fresh process connects while it validates and encodes
        records = validate(new_videos, stale_ids, report)
        for key, reason in report.rejected.items():
            log.error("hook: rejected %s: %s", key, reason)
        try:
            _publish(records, db_path, settings, report)
        except Exception as exc:  # the cron must go on whatever happens here
            log.exception("background_processing failed")
            report.error = f"{type(exc).__name__}: {exc}"
    return report


@contextlib.contextmanager
def _no_collections() -> Iterator[None]:
    """The garbage collector paused for one call: it makes some 10 objects per event, all freed by
    reference counting, and the collections they set off found nothing (a tenth of the call's
    time; more in a cron process with a large heap)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _publish(
    records: Records,
    db_path: str,
    settings: Settings | None,
    report: PublishReport,
    timeout: float | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Deliver ``records`` behind the outbox within ``timeout`` (the hook's own by default), or keep them."""
    folder = outbox_dir(db_path)
    entry = PublishedRecord(folder).entry(records.new, records.stale)
    spans: list = []  # of the events sampled for tracing: ended once the call knows what became of them
    try:
        settings = settings or Settings.from_env()
        messages = encode(settings, records, spans)
    except Exception as exc:  # nothing can be sent now: keep the records themselves, in their place in the order
        kind = "configuration error" if isinstance(exc, ConfigError) else f"cannot encode events ({type(exc).__name__})"
        log.error("hook: %s: %s; keeping %d events in the outbox %s", kind, exc, len(records), folder)
        report.error = f"{kind}: {exc}"
        if records:
            spool = Spool(folder)
            spool.write_records(records.rows())
            report.queued = spool.waiting()
            entry.write()
        return
    timeout = settings.hook_timeout if timeout is None else timeout
    delivery = _publisher(settings).deliver(folder, messages, timeout, _encode_kept(settings), entry.prepare, stop)
    report.delivered += delivery.delivered
    report.queued = delivery.queued
    report.unconfirmed = delivery.unconfirmed
    report.error = report.error or delivery.error
    entry.write()  # delivered or kept, so published: `vvv publish` will not send them again
    for span in spans:  # what became of the call's events, said on each: which ones were kept is not known here
        span.set_attributes({"vvv.hook.delivered": delivery.delivered, "vvv.hook.kept_in_outbox": delivery.queued})
        span.end()


def _encode_kept(settings: Settings) -> Encode:
    def encode_kept(kept: dict[str, list[dict]]) -> list[Message]:
        return encode(settings, Records.of(kept["new"], kept["stale"]))

    return encode_kept


def flush_outbox(
    db_path: str, settings: Settings, timeout: float = DRAIN_TIMEOUT, stop: threading.Event | None = None
) -> PublishReport:
    """``vvv outbox flush``: deliver what waits in the outbox, to its end unless ``timeout`` or ``stop`` comes first."""
    report = PublishReport()
    _publish(Records(), db_path, settings, report, timeout, stop)
    return report


def _select_new(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every video with what its newest snapshot says (its counts and time), as the hook is handed it."""
    snap = db.columns(conn, "video_snapshots")
    vids = db.columns(conn, "videos")

    def col(table_cols: set[str], alias: str, name: str) -> str:
        return f"{alias}.{name}" if name in table_cols else "NULL"

    rows = conn.execute(f"""
        WITH newest AS (
            SELECT video_id, rowid AS snapshot_rowid, {col(snap, "s", "region")} AS region,
                   {col(snap, "s", "view_count")} AS view_count, {col(snap, "s", "likes")} AS likes,
                   {col(snap, "s", "comments")} AS comments, {db.epoch_ms("s.fetched_at")} AS fetched_at,
                   row_number() OVER (PARTITION BY video_id ORDER BY julianday(fetched_at) DESC, rowid DESC) AS n
            FROM video_snapshots AS s)
        SELECT n.video_id, coalesce(n.region, {col(vids, "v", "region")}),
               {col(vids, "v", "title")}, {col(vids, "v", "thumbnail_url")}, n.view_count, n.likes, n.comments,
               n.fetched_at
        FROM newest AS n
        LEFT JOIN videos AS v ON v.video_id = n.video_id
        WHERE n.n = 1
        ORDER BY n.snapshot_rowid""").fetchall()
    names = ("video_id", "region", "title", "thumbnail_url", "view_count", "likes", "comments", "fetched_at")
    return [dict(zip(names, row, strict=True)) for row in rows]


def _select_stale(conn: sqlite3.Connection, stale_hours: float) -> list[str]:
    """Videos whose newest snapshot is older than the stale age."""
    rows = conn.execute(
        """
        SELECT video_id FROM video_snapshots
        GROUP BY video_id
        HAVING max(julianday(fetched_at)) < :before
        ORDER BY video_id""",
        {"before": db.julian_now() - stale_hours / 24.0},
    ).fetchall()
    return [row[0] for row in rows]


def publish_new(
    db_path: str, settings: Settings, timeout: float = DRAIN_TIMEOUT, stop: threading.Event | None = None
) -> PublishReport:
    """``vvv publish``: every video whose newest snapshot was not published yet, and every stale video,
    behind the whole outbox, within ``timeout`` (what is left then waits in the outbox).

    What was published is the record the hook keeps too (``vvv_core.published``): a snapshot
    the hook sent is not sent again, nor a stale check within its age window. Rejected rows are
    not recorded, so they are tried again once the cron's data is fixed.
    """
    conn = db.connect(db_path)
    try:
        db.require_table(conn, "video_snapshots")
        db.require_table(conn, "videos")
        candidates = _select_new(conn)
        stale_candidates = _select_stale(conn, settings.stale_hours)
    finally:
        conn.close()
    published = PublishedRecord(outbox_dir(db_path))
    report = PublishReport()
    checked = validate(candidates, stale_candidates, report)
    new_ids, stale_ids = checked.new.get("video_id", []), checked.stale.get("video_id", [])
    unpublished = published.unpublished(checked.new)
    recent = published.stale_published_within(settings.stale_hours / 24)
    due = Records(
        _only(checked.new, [v in unpublished for v in new_ids]),
        _only(checked.stale, [v not in recent for v in stale_ids]),
    )
    log.info("publishing %d new videos and %d stale ones", count(due.new), count(due.stale))
    _publish(due, db_path, settings, report, timeout, stop)
    return report


def _only(columns: Columns, chosen: list[bool]) -> Columns:
    """The records of ``columns`` that are ``chosen``; {} for none."""
    return {f: list(compress(c, chosen)) for f, c in columns.items()} if any(chosen) else {}
