"""Event validation: every malformed field gets a clear reason."""

from __future__ import annotations

import itertools

import pytest

from vvv_core.events import InvalidEvent, new_event_ids, now_ms, stale_check_event, video_event, video_record


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


def test_event_ids_are_fresh_128_bit_hex():
    ids = list(itertools.islice(new_event_ids(), 2500))  # across the pool's refills
    assert len(set(ids)) == 2500 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
