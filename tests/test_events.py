"""Event validation: every malformed field gets a clear reason."""

from __future__ import annotations

import itertools
import os
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta, timezone

import hypothesis
import pytest
from hypothesis import settings as examples
from hypothesis import strategies as st

from vvv_core import db, events
from vvv_core.events import (
    CRON_FIELDS,
    DAY_MS,
    EARLIEST_MS,
    MAX_COUNT,
    MAX_TEXT,
    VIDEO_EVENT_FIELDS,
    InvalidEvent,
    StaleCheckEvent,
    VideoEvent,
    clip,
    each,
    new_event_ids,
    now_ms,
    stale_check_event,
    stale_check_events,
    stale_columns,
    stale_record,
    video_columns,
    video_event,
    video_events,
    video_record,
)


def record(**changes):
    return {"event_id": "e1", "video_id": "J78aPJ3VyNs", "created_at": now_ms(), **changes}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"video_id": "x'; DROP TABLE videos; --"}, "invalid video_id"),
        ({"video_id": "a" * 10_000}, r"invalid video_id .*\(10000 chars\)"),
        ({"video_id": ""}, "invalid video_id"),
        ({"region": "P" * 500}, "invalid region"),
        ({"region": "P1"}, "invalid region"),
        ({"view_count": 2**63 - 1}, "invalid view_count"),
        ({"likes": -1}, "invalid likes"),
        ({"created_at": 253402300799000}, "invalid created_at 9999-12-31"),
        ({"created_at": "yesterday"}, "not a timestamp"),
        ({"event_id": ""}, "invalid event_id"),
        ({"title": "t" * 5000}, "invalid title"),
        ({"fetched_at": 253402300799000}, "invalid fetched_at 9999-12-31"),
        ({"fetched_at": "last tuesday"}, "invalid fetched_at 'last tuesday': not a time"),
        ({"fetched_at": 1.5}, "invalid fetched_at 1.5: not a timestamp"),
    ],
)
def test_invalid_fields_are_named(changes, reason):
    with pytest.raises(InvalidEvent, match=reason):
        video_event(record(**changes))


def test_valid_event_normalises_region():
    event = video_event(record(region="pl", view_count=5))
    assert (event.region, event.view_count, event.created_at > 1_600_000_000_000) == ("PL", 5, True)


def test_stale_event_checks_the_id():
    with pytest.raises(InvalidEvent):
        stale_check_event(record(video_id="../etc/passwd"))


def test_video_record_from_a_cron_dict():
    rec = video_record(
        {
            "video_id": "J78aPJ3VyNs",
            "thumbnail_url": "https://i.ytimg.com/x.jpg",
            "region": "se",
            "view_count": 10,
            "extra": "ignored",
        },
        "e1",
        now_ms(),
    )
    assert rec["region"] == "SE" and rec["view_count"] == 10 and rec["event_id"] == "e1"


def test_a_snapshots_time_is_taken_as_the_cron_writes_it_and_as_sqlite_reads_it():
    """The hook takes fetched_at as milliseconds, a datetime (naive: UTC) or the cron's text; each the same instant
    as SQLite's julianday() makes of it, so stream mode and database mode see the same time."""
    at = now_ms() - now_ms() % 1000 - 86_400_000  # yesterday, to the second
    text = datetime.fromtimestamp(at / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    iso = datetime.fromtimestamp(at / 1000, timezone(timedelta(hours=1))).isoformat()
    sqlite = sqlite3.connect(":memory:").execute(f"SELECT {db.epoch_ms('?')}", (text,)).fetchone()[0]
    for given in (
        at,
        text,
        iso,
        text.replace(" ", "T") + "Z",
        datetime.fromtimestamp(at / 1000, UTC).replace(tzinfo=None),
    ):
        rec = video_record({"video_id": "J78aPJ3VyNs", "fetched_at": given}, "e1", now_ms())
        assert rec["fetched_at"] == at == sqlite, given
    assert video_record({"video_id": "J78aPJ3VyNs"}, "e1", now_ms())["fetched_at"] is None
    event = video_event(record(fetched_at=None))
    assert event.snapshot_at == event.created_at  # without one, the event's own time stands for it


def test_event_ids_are_fresh_128_bit_hex():
    ids = list(itertools.islice(new_event_ids(), 2500))  # across the pool's refills
    assert len(set(ids)) == 2500 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def edge_values(field: str) -> st.SearchStrategy:
    """Values of a VideoEvent field as the Avro reader gives them, crowded at and around every rule's edges."""
    now = now_ms()
    times = st.sampled_from([EARLIEST_MS - 1, EARLIEST_MS, now, now + DAY_MS - 5_000, now + DAY_MS + 60_000, 0])
    counts = st.sampled_from([None, -1, 0, 1, MAX_COUNT, MAX_COUNT + 1, 2**63 - 1])
    texts = st.one_of(st.none(), st.sampled_from(["", "x" * MAX_TEXT, "x" * (MAX_TEXT + 1), "é" * 3]), st.text())
    return {
        "event_id": st.one_of(st.sampled_from(["", "e" * 64, "e" * 65]), st.text(min_size=1, max_size=8)),
        "video_id": st.one_of(st.sampled_from(["J78aPJ3VyNs", "a" * 64, "a" * 65, "", "a\nb", "a b"]), st.text()),
        "created_at": times,
        "region": st.one_of(st.none(), st.sampled_from(["PL", "pl", "P", "PLX", "", "P\n", "Ǆ"]), st.text()),
        "title": texts,
        "thumbnail_url": texts,
        "view_count": counts,
        "likes": counts,
        "comments": counts,
        "fetched_at": st.one_of(st.none(), times),
    }[field]


@examples(max_examples=400, derandomize=True, deadline=None)
@hypothesis.given(data=st.data())
def test_a_batch_is_checked_as_each_of_its_records_would_be(data):
    """``video_events`` on columns gives what ``video_event`` gives record by record: the same events, the same
    reasons, whichever value of the batch breaks which rule (its column checks must imply the record's rules)."""
    rows = data.draw(st.integers(1, 4))
    region = data.draw(st.sampled_from(["PL", "pl", "gB"]))  # each valid: a record's region is upper-cased
    valid = {**record(region=region), "title": "t", "thumbnail_url": None, "view_count": 5, "likes": None}
    valid |= {"comments": 0, "fetched_at": now_ms()}
    columns = {f: [valid[f]] * rows for f in VIDEO_EVENT_FIELDS}
    for _ in range(data.draw(st.integers(1, 3))):  # a value or a few at a rule's edge, the rest valid
        field = data.draw(st.sampled_from(VIDEO_EVENT_FIELDS))
        columns[field][data.draw(st.integers(0, rows - 1))] = data.draw(edge_values(field))
    batch, one_by_one = video_events(columns), each(video_event, columns)
    assert [str(e) if isinstance(e, InvalidEvent) else e for e in batch] == [
        str(e) if isinstance(e, InvalidEvent) else e for e in one_by_one
    ]


class Text(str):
    pass


class Count(int):
    pass


def cron_values(at: int) -> list:
    """Values the hook may be handed in any field of a cron dict: each rule's edges, and other types and forms."""
    day = datetime.fromtimestamp(at / 1000 - 86_400, UTC)
    return [
        *(None, True, 1.0, 5.5, -1, 0, 1, MAX_COUNT, MAX_COUNT + 1, 2**63 - 1, Count(5), b"PL", ["PL"]),
        *(EARLIEST_MS - 1, EARLIEST_MS, float(EARLIEST_MS), at, at + DAY_MS + 60_000),
        *("", "PL", "pl", "P", "PLX", "P\n", "Ǆ", "ß", "x" * MAX_TEXT, "x" * (MAX_TEXT + 1), Text("PL")),
        *("\ud800", "é\udce9"),  # lone surrogates: no UTF-8
        *("J78aPJ3VyNs", "a" * 64, "a" * 65, "a\nb", "a b", "it's"),
        *(day, day.replace(tzinfo=None), day.date(), day.isoformat(), day.strftime("%Y-%m-%d %H:%M:%S")),
        *("last tuesday", "2004-12-31 23:59:59", datetime(2005, 1, 1, tzinfo=UTC)),
    ]


def test_the_hooks_batch_is_checked_as_each_of_its_items_would_be():
    """``video_columns`` on the cron's dicts gives exactly the records ``video_record`` gives item by item, or None
    where any item is refused (then the hook goes item by item, each with its reason): whichever value of whichever
    field, a value missing, an item not a dict; a batch of valid items in their usual forms is taken at once."""
    at = now_ms()
    text = datetime.fromtimestamp(at / 1000 - 3600, UTC).strftime("%Y-%m-%d %H:%M:%S")  # as the cron writes it

    def same(items: list) -> bool:
        ids = [f"e{i}" for i in range(len(items))]
        batch = video_columns(items, ids, at)
        try:
            records = [video_record(item, i, at) for item, i in zip(items, ids, strict=True)]
        except (InvalidEvent, AttributeError):
            return batch is None
        return batch is None or batch == {f: [r[f] for r in records] for f in records[0]}

    for when in (None, at - 5_000, text, datetime.now(UTC)):
        for region in (None, "PL", "pl"):
            valid = {"video_id": "J78aPJ3VyNs", "region": region, "title": "t", "thumbnail_url": None}
            valid |= {"view_count": 5, "likes": None, "comments": 0, "fetched_at": when}
            assert video_columns([valid], ["e1"], at) is not None and same([valid, dict(valid)])
            for position in (0, 1):  # the odd item first or last
                for field in (*CRON_FIELDS, "extra"):
                    for value in cron_values(at):
                        items = [dict(valid), dict(valid)]
                        items[position][field] = value
                        assert same(items), (field, value, position)
                    items = [dict(valid), dict(valid)]
                    del items[position][field if field != "extra" else "video_id"]
                    assert same(items), (field, "missing", position)
                for odd in (None, "J78aPJ3VyNs", ["video_id"]):
                    assert same([valid, odd] if position else [odd, valid])
    one_time = [{"video_id": "J78aPJ3VyNs", "fetched_at": at}, {"video_id": "J78aPJ3VyNs", "fetched_at": float(at)}]
    assert same(one_time)  # equal values of two types: one taken, one refused


def test_the_hooks_stale_ids_are_taken_at_once_only_when_each_is_a_video_id():
    at = now_ms()
    assert stale_columns(["J78aPJ3VyNs", "abc"], ["e1", "e2"], at) == {
        f: [stale_record(v, e, at)[f] for v, e in (("J78aPJ3VyNs", "e1"), ("abc", "e2"))]
        for f in ("event_id", "video_id", "created_at")
    }
    for bad in ("a\nb", "", "a b", 5, None, "a" * 65):
        assert stale_columns(["J78aPJ3VyNs", bad], ["e1", "e2"], at) is None, bad


VIDEO_ID = "expected 1-64 of A-Z a-z 0-9 _ -"
COUNT = f"expected 0..{MAX_COUNT}"
TEXT = f"expected at most {MAX_TEXT} characters"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("event_id", "", "invalid event_id: expected 1-64 characters"),
        ("event_id", "e" * 65, "invalid event_id: expected 1-64 characters"),
        ("video_id", "!" + "a" * 37, f"invalid video_id '!{'a' * 37}': {VIDEO_ID}"),  # shown whole: 40 characters
        ("video_id", "!" + "a" * 38, f"invalid video_id '!{'a' * 38}... (39 chars): {VIDEO_ID}"),  # cut at 40
        ("video_id", 10**50, f"invalid video_id 1{'0' * 39}... (51 chars): {VIDEO_ID}"),  # not a string: its repr's
        ("created_at", 2**62, "invalid created_at 4611686018427387904 ms: outside 2005..tomorrow"),
        ("created_at", EARLIEST_MS - 1, "invalid created_at 2004-12-31T23:59:59.999000+00:00: outside 2005..tomorrow"),
        ("region", "P1", "invalid region 'P1': expected [A-Z]{2}"),
        ("title", "t" * (MAX_TEXT + 1), f"invalid title '{'t' * 39}... ({MAX_TEXT + 1} chars): {TEXT}"),
        ("thumbnail_url", 5, f"invalid thumbnail_url 5: {TEXT}"),
        ("view_count", True, f"invalid view_count True: {COUNT}"),
        ("likes", "5", f"invalid likes '5': {COUNT}"),
        ("comments", MAX_COUNT + 1, f"invalid comments {MAX_COUNT + 1}: {COUNT}"),
        ("fetched_at", "x" * 50, f"invalid fetched_at '{'x' * 40}': not a time"),
        ("title", "caf\udce9", "invalid title 'caf\\udce9': not UTF-8 text (a lone surrogate)"),
    ],
)
def test_a_refusal_names_the_field_shows_its_value_and_says_the_rule(field, value, reason):
    """The dead letter's reason, exactly: the field, at most 40 characters of its value, what is allowed. The hook
    (``video_record``, from a cron dict) and every reader (``video_event``) give the same one."""
    with pytest.raises(InvalidEvent) as refused:
        video_event(record(**{field: value}))
    assert str(refused.value) == reason
    if field not in ("event_id", "created_at"):  # the hook makes these two itself
        with pytest.raises(InvalidEvent) as refused:
            video_record({"video_id": "J78aPJ3VyNs", field: value}, "e1", now_ms())
        assert str(refused.value) == reason


def test_a_cron_dict_becomes_the_record_and_the_event_readers_get():
    """Every field the cron gives reaches the record under its own name, and back out as the same event."""
    at = now_ms()
    item = {"video_id": "J78aPJ3VyNs", "region": "se", "title": "t", "thumbnail_url": "https://i.ytimg.com/x.jpg"}
    item |= {"view_count": 10, "likes": 2, "comments": 1, "fetched_at": at - 1000, "extra": "ignored"}
    rec = video_record(item, "e1", at)
    assert rec == {
        "event_id": "e1",
        "video_id": "J78aPJ3VyNs",
        "created_at": at,
        "region": "SE",
        "title": "t",
        "thumbnail_url": "https://i.ytimg.com/x.jpg",
        "view_count": 10,
        "likes": 2,
        "comments": 1,
        "fetched_at": at - 1000,
    }
    assert video_event(rec) == VideoEvent(
        "e1", "J78aPJ3VyNs", at, "SE", "t", "https://i.ytimg.com/x.jpg", 10, 2, 1, at - 1000
    )
    stale = stale_record("J78aPJ3VyNs", "e2", at)
    assert stale_check_event(stale) == StaleCheckEvent("e2", "J78aPJ3VyNs", at)
    with pytest.raises(InvalidEvent, match=r"invalid video_id '\.\./etc'"):
        stale_record("../etc", "e3", at)


def test_a_time_is_taken_from_2005_to_exactly_a_day_ahead_of_the_clock(monkeypatch):
    before, now, after = time.time_ns() // 1_000_000, now_ms(), time.time_ns() // 1_000_000
    assert before <= now <= after  # milliseconds since the epoch, as every time in an event
    monkeypatch.setattr(events, "now_ms", lambda: now)
    for at in (EARLIEST_MS, now + DAY_MS):
        assert video_event(record(created_at=at, fetched_at=at)).created_at == at
    for at in (EARLIEST_MS - 1, now + DAY_MS + 1):
        with pytest.raises(InvalidEvent, match=r"outside 2005\.\.tomorrow"):
            video_event(record(created_at=at))
        with pytest.raises(InvalidEvent, match="invalid fetched_at"):
            video_event(record(fetched_at=at))


@pytest.fixture
def far_from_utc(monkeypatch):
    """The machine's local time 5 h 30 min from UTC (a POSIX zone, no tz database needed)."""
    monkeypatch.setenv("TZ", "XST-05:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_times_are_utc_whatever_the_machines_zone(far_from_utc):
    """A snapshot's time without a zone is UTC (the cron's text), and a reason shows a time in UTC."""
    at = now_ms() - now_ms() % 1000 - DAY_MS
    text = datetime.fromtimestamp(at / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    naive = datetime.fromtimestamp(at / 1000, UTC).replace(tzinfo=None)
    for given in (text, naive):
        assert video_record({"video_id": "J78aPJ3VyNs", "fetched_at": given}, "e1", now_ms())["fetched_at"] == at
    with pytest.raises(InvalidEvent, match=r"invalid created_at 2004-12-31T23:59:59.999000\+00:00: outside"):
        video_event(record(created_at=EARLIEST_MS - 1))


def test_event_ids_are_the_systems_random_bytes_each_used_once(monkeypatch):
    """Each id is 16 bytes of its own from the OS, in hex: none overlaps another, none is left out."""
    drawn: list[bytes] = []
    urandom = os.urandom
    monkeypatch.setattr(os, "urandom", lambda n: drawn.append(urandom(n)) or drawn[-1])
    ids = list(itertools.islice(new_event_ids(), 2500))
    assert [len(d) for d in drawn] == [16_000] * 3 and "".join(ids) == b"".join(drawn).hex()[: 2500 * 32]
    assert events.event_ids(0) == [] and len(drawn) == 3  # none asked: none made, nothing drawn


def test_a_reason_producers_write_is_cut_to_what_readers_take():
    assert clip(None) is None and clip("r" * MAX_TEXT) == "r" * MAX_TEXT
    assert clip("r" * (MAX_TEXT + 1)) == "r" * (MAX_TEXT - 3) + "..."


def test_a_batch_at_every_rules_edge_is_made_straight_from_its_columns(monkeypatch):
    """Values at each rule's very edge pass the column checks: the batch is not parsed record by record."""
    now = now_ms()
    monkeypatch.setattr(events, "now_ms", lambda: now)
    columns = {
        "event_id": ["e", "e" * 64],
        "video_id": ["a", "a" * 64],
        "created_at": [EARLIEST_MS, now + DAY_MS],
        "region": [None, "PL"],
        "title": ["", "t" * MAX_TEXT],
        "thumbnail_url": [None, "u" * MAX_TEXT],
        "view_count": [0, MAX_COUNT],
        "likes": [None, MAX_COUNT],
        "comments": [0, None],
        "fetched_at": [None, now + DAY_MS],
    }
    expected = [VideoEvent(*row) for row in zip(*columns.values(), strict=True)]
    assert each(video_event, columns) == expected
    monkeypatch.setattr(events, "each", lambda *_: pytest.fail("parsed record by record"))
    assert video_events(columns) == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", "e" * 65),
        ("title", "t" * (MAX_TEXT + 1)),
        ("thumbnail_url", "u" * (MAX_TEXT + 1)),
        ("fetched_at", EARLIEST_MS - 1),
    ],
)
def test_a_value_just_past_a_rules_edge_is_refused_in_a_batch_as_alone(field, value):
    valid = {**record(region="PL"), "title": "t", "thumbnail_url": "u", "view_count": 5, "likes": None}
    valid |= {"comments": 0, "fetched_at": None}
    past = valid | {field: value}
    taken, refused = video_events({f: [valid[f], past[f]] for f in VIDEO_EVENT_FIELDS})
    assert taken == video_event(valid)
    with pytest.raises(InvalidEvent) as alone:
        video_event(past)
    assert isinstance(refused, InvalidEvent) and str(refused) == str(alone.value)


def test_the_hooks_batch_of_valid_items_is_taken_at_once_whatever_mix_of_forms():
    """Texts and counts present in some items and None in others, an empty title, and a snapshot's time in each of
    the forms the hook takes: still one batch, the records ``video_record`` gives item by item."""
    at = now_ms()
    text = datetime.fromtimestamp(at / 1000 - 3600, UTC).strftime("%Y-%m-%d %H:%M:%S")
    items = [
        {"video_id": "a", "region": "pl", "title": "", "thumbnail_url": "u", "view_count": 0, "fetched_at": at - 5},
        {"video_id": "b", "region": None, "title": None, "likes": 3, "comments": None, "fetched_at": text},
        {"video_id": "c", "region": "SE", "title": "t", "thumbnail_url": None, "view_count": None, "comments": 7},
        {"video_id": "d", "fetched_at": datetime.now(UTC) - timedelta(hours=1)},
    ]
    ids = [f"e{i}" for i in range(len(items))]
    records = [video_record(item, i, at) for item, i in zip(items, ids, strict=True)]
    assert video_columns(items, ids, at) == {f: [r[f] for r in records] for f in records[0]}


def test_a_batch_keeps_each_refusal_in_its_records_place_and_takes_no_ragged_columns():
    at = now_ms()
    columns = {"event_id": ["e1", "e2", "e3"], "video_id": ["a", "b c", "d"], "created_at": [at, at, at]}
    first, refused, last = stale_check_events(columns)
    assert (first, last) == (StaleCheckEvent("e1", "a", at), StaleCheckEvent("e3", "d", at))
    assert isinstance(refused, InvalidEvent) and str(refused) == f"invalid video_id 'b c': {VIDEO_ID}"
    with pytest.raises(ValueError, match="zip"):  # a decoder's bug, never records silently dropped
        stale_check_events({**columns, "created_at": [at, at]})
    video = dict.fromkeys(VIDEO_EVENT_FIELDS) | record()
    for parse, valid in ((video_events, video), (events.result_events, result("liveness", None, {}))):
        for short in valid:  # valid records, one column a record short
            with pytest.raises(ValueError, match="zip"):
                parse({f: [valid[f]] * (1 if f == short else 2) for f in valid})


DETAILS = {
    "scoring": {"score": 50.0, "label": "NORMAL", "velocity": 10, "engagement": 1.5, "region": "PL", "reason": None},
    "thumbnails": {"status": "valid", "width": 320, "height": 180, "http_status": 200, "reason": None, "attempts": 1},
    "liveness": {"status": "alive", "http_status": 200, "reason": None, "attempts": 1},
}


def result(group: str, detail: dict | None, changes: dict) -> dict:
    """A result as the sink reads it back (fastavro gives the detail's union branch as a plain dict)."""
    base = {"event_id": "e1", "video_id": "J78aPJ3VyNs", "group": group, "event_at": now_ms() - 1000}
    return base | {"processed_at": now_ms(), "stored": False, "detail": DETAILS[group] | (detail or {})} | changes


@pytest.mark.parametrize(
    ("group", "detail", "changes"),
    [
        ("scoring", {"score": 0, "engagement": 0, "velocity": -5, "region": None, "reason": "r" * MAX_TEXT}, {}),
        ("scoring", {"score": 100.0, "label": "VIRAL", "engagement": 1e308, "region": "R" * MAX_TEXT}, {}),
        ("thumbnails", {"width": 2**31 - 1, "height": 0, "http_status": 100, "attempts": 100}, {"event_at": 0}),
        ("thumbnails", {"status": "error", "width": None, "height": None, "http_status": None}, {"stored": True}),
        ("liveness", {"status": "unknown", "http_status": 999, "attempts": 1}, {"event_id": "e" * 64}),
    ],
)
def test_a_result_at_every_rules_edge_is_taken_as_written(group, detail, changes):
    rec = result(group, detail, changes)
    taken = events.result_event(rec)
    assert (taken.event_id, taken.video_id, taken.group, taken.event_at, taken.stored, taken.detail) == (
        rec["event_id"],
        rec["video_id"],
        group,
        rec["event_at"],
        rec["stored"],
        rec["detail"],
    )
    assert events.result_events({f: [rec[f], rec[f]] for f in rec}) == [taken, taken]


@pytest.mark.parametrize(
    ("group", "detail", "changes", "reason"),
    [
        ("thumbnails", None, {"event_at": False}, "invalid event_at False: not a timestamp"),
        ("thumbnails", None, {"event_at": 0.0}, "invalid event_at 0.0: not a timestamp"),
        ("thumbnails", None, {"processed_at": None}, "invalid processed_at None: not a timestamp"),
        (
            "thumbnails",
            None,
            {"group": "other"},
            "invalid group 'other': expected one of scoring, thumbnails, liveness",
        ),
        ("thumbnails", None, {"stored": "yes"}, "invalid stored 'yes': expected true or false"),
        ("thumbnails", None, {"event_id": "e" * 65}, "invalid event_id: expected 1-64 characters"),
        ("thumbnails", None, {"video_id": "a b"}, f"invalid video_id 'a b': {VIDEO_ID}"),
        (
            "thumbnails",
            None,
            {"detail": DETAILS["liveness"]},
            "a thumbnails result carries LivenessDetail as its detail: expected ThumbnailDetail",
        ),
        (
            "scoring",
            None,
            {"detail": None},
            "a scoring result carries an unknown record as its detail: expected ScoreDetail",
        ),
        ("scoring", {"score": -0.5}, {}, "invalid score -0.5: expected 0..100"),
        ("scoring", {"score": 100.5}, {}, "invalid score 100.5: expected 0..100"),
        ("scoring", {"score": True}, {}, "invalid score True: expected 0..100"),
        ("scoring", {"score": "50"}, {}, "invalid score '50': expected 0..100"),
        ("scoring", {"label": "viral"}, {}, "invalid label 'viral': expected one of VIRAL, TRENDING, NORMAL"),
        ("scoring", {"velocity": None}, {}, "invalid velocity None: expected a whole number"),
        ("scoring", {"velocity": 1.5}, {}, "invalid velocity 1.5: expected a whole number"),
        ("scoring", {"engagement": float("inf")}, {}, "invalid engagement inf: expected 0..1.79769e+308"),
        ("scoring", {"engagement": -1e-9}, {}, "invalid engagement -1e-09: expected 0..1.79769e+308"),
        ("scoring", {"region": 5}, {}, f"invalid region 5: {TEXT}"),
        ("scoring", {"reason": "r" * (MAX_TEXT + 1)}, {}, f"invalid reason '{'r' * 39}... (2049 chars): {TEXT}"),
        (
            "thumbnails",
            {"status": "VALID"},
            {},
            "invalid status 'VALID': expected one of valid, placeholder, broken, error",
        ),
        ("thumbnails", {"width": 2**31}, {}, "invalid width 2147483648: expected 0..2147483647"),
        ("thumbnails", {"width": -1}, {}, "invalid width -1: expected 0..2147483647"),
        ("thumbnails", {"height": -1}, {}, "invalid height -1: expected 0..2147483647"),
        ("thumbnails", {"height": 2**31}, {}, "invalid height 2147483648: expected 0..2147483647"),
        ("thumbnails", {"http_status": 1000}, {}, "invalid http_status 1000: expected 100..999"),
        ("thumbnails", {"http_status": True}, {}, "invalid http_status True: expected 100..999"),
        ("thumbnails", {"attempts": None}, {}, "invalid attempts None: expected 1..100"),
        ("thumbnails", {"attempts": 0}, {}, "invalid attempts 0: expected 1..100"),
        ("thumbnails", {"reason": 7}, {}, f"invalid reason 7: {TEXT}"),
        ("liveness", {"status": "gone"}, {}, "invalid status 'gone': expected one of alive, deleted, private, unknown"),
        ("liveness", {"http_status": 99}, {}, "invalid http_status 99: expected 100..999"),
        ("liveness", {"attempts": 101}, {}, "invalid attempts 101: expected 1..100"),
        ("liveness", {"reason": "r" * (MAX_TEXT + 1)}, {}, f"invalid reason '{'r' * 39}... (2049 chars): {TEXT}"),
    ],
)
def test_a_results_refusal_names_the_field_and_the_rule(group, detail, changes, reason):
    """What the sink dead-letters a result for, exactly (``tests/test_boundaries.py`` has it end to end)."""
    rec = result(group, detail, changes)
    with pytest.raises(InvalidEvent) as refused:
        events.result_event(rec)
    assert str(refused.value) == reason
    assert [str(e) for e in events.result_events({f: [rec[f]] for f in rec})] == [reason]


def result_edge_values(field: str) -> st.SearchStrategy:
    """Values of a result's field, or of its detail's, at and around every rule's edges, and of the wrong types."""
    now = now_ms()
    times = st.sampled_from([EARLIEST_MS - 1, EARLIEST_MS, now, now + DAY_MS + 60_000, 0, False, 0.0, None, 2**70])
    texts = st.one_of(st.none(), st.sampled_from(["", "x" * MAX_TEXT, "x" * (MAX_TEXT + 1), 7]), st.text())
    wrong = st.sampled_from([None, True, 1.5, "5", 2**31, -1])
    reals = st.sampled_from([0.0, 100.0, 100.5, -1e-9, 1e308, float("inf"), float("nan"), 50, True, "5", None])
    return {
        "event_id": st.one_of(st.sampled_from(["", "e" * 64, "e" * 65, 5]), st.text(min_size=1, max_size=8)),
        "video_id": st.one_of(st.sampled_from(["J78aPJ3VyNs", "a" * 64, "a" * 65, "", "a\nb", "a b", 5]), st.text()),
        "group": st.sampled_from(["scoring", "thumbnails", "liveness", "other", None]),
        "event_at": times,
        "processed_at": times,
        "stored": st.sampled_from([True, False, 1, 0, None, "yes"]),
        "detail": st.sampled_from([*DETAILS.values(), None, {}, "x", {**DETAILS["liveness"], "extra": 1}]).map(
            lambda d: dict(d) if isinstance(d, dict) else d  # a copy: the rows' details are changed in place
        ),
        "score": reals,
        "engagement": reals,
        "velocity": st.one_of(wrong, st.integers()),
        "label": st.sampled_from(["VIRAL", "viral", None, 5]),
        "region": texts,
        "reason": texts,
        "status": st.sampled_from(["valid", "alive", "error", "unknown", "VALID", None, 5]),
        "http_status": st.one_of(wrong, st.sampled_from([99, 100, 999, 1000])),
        "attempts": st.one_of(wrong, st.sampled_from([0, 1, 100, 101])),
        "width": st.one_of(wrong, st.sampled_from([0, 2**31 - 1])),
        "height": st.one_of(wrong, st.sampled_from([0, 2**31 - 1])),
    }[field]


@examples(max_examples=600, derandomize=True, deadline=None)
@hypothesis.given(data=st.data())
def test_a_batch_of_results_is_checked_as_each_of_its_records_would_be(data):
    """``result_events`` on columns gives what ``result_event`` gives record by record: the same results, the same
    reasons, whichever value of the batch breaks which rule, in a batch of one group or of several."""
    rows = data.draw(st.integers(1, 4))
    records = [result(data.draw(st.sampled_from(list(DETAILS))), None, {}) for _ in range(rows)]
    records = [r | {"detail": dict(r["detail"]), "event_at": r["event_at"] - i} for i, r in enumerate(records)]
    for _ in range(data.draw(st.integers(1, 3))):  # a value or a few at a rule's edge, the rest valid
        row = records[data.draw(st.integers(0, rows - 1))]
        field = data.draw(st.sampled_from([*row, *row["detail"]] if isinstance(row["detail"], dict) else [*row]))
        (row if field in row else row["detail"])[field] = data.draw(result_edge_values(field))
    columns = {f: [r[f] for r in records] for f in records[0]}
    batch, one_by_one = events.result_events(columns), each(events.result_event, columns)
    assert [str(e) if isinstance(e, InvalidEvent) else e for e in batch] == [
        str(e) if isinstance(e, InvalidEvent) else e for e in one_by_one
    ]


def test_a_batch_of_results_at_every_rules_edge_is_made_straight_from_its_columns(monkeypatch):
    """Results of every group at each rule's very edge, as the Avro reader gives them, pass the column checks."""
    now = now_ms()
    monkeypatch.setattr(events, "now_ms", lambda: now)
    edges = [
        ("scoring", {"score": 0.0, "engagement": 0.0, "velocity": -5, "region": None, "reason": "r" * MAX_TEXT}, {}),
        ("scoring", {"score": 100.0, "label": "VIRAL", "engagement": 1e308, "region": "R" * MAX_TEXT}, {}),
        ("thumbnails", {"width": 2**31 - 1, "height": 0, "http_status": 100, "attempts": 100}, {"event_at": 0}),
        ("thumbnails", {"status": "error", "width": None, "height": None, "http_status": None}, {"stored": True}),
        ("liveness", {"status": "unknown", "http_status": 999, "attempts": 1}, {"event_id": "e" * 64}),
        ("liveness", {"reason": ""}, {"event_at": EARLIEST_MS, "processed_at": now + DAY_MS, "video_id": "a" * 64}),
        ("scoring", {"label": "TRENDING"}, {"event_id": "e"}),  # with the two above, every label in one batch
        ("thumbnails", {"status": "placeholder"}, {}),
        ("thumbnails", {"status": "broken"}, {}),  # with the two above, every status of the group in one batch
    ]
    records = [result(group, detail, changes) for group, detail, changes in edges]
    batches = [  # every group; one, as a member writes it; two
        records,
        [r for r in records if r["group"] == "thumbnails"],
        [r for r in records if r["group"] != "thumbnails"],
    ]
    columns = [{f: [r[f] for r in batch] for f in batch[0]} for batch in batches]
    expected = [each(events.result_event, c) for c in columns]
    assert not [e for results in expected for e in results if isinstance(e, InvalidEvent)]
    monkeypatch.setattr(events, "each", lambda *_: pytest.fail("parsed record by record"))
    assert [events.result_events(c) for c in columns] == expected


@pytest.mark.parametrize("field", ["score", "engagement"])
def test_a_nan_behind_valid_values_is_refused_in_a_batch_as_alone(field):
    """The least and greatest of a column holding a NaN are whatever came first: NaN is ruled out before them."""
    valid, nan = result("scoring", None, {}), result("scoring", {field: float("nan")}, {})
    taken, refused = events.result_events({f: [valid[f], nan[f]] for f in valid})
    assert taken == events.result_event(valid)
    assert str(refused) == f"invalid {field} nan: expected 0..{100 if field == 'score' else sys.float_info.max:g}"
