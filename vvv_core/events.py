"""The events on the topics, as typed values, and the checks every event passes.

A record that decodes but breaks these rules (an id with SQL metacharacters, a 500-character
region, a count of 2**63-1, a timestamp in the year 9999) raises InvalidEvent with a reason;
the runtime dead-letters it. Producers build records here too, so both sides agree.

Results read back from the results topic (by the sink) are as hostile as events: a schema-valid
record can still be inconsistent (a ``thumbnails`` result carrying a ``LivenessDetail``), absurd
(negative sizes, a NaN score), far in the future (which would pin a verdict: a newer check never
replaces it) or huge (a 5 MB reason). Each is refused here with its reason.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from operator import itemgetter
from typing import Any

from vvv_core.errors import InvalidInput

VIDEO_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # YouTube's are 11 of these; room for other platforms
REGION = re.compile(r"[A-Z]{2}")
# The same rules for a whole column of values at once, one per line (neither pattern takes a newline)
VIDEO_IDS, REGIONS = (re.compile(rf"(?:{p.pattern}\n)*{p.pattern}") for p in (VIDEO_ID, REGION))
MAX_COUNT = 10**13  # above any real view count; 2**63-1 is a glitch, not a video
EARLIEST_MS = int(datetime(2005, 1, 1, tzinfo=UTC).timestamp() * 1000)  # YouTube's first year
DAY_MS = 86_400_000
MAX_TEXT = 2048  # titles, URLs, regions, reasons: what producers write is cut to it, what readers get beyond it refused
MAX_ATTEMPTS = 100  # the most any group tries an event (VVV_*_ATTEMPTS)
HTTP_STATUSES = range(100, 1000)  # what http.client takes from a server: 100-999
INT_MAX = 2**31 - 1  # Avro's int
# The detail branches of the Result schema, by group, told apart by their fields: fastavro returns a
# union's record as a plain dict, and the reader schema gives each branch every one of its fields,
# whatever the writer wrote, so the field set names the branch exactly (no two are the same; a test
# checks these against result.avsc). Chosen over fastavro's return_record_name: the decoder is shared by
# every reader, and the fields are what the sink goes on to use anyway.
DETAIL_FIELDS = {
    "scoring": frozenset({"score", "label", "velocity", "engagement", "region", "reason"}),
    "thumbnails": frozenset({"status", "width", "height", "http_status", "reason", "attempts"}),
    "liveness": frozenset({"status", "http_status", "reason", "attempts"}),
}
DETAIL_NAMES = {"scoring": "ScoreDetail", "thumbnails": "ThumbnailDetail", "liveness": "LivenessDetail"}
STATUSES = {
    "scoring": ("VIRAL", "TRENDING", "NORMAL"),  # its label
    "thumbnails": ("valid", "placeholder", "broken", "error"),
    "liveness": ("alive", "deleted", "private", "unknown"),
}


class InvalidEvent(InvalidInput):
    """A decodable record that is not a valid event; the message is the dead-letter reason."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def event_ids(count: int) -> list[str]:
    """``count`` fresh event ids, 128 random bits each like a uuid4's, drawn from the OS in one call."""
    return os.urandom(16 * count).hex(" ", 16).split(" ") if count else []


def new_event_ids() -> Iterator[str]:
    """Fresh event ids, drawn from the OS 1,000 at a time."""
    while True:
        yield from event_ids(1000)


@dataclass(slots=True)  # not frozen: see vvv_core.runtime.model
class VideoEvent:
    event_id: str
    video_id: str
    created_at: int  # ms since the epoch
    region: str | None = None
    title: str | None = None
    thumbnail_url: str | None = None
    view_count: int | None = None
    likes: int | None = None
    comments: int | None = None
    fetched_at: int | None = None  # ms since the epoch: when the cron fetched the snapshot it announces

    @property
    def snapshot_at(self) -> int:
        """The snapshot's own time: when it was fetched, or else (an older producer) when it was published."""
        return self.created_at if self.fetched_at is None else self.fetched_at


VIDEO_EVENT_FIELDS = tuple(VideoEvent.__dataclass_fields__)


@dataclass(slots=True)  # not frozen: see vvv_core.runtime.model
class StaleCheckEvent:
    event_id: str
    video_id: str
    created_at: int  # ms since the epoch


@dataclass(slots=True)  # not frozen: see vvv_core.runtime.model
class ResultEvent:
    """A result read back from the results topic (by the sink)."""

    event_id: str
    video_id: str
    group: str
    event_at: int  # the source event's created_at, ms; 0 in results written before it was recorded
    stored: bool  # already in the cron database: its member ran in direct mode
    detail: dict[str, Any]


def _video_id(value: Any) -> str:
    if not isinstance(value, str) or not VIDEO_ID.fullmatch(value):
        raise InvalidEvent(f"invalid video_id {_shown(value)}: expected 1-64 of A-Z a-z 0-9 _ -")
    return value


def _event_id(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise InvalidEvent("invalid event_id: expected 1-64 characters")
    return value


def _created_at(value: Any, name: str = "created_at") -> int:
    """Milliseconds since the epoch, from 2005 to a day ahead of this machine's clock."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(f"invalid {name} {_shown(value)}: not a timestamp")
    if not EARLIEST_MS <= value <= now_ms() + DAY_MS:
        try:
            shown = datetime.fromtimestamp(value / 1000, UTC).isoformat()
        except (OverflowError, ValueError, OSError):
            shown = f"{value} ms"
        raise InvalidEvent(f"invalid {name} {shown}: outside 2005..tomorrow")
    return value


def _shown(value: Any) -> str:
    """A value as a reason shows it: at most 40 characters of it."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:40]}... ({len(value) if isinstance(value, str) else len(text)} chars)"


def _fetched_at(value: Any) -> int | None:
    """A snapshot's time as the hook takes it: milliseconds since the epoch, a ``datetime`` (naive is UTC),
    or the text the cron writes (``2026-11-28 10:00:00``, ISO 8601 with ``T``, ``Z`` or an offset); None."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidEvent(f"invalid fetched_at {value[:40]!r}: not a time") from None
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        value = round(value.timestamp() * 1000)
    return _created_at(value, "fetched_at")


def _count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise InvalidEvent(f"invalid {name} {value!r}: expected 0..{MAX_COUNT}")
    return value


def _text(name: str, value: Any, pattern: re.Pattern[str] | None = None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT or (pattern and not pattern.fullmatch(value)):
        expected = f"expected {pattern.pattern}" if pattern else f"expected at most {MAX_TEXT} characters"
        raise InvalidEvent(f"invalid {name} {_shown(value)}: {expected}")
    if not _utf8(value):
        raise InvalidEvent(f"invalid {name} {_shown(value)}: not UTF-8 text (a lone surrogate)")
    return value


def _utf8(text: str) -> bool:
    """Text Avro can carry: a string a bad decode left a lone surrogate in cannot be written, and an event kept
    in the outbox that cannot be encoded would hold back every event after it."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def clip(text: str | None) -> str | None:
    """A reason as producers write it: cut to ``MAX_TEXT``, which readers refuse beyond (it may quote a URL)."""
    return text if text is None or len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


def _number(name: str, value: Any, allowed: range | None = None, optional: bool = True) -> int | None:
    """A whole number within ``allowed`` (or any), or None where ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or (allowed is not None and value not in allowed):
        bounds = f"{allowed.start}..{allowed.stop - 1}" if allowed is not None else "a whole number"
        raise InvalidEvent(f"invalid {name} {_shown(value)}: expected {bounds}")
    return value


def _real(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:  # NaN fails too
        raise InvalidEvent(f"invalid {name} {_shown(value)}: expected {low:g}..{high:g}")
    return float(value)


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidEvent(f"invalid {name} {_shown(value)}: expected one of {', '.join(allowed)}")
    return value


def _detail(group: str, detail: Any) -> dict[str, Any]:
    """The result's detail, checked against its group: the branch its fields name, every field in range."""
    fields = frozenset(detail) if isinstance(detail, dict) else frozenset()
    if fields != DETAIL_FIELDS[group]:
        branch = next((DETAIL_NAMES[g] for g, f in DETAIL_FIELDS.items() if f == fields), "an unknown record")
        raise InvalidEvent(f"a {group} result carries {branch} as its detail: expected {DETAIL_NAMES[group]}")
    if group == "scoring":
        _real("score", detail["score"], 0, 100)
        _one_of("label", detail["label"], STATUSES[group])
        _number("velocity", detail["velocity"], optional=False)
        _real("engagement", detail["engagement"], 0, sys.float_info.max)
        _text("region", detail["region"])
    else:
        _one_of("status", detail["status"], STATUSES[group])
        _number("http_status", detail["http_status"], HTTP_STATUSES)
        _number("attempts", detail["attempts"], range(1, MAX_ATTEMPTS + 1), optional=False)
    if group == "thumbnails":
        _number("width", detail["width"], range(INT_MAX + 1))
        _number("height", detail["height"], range(INT_MAX + 1))
    _text("reason", detail["reason"])
    return detail


def video_event(record: dict[str, Any]) -> VideoEvent:
    region = record.get("region")
    return VideoEvent(
        event_id=_event_id(record.get("event_id")),
        video_id=_video_id(record.get("video_id")),
        created_at=_created_at(record.get("created_at")),
        region=_text("region", region.upper() if isinstance(region, str) else region, REGION),
        title=_text("title", record.get("title")),
        thumbnail_url=_text("thumbnail_url", record.get("thumbnail_url")),
        view_count=_count("view_count", record.get("view_count")),
        likes=_count("likes", record.get("likes")),
        comments=_count("comments", record.get("comments")),
        fetched_at=_fetched_at(record.get("fetched_at")),
    )


def each(parse: Callable[[dict[str, Any]], Any], columns: dict[str, list]) -> list[Any]:
    """``parse`` on each record of ``columns`` (one list per field): its event, or the InvalidEvent saying why not."""
    out: list[Any] = []
    for row in zip(*columns.values(), strict=True):
        try:
            out.append(parse(dict(zip(columns, row, strict=True))))
        except InvalidEvent as exc:
            out.append(exc)
    return out


def video_events(columns: dict[str, list]) -> list[VideoEvent | InvalidEvent]:
    """``video_event`` on a batch of records given as columns (as the runtime decodes them): where every value
    passes its column's check, each of which implies ``video_event``'s own rule (a test holds them to it), the
    events are made straight from the columns; otherwise record by record, each refused one with its reason."""
    c, latest = columns, now_ms() + DAY_MS
    if (
        _one_length(c)
        and _within(list(map(len, c["event_id"])), 1, 64)
        and _all_match(VIDEO_IDS, c["video_id"])
        and _within(c["created_at"], EARLIEST_MS, latest)
        and _all_match(REGIONS, _present(c["region"]))
        and all(_within(list(map(len, _present(c[f]))), 0, MAX_TEXT) for f in ("title", "thumbnail_url"))
        and all(_utf8("".join(_present(c[f]))) for f in ("title", "thumbnail_url"))
        and all(_within(_present(c[f]), 0, MAX_COUNT) for f in ("view_count", "likes", "comments"))
        and _within(_present(c["fetched_at"]), EARLIEST_MS, latest)
    ):
        return list(map(VideoEvent, *(c[f] for f in VIDEO_EVENT_FIELDS)))
    return each(video_event, columns)


def _one_length(columns: dict[str, list]) -> bool:
    """Every column as long as the others: ragged columns (a decoder's bug) are left to ``each``, which raises on
    them, since events made straight from them would silently lose the records past the shortest column."""
    return len(set(map(len, columns.values()))) <= 1


def _present(values: list) -> list:
    return [v for v in values if v is not None]


def _within(values: list[int], low: int, high: int) -> bool:
    """Every value (ints, as the Avro reader gives a long) within ``low..high``; none at all is fine."""
    return not values or (low <= min(values) and max(values) <= high)


def _all_match(pattern: re.Pattern[str], values: list[str]) -> bool:
    """Every value matches ``pattern``'s line (a value holding a newline would pass as two lines: counted out)."""
    joined = "\n".join(values)
    return not values or (joined.count("\n") == len(values) - 1 and pattern.fullmatch(joined) is not None)


def stale_check_event(record: dict[str, Any]) -> StaleCheckEvent:
    return StaleCheckEvent(
        event_id=_event_id(record.get("event_id")),
        video_id=_video_id(record.get("video_id")),
        created_at=_created_at(record.get("created_at")),
    )


def result_event(record: dict[str, Any]) -> ResultEvent:
    """A result from the results topic, checked whole: its times within the events' window (``event_at`` 0 in
    results written before it existed), its group known, its detail that group's and every field in range."""
    event_at = record.get("event_at")
    if event_at != 0 or type(event_at) is not int:
        _created_at(event_at, "event_at")
    _created_at(record.get("processed_at"), "processed_at")
    group = _one_of("group", record.get("group"), tuple(DETAIL_FIELDS))
    if not isinstance(stored := record.get("stored"), bool):
        raise InvalidEvent(f"invalid stored {_shown(stored)}: expected true or false")
    return ResultEvent(
        event_id=_event_id(record.get("event_id")),
        video_id=_video_id(record.get("video_id")),
        group=group,
        event_at=event_at,
        stored=stored,
        detail=_detail(group, record.get("detail")),
    )


def video_record(item: dict[str, Any], event_id: str, created_at: int) -> dict[str, Any]:
    """The Avro record for one of the cron's new-video dicts (validated: raises InvalidEvent); its
    ``fetched_at`` is the snapshot's time (see ``_fetched_at``), or None: then scoring in stream mode
    takes the event's ``created_at`` for it."""
    region = item.get("region")
    return {
        "event_id": event_id,
        "video_id": _video_id(item.get("video_id")),
        "created_at": created_at,
        "region": _text("region", region.upper() if isinstance(region, str) else region, REGION),
        "title": _text("title", item.get("title")),
        "thumbnail_url": _text("thumbnail_url", item.get("thumbnail_url")),
        "view_count": _count("view_count", item.get("view_count")),
        "likes": _count("likes", item.get("likes")),
        "comments": _count("comments", item.get("comments")),
        "fetched_at": _fetched_at(item.get("fetched_at")),
    }


def stale_record(video_id: Any, event_id: str, created_at: int) -> dict[str, Any]:
    return {"event_id": event_id, "video_id": _video_id(video_id), "created_at": created_at}


COUNT_FIELDS = ("view_count", "likes", "comments")
CRON_FIELDS = ("video_id", "region", "title", "thumbnail_url", "view_count", "likes", "comments", "fetched_at")
NONE = type(None)
_TEXTS, _INTS = {str, NONE}, {int, NONE}
_TIMES = {int, str, datetime, NONE}  # between these types, equal values are the same time (1 == 1.0 is kept out)


def video_columns(items: list[Any], event_ids: list[str], created_at: int) -> dict[str, list] | None:
    """``video_record`` on a batch of the cron's dicts at once, as columns (a list per record field): where every
    item is a plain dict and every value passes its column's check, each of which implies ``video_record``'s own rule
    (a test holds them to it); else None, and the items are taken one by one, each refused with its reason."""
    if not set(map(type, items)) <= {dict}:
        return None
    given = set().union(*items)  # a field no item has is None throughout: nothing to take nor check
    c = {f: list(map(dict.get, items, repeat(f))) if f in given else [None] * len(items) for f in CRON_FIELDS}
    types = {f: set(map(type, c[f])) if f in given else {NONE} for f in CRON_FIELDS}
    v = {f: _not_none(c[f], types[f]) if f in given else [] for f in CRON_FIELDS}  # each column's values, Nones out
    if not (
        types["video_id"] <= {str}
        and _all_match(VIDEO_IDS, v["video_id"])
        and all(types[f] <= _TEXTS for f in ("region", "title", "thumbnail_url"))
        and all(_within(list(map(len, v[f])), 0, MAX_TEXT) and _utf8("".join(v[f])) for f in ("title", "thumbnail_url"))
        and all(types[f] <= _INTS and _within(v[f], 0, MAX_COUNT) for f in COUNT_FIELDS)
        and types["fetched_at"] <= _TIMES
        and _all_match(REGIONS, upper := list(map(str.upper, v["region"])))
    ):
        return None
    if NONE not in types["region"]:
        c["region"] = upper
    elif upper:  # regions among Nones
        c["region"] = [r if r is None else r.upper() for r in c["region"]]
    if not types["fetched_at"] <= _INTS:
        try:  # the cron's text or datetimes, each distinct one read once: a run's snapshots share a few times
            times = {t: _fetched_at(t) for t in set(c["fetched_at"])}
        except Exception:  # said (or raised) by the item that holds it, one by one
            return None
        c["fetched_at"] = list(map(times.__getitem__, c["fetched_at"]))
        v["fetched_at"] = _not_none(c["fetched_at"], types["fetched_at"])
    if not _within(v["fetched_at"], EARLIEST_MS, now_ms() + DAY_MS):
        return None
    return {"event_id": event_ids, "video_id": c.pop("video_id"), "created_at": [created_at] * len(items), **c}


def _not_none(values: list, types: set[type]) -> list:
    """The values that are not None: ``values`` itself when ``types`` (theirs) says none is."""
    return values if NONE not in types else [v for v in values if v is not None]


def stale_columns(video_ids: list[Any], event_ids: list[str], created_at: int) -> dict[str, list] | None:
    """``stale_record`` on a batch of video ids at once, as columns; None where any is not one (then one by one)."""
    if not (set(map(type, video_ids)) <= {str} and _all_match(VIDEO_IDS, video_ids)):
        return None
    return {"event_id": event_ids, "video_id": list(video_ids), "created_at": [created_at] * len(video_ids)}


def stale_check_events(columns: dict[str, list]) -> list[StaleCheckEvent | InvalidEvent]:
    return each(stale_check_event, columns)


def result_events(columns: dict[str, list]) -> list[ResultEvent | InvalidEvent]:
    """``result_event`` on a batch of records given as columns: where every column passes its check, each of which
    implies ``result_event``'s own rule (a test holds them to it), the results are made straight from the columns;
    otherwise record by record, each refused one with its reason."""
    c, latest = columns, now_ms() + DAY_MS
    if (
        _one_length(c)
        and _types(c["event_at"]) <= {int}
        and _within(list(filter(None, c["event_at"])), EARLIEST_MS, latest)  # 0: written before it was recorded
        and _types(c["processed_at"]) <= {int}
        and _within(c["processed_at"], EARLIEST_MS, latest)
        and _types(c["group"]) <= {str}
        and set(c["group"]) <= DETAIL_FIELDS.keys()
        and _types(c["stored"]) <= {bool}
        and _types(c["event_id"]) <= {str}
        and _within(list(map(len, c["event_id"])), 1, 64)
        and _types(c["video_id"]) <= {str}
        and _all_match(VIDEO_IDS, c["video_id"])
        and _details(c["group"], c["detail"])
    ):
        return list(map(ResultEvent, c["event_id"], c["video_id"], c["group"], c["event_at"], c["stored"], c["detail"]))
    return each(result_event, columns)


def _details(groups: list[str], details: list) -> bool:
    """Whether every detail passes ``_detail`` for its group, checked a column of each field at a time."""
    if not _types(details) <= {dict}:
        return False
    present = set(groups)
    for group in present:
        mine = details if len(present) == 1 else [d for g, d in zip(groups, details, strict=True) if g == group]
        names = tuple(DETAIL_FIELDS[group])
        if set(map(len, mine)) != {len(names)}:
            return False
        try:  # as many fields as the branch has, each of its names among them: exactly its fields
            values = zip(*map(itemgetter(*names), mine), strict=True)
        except KeyError:
            return False
        if not _checked(group, dict(zip(names, values, strict=True))):
            return False
    return True


def _checked(group: str, field: dict[str, tuple]) -> bool:
    """Every value of a group's detail fields (one tuple per field) within its rule."""
    texts = ("region", "reason") if group == "scoring" else ("reason",)
    if not all(
        _types(_present(field[f])) <= {str} and _within(list(map(len, _present(field[f]))), 0, MAX_TEXT) for f in texts
    ):
        return False
    if group == "scoring":
        return (
            _reals(field["score"], 0, 100)
            and _reals(field["engagement"], 0, sys.float_info.max)
            and _types(field["velocity"]) <= {int}
            and _types(field["label"]) <= {str}
            and set(field["label"]) <= set(STATUSES[group])
        )
    sizes = ("width", "height") if group == "thumbnails" else ()
    return (
        _types(field["status"]) <= {str}
        and set(field["status"]) <= set(STATUSES[group])
        and _whole(_present(field["http_status"]), HTTP_STATUSES)
        and _whole(field["attempts"], range(1, MAX_ATTEMPTS + 1))
        and all(_whole(_present(field[f]), range(INT_MAX + 1)) for f in sizes)
    )


def _types(values: Iterable) -> set[type]:
    return set(map(type, values))


def _whole(values: list | tuple, allowed: range) -> bool:
    """Every value a whole number (an int, never a bool) within ``allowed``."""
    return _types(values) <= {int} and _within(values, allowed.start, allowed.stop - 1)


def _reals(values: tuple, low: float, high: float) -> bool:
    """Every value a float within ``low..high``: none NaN (their sum would be), so their least and greatest tell."""
    return _types(values) <= {float} and (total := sum(values)) == total and _within(values, low, high)
