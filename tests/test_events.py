"""Event validation: every malformed field gets a clear reason."""

from __future__ import annotations

import itertools
import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import hypothesis
import pytest
from hypothesis import settings as examples
from hypothesis import strategies as st

from vvv_core import db
from vvv_core.events import (
    DAY_MS,
    EARLIEST_MS,
    MAX_COUNT,
    MAX_TEXT,
    VIDEO_EVENT_FIELDS,
    InvalidEvent,
    each,
    new_event_ids,
    now_ms,
    stale_check_event,
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
