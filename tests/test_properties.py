"""Every group, and the sink, against schema-valid messages a hostile producer could write (Hypothesis).

For each topic's schema (VideoEvent, StaleCheckEvent, Result), in both wire formats (Avro single-object and
the schema registry's, its ids known, unknown or another schema's), with adversarial values: union branches
crossed, extremes, empty and huge strings, far past and far future times, unknown videos, keys that disagree,
and bytes that are no message at all. One member per group runs on the in-memory backend for the whole test
(direct mode, over a cron database; thumbnails and liveness with stand-in fetchers: no network); each example
is a batch of messages followed by one good message on every partition. Then: no exception escaped the member,
every message ended as exactly one result or one dead letter (the sink: a stored effect, a skip or a dead
letter), every offset is committed, and the good messages after them were processed. And the hook, whatever
its environment holds: it never raises, returns in time, and keeps every valid event.

Derandomized with fixed example counts, so a run is repeatable and takes a few tens of seconds in all.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Member, hours_ago, outbox_count, wait_for
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from registry_standin import RegistryStandIn

from vvv_core import db
from vvv_core.avro import SchemaStore
from vvv_core.broker import free_port
from vvv_core.config import ConfigError, Settings
from vvv_core.errors import Transient
from vvv_core.events import DAY_MS, EARLIEST_MS, now_ms
from vvv_core.groups.liveness import LivenessGroup
from vvv_core.groups.scoring import ScoringGroup
from vvv_core.groups.sink import SinkGroup
from vvv_core.groups.thumbnails import ThumbnailGroup
from vvv_core.hook import background_processing
from vvv_core.registry import Registry
from vvv_core.runtime.backends.memory import MemoryBackend, MemoryBroker
from vvv_core.safe_http import Fetched, UrlPolicy
from vvv_core.sample import CRON_SCHEMA
from vvv_core.standins import image_bytes

PARTITIONS = 2
DETAIL = "com.viralvidvault.results."
KNOWN = [f"known{n:06d}" for n in range(6)]  # in the cron database, with snapshots: what messages may name
# The good message after each batch, one per partition, on videos no generated message names.
SENTINELS = {zlib.crc32(v.encode()) % PARTITIONS: v for v in (f"sentinel{n:03d}" for n in range(20))}
EXAMPLES = {"scoring": 25, "thumbnails": 25, "liveness": 20, "sink": 30}
JPEG, PLACEHOLDER = image_bytes(320, 180), image_bytes(120, 90)

# -- values ---------------------------------------------------------------------------------------------------

LONG = st.integers(-(2**63), 2**63 - 1)
INT = st.integers(-(2**31), 2**31 - 1)
HUGE = st.builds(lambda c, n: c * n, st.characters(codec="utf-8"), st.sampled_from([2049, 100_000, 5_000_000]))
TEXT = st.one_of(st.text(max_size=12), st.just(""), HUGE)
TIMES = st.one_of(
    st.sampled_from([0, -1, -(2**63), 2**63 - 1, 2**62, EARLIEST_MS - 1, EARLIEST_MS, 253402300799000]),
    st.integers(-3 * DAY_MS, 3 * DAY_MS).map(lambda delta: now_ms() + delta),  # around now, both ways
    LONG,
)
VIDEO_IDS = st.one_of(
    st.sampled_from([*KNOWN, "x'); DROP TABLE videos;--", "../../etc/passwd", "a" * 64, "a" * 65, "vidéo"]),
    st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    TEXT,
)
COUNTS = st.one_of(st.none(), st.sampled_from([0, -1, 10**13, 10**13 + 1, 2**63 - 1, -(2**63)]), LONG)
URLS = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "https://i.ytimg.com/vi/x/default.jpg",
            "https://i.ytimg.com:8443/vi/x/default.jpg",
            "http://127.0.0.1:9\\@i.ytimg.com/x.jpg",
            "http://[64:ff9b::7f00:1]/x.jpg",
            "http://100.64.0.1/x.jpg",
            "file:///etc/passwd",
            "https://i.ytimg.com/" + "a" * 3000,
        ]
    ),
    TEXT,
)
OPTIONAL_TEXT = st.one_of(st.none(), TEXT)
ENUM = st.sampled_from


def records(**fields: st.SearchStrategy) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(fields)


VIDEO_EVENT = records(
    event_id=TEXT,
    video_id=VIDEO_IDS,
    created_at=TIMES,
    region=st.one_of(st.none(), ENUM(["PL", "pl", "GB", "XX", "P1"]), TEXT),
    title=OPTIONAL_TEXT,
    thumbnail_url=URLS,
    view_count=COUNTS,
    likes=COUNTS,
    comments=COUNTS,
)
STALE_EVENT = records(event_id=TEXT, video_id=VIDEO_IDS, created_at=TIMES)
# ... and events that pass the checks a reader makes first (an id, a time, a known or plausible video), so
# what lies deeper is reached: the fetch, the verdict, the store
EVENT_IDS = st.from_regex(r"[0-9a-f]{1,64}", fullmatch=True)
RECENT = st.integers(-DAY_MS, DAY_MS // 2).map(lambda delta: now_ms() + delta)
PLAUSIBLE_VIDEO = st.one_of(st.sampled_from(KNOWN), st.from_regex(r"[A-Za-z0-9_-]{11}", fullmatch=True))
PLAUSIBLE = {"event_id": EVENT_IDS, "video_id": PLAUSIBLE_VIDEO, "created_at": RECENT}
VIDEO_EVENT = st.one_of(VIDEO_EVENT, VIDEO_EVENT.flatmap(lambda r: records(**PLAUSIBLE).map(lambda p: r | p)))
STALE_EVENT = st.one_of(STALE_EVENT, records(**PLAUSIBLE))
DOUBLES = st.one_of(st.floats(), st.sampled_from([0.0, 100.0, 100.1, -0.0]))
DETAILS = st.one_of(  # any branch, whatever the group says: crossed branches included
    st.tuples(
        st.just(DETAIL + "ScoreDetail"),
        records(
            score=DOUBLES,
            label=ENUM(["VIRAL", "TRENDING", "NORMAL"]),
            velocity=LONG,
            engagement=DOUBLES,
            region=OPTIONAL_TEXT,
            reason=OPTIONAL_TEXT,
        ),
    ),
    st.tuples(
        st.just(DETAIL + "ThumbnailDetail"),
        records(
            status=ENUM(["valid", "placeholder", "broken", "error"]),
            width=st.one_of(st.none(), INT),
            height=st.one_of(st.none(), INT),
            http_status=st.one_of(st.none(), INT, ENUM([200, 404])),
            reason=OPTIONAL_TEXT,
            attempts=st.one_of(INT, ENUM([1, 3])),
        ),
    ),
    st.tuples(
        st.just(DETAIL + "LivenessDetail"),
        records(
            status=ENUM(["alive", "deleted", "private", "unknown"]),
            http_status=st.one_of(st.none(), INT, ENUM([200, 404])),
            reason=OPTIONAL_TEXT,
            attempts=st.one_of(INT, ENUM([1, 3])),
        ),
    ),
)
RESULT = records(
    event_id=TEXT,
    group=ENUM(["scoring", "thumbnails", "liveness"]),
    video_id=VIDEO_IDS,
    processed_at=TIMES,
    event_at=TIMES,
    stored=st.booleans(),
    detail=DETAILS,
)
RESULT = st.one_of(
    RESULT,
    RESULT.flatmap(
        lambda r: records(event_id=EVENT_IDS, video_id=PLAUSIBLE_VIDEO, processed_at=RECENT, event_at=RECENT).map(
            lambda p: (
                r | p | {"group": {"S": "scoring", "T": "thumbnails", "L": "liveness"}[r["detail"][0][len(DETAIL)]]}
            )
        )
    ),
)
SCHEMAS = {"scoring": "VideoEvent", "thumbnails": "VideoEvent", "liveness": "StaleCheckEvent", "sink": "Result"}
RECORDS = {"VideoEvent": VIDEO_EVENT, "StaleCheckEvent": STALE_EVENT, "Result": RESULT}
# How a message is framed: single-object Avro, the registry's format with the topic's schema id, with an id
# the registry does not have, with another schema's id, or bytes that are no message (cut short, extra, none).
FRAMES = ENUM(["single", "registry", "unknown id", "other schema", "truncated", "trailing", "garbage", "tombstone"])
KEYS = st.one_of(st.just("its video id"), st.just("its video id"), st.none(), st.binary(max_size=12))


def message(schema: str) -> st.SearchStrategy[tuple[dict, str, Any]]:
    return st.tuples(RECORDS[schema], FRAMES, KEYS)


# -- the members ----------------------------------------------------------------------------------------------


class StandInFetcher:
    """The real allow-list and parse (``UrlPolicy.check``, its resolver answering without a network), then an
    answer chosen by the URL: no socket is ever opened."""

    def __init__(self, policy: UrlPolicy, answer: Callable[[str], Fetched]) -> None:
        self.policy, self.answer = policy, answer

    def get(self, url: str, method: str = "GET") -> Fetched:
        self.policy.check(url)
        return self.answer(url)

    def close(self) -> None:
        pass


def answer(replies: list[Fetched | None]) -> Callable[[str], Fetched]:
    def by_url(url: str) -> Fetched:
        reply = replies[zlib.crc32(url.encode()) % len(replies)]
        if reply is None:
            raise Transient("HTTP 503 (a stand-in)")
        return reply

    return by_url


class StandInThumbnails(ThumbnailGroup):
    def prepare(self) -> None:
        super().prepare()
        policy = UrlPolicy(self.settings.thumbnail_hosts, resolver=lambda host, port: ["142.250.74.46"])
        replies = [Fetched(200, JPEG), Fetched(200, PLACEHOLDER), Fetched(404, b""), Fetched(200, b"<html>"), None]
        self.fetcher = StandInFetcher(policy, answer(replies))


class StandInLiveness(LivenessGroup):
    def prepare(self) -> None:
        super().prepare()
        policy = UrlPolicy(["www.youtube.com"], resolver=lambda host, port: ["142.250.74.46"])
        replies = [Fetched(200, b""), Fetched(404, b""), Fetched(403, b""), Fetched(429, b""), None]
        self.fetcher = StandInFetcher(policy, answer(replies))


GROUPS = {"scoring": ScoringGroup, "thumbnails": StandInThumbnails, "liveness": StandInLiveness, "sink": SinkGroup}


def cron_database(path: Path) -> str:
    """The cron's tables with the known videos (and the sentinels), two snapshots each, one of them absurd."""
    with sqlite3.connect(path) as conn:
        conn.executescript(CRON_SCHEMA)
        videos = [*KNOWN, *SENTINELS.values()]
        conn.executemany("INSERT INTO videos (video_id, region) VALUES (?, 'PL')", [(v,) for v in videos])
        before, at = hours_ago(12), hours_ago(6)
        snapshots = [(v, "PL", 1000, 10, 1, before) for v in videos] + [(v, "PL", 5000, 90, 9, at) for v in videos]
        snapshots.append((KNOWN[0], "PL", 10**13, 0, 0, at + ".001"))  # 10^13 views a millisecond later
        conn.executemany("INSERT INTO video_snapshots VALUES (?, ?, ?, ?, ?, ?)", snapshots)
    return str(path)


class Running:
    """One member of ``group`` on an in-memory broker, fed batch after batch."""

    def __init__(self, group: str, tmp_path: Path, registry_url: str) -> None:
        self.name = group
        self.settings = Settings(
            namespace="p",
            stop_timeout=5,
            commit_interval=0,
            dlq_max_ratio=1,  # what is tested is each message's fate, not the flood guard
            schema_registry_url=registry_url,
            thumbnail_attempts=2,
            thumbnail_retry_delay=0,
            liveness_attempts=2,
            liveness_retry_delay=0,
            liveness_rate=6000,
        )
        self.schemas = SchemaStore(registry=Registry(registry_url))
        self.schema = SCHEMAS[group]
        self.topic = GROUPS[group].input_topic(self.settings)
        self.encode = self.schemas.encoder(self.schema)
        self.framed = self.schemas.encoder(self.schema, self.topic)  # registers it: the members' registry id
        other = {"event_id": "e", "video_id": "v", "created_at": 0}  # a StaleCheckEvent, or a VideoEvent ...
        other_schema = "VideoEvent" if self.schema == "StaleCheckEvent" else "StaleCheckEvent"
        other |= (
            dict.fromkeys(("region", "title", "thumbnail_url", "view_count", "likes", "comments"))
            if other_schema == "VideoEvent"
            else {}
        )
        self.other_header = self.schemas.encoder(other_schema, "another-topic")(other)[:5]  # ... registered
        self.broker = MemoryBroker(PARTITIONS)
        self.backend = MemoryBackend(self.broker)
        self.db_path = cron_database(tmp_path / "cron.db")
        group_made = GROUPS[group](self.settings, db.connect(self.db_path))
        self.member = Member(group_made, self.settings, until_idle=None, backend=self.backend).start()
        wait_for(lambda: self.backend._listener is not None, 5, "the member to subscribe")
        self.backend.assign(range(PARTITIONS))
        wait_for(lambda: len(self.member.runner.owned) == PARTITIONS, 5, "the assignment")
        self.event_ids = (f"sentinel-{n}" for n in itertools.count())

    def value(self, record: dict, frame: str) -> bytes | None:
        if frame == "registry":
            return self.framed(record)
        if frame == "tombstone":
            return None
        single = self.encode(record)
        body = single[10:]
        return {
            "single": single,
            "unknown id": b"\x00" + (987_654).to_bytes(4, "big") + body,
            "other schema": self.other_header + body,
            "truncated": single[: len(single) // 2],
            "trailing": single + b"\x00",
            "garbage": b"\xc3\x01" + zlib.crc32(body).to_bytes(8, "little") + body,  # an unknown fingerprint
        }[frame]

    def sentinel(self, partition: int) -> tuple[bytes, bytes, str]:
        video_id, event_id, at = SENTINELS[partition], next(self.event_ids), now_ms()
        record = {"event_id": event_id, "video_id": video_id, "created_at": at}
        if self.schema == "VideoEvent":
            record |= {"region": "PL", "thumbnail_url": "https://i.ytimg.com/vi/s/default.jpg"}
        if self.schema == "Result":
            detail = {"status": "valid", "width": 320, "height": 180, "http_status": 200, "reason": None}
            record = {"event_id": event_id, "group": "thumbnails", "video_id": video_id, "processed_at": at}
            record |= {
                "event_at": at,
                "stored": False,
                "detail": (DETAIL + "ThumbnailDetail", detail | {"attempts": 1}),
            }
        return video_id.encode(), self.encode(record), event_id

    def read(self, topic: str) -> int:
        return len(self.broker.read(topic))

    def feed(self, messages: list[tuple[dict, str, Any]]) -> None:
        results, dead = self.settings.results_topic, self.settings.dead_letter_topic(self.name)
        before = (self.read(results), self.read(dead), self.member.runner.processed)
        for record, frame, key in messages:
            key = str(record["video_id"]).encode() if key == "its video id" else key
            self.broker.publish(self.topic, key, self.value(record, frame))
        sentinels = [self.sentinel(p) for p in range(PARTITIONS)]
        for key, value, _event_id in sentinels:
            self.broker.publish(self.topic, key, value)
        ends = {(self.topic, p): len(log) for p, log in enumerate(self.broker.log(self.topic))}
        wait_for(lambda: self.broker.committed == ends or self.member.error, 60, "every message committed")
        assert self.member.error is None, repr(self.member.error)
        fed = len(messages) + len(sentinels)
        assert self.member.runner.processed - before[2] == fed  # each message once: nothing lost, nothing stuck
        if self.name != "sink":  # each message is one result or one dead letter
            assert (self.read(results) - before[0]) + (self.read(dead) - before[1]) == fed
        for _key, _value, event_id in sentinels:  # and the good messages after the hostile ones were processed
            assert self.done(event_id), f"{event_id} after {messages!r:.2000}"

    def done(self, event_id: str) -> bool:
        if self.name == "sink":
            with sqlite3.connect(self.db_path) as conn:
                return conn.execute("SELECT 1 FROM thumbnail_checks WHERE event_id = ?", (event_id,)).fetchone()
        found = self.broker.read(self.settings.results_topic)
        return any(self.schemas.decode(r.value, "Result")["event_id"] == event_id for r in found)

    def stop(self) -> None:
        self.member.runner.stop()
        self.member.thread.join(30)
        assert not self.member.thread.is_alive() and self.member.error is None


@pytest.fixture(scope="module")
def registry_url() -> Iterator[str]:
    with RegistryStandIn() as registry:
        yield registry.url


@pytest.mark.timeout(300)
@pytest.mark.parametrize("group", list(GROUPS))
def test_no_message_stops_a_group_or_is_lost(group, tmp_path, registry_url):
    running = Running(group, tmp_path, registry_url)

    @settings(
        max_examples=EXAMPLES[group],
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the member's state carries over between examples
    )
    @given(st.lists(message(SCHEMAS[group]), min_size=1, max_size=8))
    def hostile_batch(messages: list[tuple[dict, str, Any]]) -> None:
        running.feed(messages)

    try:
        hostile_batch()
    finally:
        running.stop()


# -- the hook, whatever its environment holds ------------------------------------------------------------------

ENV_NAMES = [n for n in Settings.env_names() if n not in ("KAFKA_BOOTSTRAP_SERVERS", "VVV_HOOK_TIMEOUT")]
ENV_NAMES += ["VVV_KAFKA_ACKS", "VVV_KAFKA_SASL_PASSWORD_FILE", "VVV_KAFKA_SOCKET_TIMEOUT_MS", "VVV_KAFKA_NO_SUCH"]
ENV_NAMES += ["VVV_KAFKA_BOOTSTRAP_SERVERS", "VVV_KAFKA_SERVICE_HOST", "VVV_THUMBNAILS_PORT", "VVV_TYPO"]
ENV_VALUES = st.one_of(
    st.sampled_from(["", " ", "0", "-1", "nan", "1e309", "all", "/dev/zero", "/etc/passwd", "tcp://10.0.0.7:9100"]),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30),
)
HOOK_VIDEOS = [{"video_id": f"hook{i:07d}", "view_count": i} for i in range(3)] + [{"video_id": "bad id"}]


@settings(max_examples=40, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.sampled_from(ENV_NAMES), ENV_VALUES, max_size=4))
def test_whatever_the_environment_holds_the_hook_returns_in_time_and_keeps_every_event(env):
    """Any settings, secrets, typos and service links: the hook never raises into the cron, returns within its
    deadline (and a little), and every valid event is delivered or kept (no broker here: kept)."""
    base = {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "VVV_HOOK_TIMEOUT": "0.1"}
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patched:
        for name in [n for n in os.environ if n.startswith(("VVV_", "KAFKA_"))]:
            patched.delenv(name)
        for name, value in {**env, **base}.items():
            patched.setenv(name, value)
        started = time.monotonic()
        report = background_processing(HOOK_VIDEOS, ["hookstale01"], f"{folder}/cron.db")
        assert time.monotonic() - started < 3
        assert (report.delivered, report.queued, len(report.rejected)) == (0, 4, 1), report
        assert outbox_count(f"{folder}/cron.db") == 4


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(
    st.dictionaries(
        st.one_of(st.sampled_from(ENV_NAMES), st.text(max_size=8).map("VVV_KAFKA_{}".format)), ENV_VALUES, max_size=5
    ),
    st.dictionaries(st.sampled_from(["acks", "bootstrap.servers", "metadata.broker.list", "linger.ms"]), ENV_VALUES),
    st.one_of(st.none(), ENV_VALUES),
)
def test_any_settings_are_settings_or_one_configuration_error(env, flags, bootstrap):
    """What every command reads first (the environment, -X, --bootstrap): Settings, or a ConfigError, which
    the command line prints as one line with exit 2; never any other exception (a traceback)."""
    try:
        Settings.from_env(env, bootstrap=bootstrap or None, flags=flags)
    except ConfigError as exc:
        assert str(exc).isprintable()  # one line
