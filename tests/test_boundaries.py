"""Nothing from outside stops it: results read back (the sink), a group's store failing on one event, and
every case of issue 21 in this scope, each reproduced on the in-memory backend (no broker)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from conftest import VVV, Member, cli_env, hours_ago, outbox_count, results, wait_for
from hypothesis import given, settings
from hypothesis import strategies as st
from test_config import SECRET, SERVICE_LINKS, bad_file
from test_runtime import Pipeline, valid, vid

from vvv_core import db, events, kafka
from vvv_core.avro import DEFAULT_SCHEMA_DIR, SchemaStore
from vvv_core.broker import free_port
from vvv_core.config import Settings
from vvv_core.dlq import list_dead_letters
from vvv_core.domain.liveness import failed as liveness_failed
from vvv_core.domain.liveness import judge as judge_liveness
from vvv_core.domain.scoring import Snapshot, score
from vvv_core.domain.thumbnail import failed as thumbnail_failed
from vvv_core.domain.thumbnail import judge as judge_thumbnail
from vvv_core.domain.thumbnail import refused as thumbnail_refused
from vvv_core.events import DAY_MS, InvalidEvent, now_ms, result_event
from vvv_core.groups.scoring import ScoringGroup
from vvv_core.groups.sink import SinkGroup
from vvv_core.hook import background_processing
from vvv_core.kafka import read_topic
from vvv_core.runtime.backends.memory import MemoryBackend, MemoryBroker
from vvv_core.runtime.deadletter import read_headers
from vvv_core.sample import CRON_SCHEMA
from vvv_core.standins import LocalServer, demo_oembed

SCHEMAS = SchemaStore()
RESULT = SCHEMAS.encoder("Result")
DETAIL = "com.viralvidvault.results."
KNOWN = [f"known{n:06d}" for n in range(8)]  # in the cron database
SCORE = {"score": 50.0, "label": "NORMAL", "velocity": 10, "engagement": 1.5, "region": "PL", "reason": None}


def thumbnail(status: str = "valid", reason: str | None = "320x180", **changes: Any) -> tuple[str, dict]:
    detail = {"status": status, "width": 320, "height": 180, "http_status": 200, "reason": reason, "attempts": 1}
    return DETAIL + "ThumbnailDetail", {**detail, **changes}


def liveness(status: str = "alive", **changes: Any) -> tuple[str, dict]:
    return DETAIL + "LivenessDetail", {"status": status, "http_status": 200, "reason": None, "attempts": 1, **changes}


def result(video_id: str, detail: tuple[str, dict], group: str = "thumbnails", **changes: Any) -> dict[str, Any]:
    record = {"event_id": f"e-{video_id}-{now_ms()}", "group": group, "video_id": video_id}
    record |= {"processed_at": now_ms(), "event_at": now_ms() - 1000, "stored": False, "detail": detail}
    return record | changes


class Sink:
    """The sink on an in-memory broker, over a cron database that knows ``KNOWN``."""

    def __init__(self, tmp_path: Path) -> None:
        self.broker = MemoryBroker(partitions=2)
        self.backend = MemoryBackend(self.broker)
        self.settings = Settings(namespace="b", stop_timeout=5)
        self.path = tmp_path / "cron.db"
        with sqlite3.connect(self.path) as conn:
            conn.executescript(CRON_SCHEMA)
            conn.executemany("INSERT INTO videos (video_id) VALUES (?)", [(v,) for v in KNOWN])
        self.published: dict[str, bytes] = {}

    def publish(self, record: dict[str, Any] | bytes, key: str | None = None) -> None:
        value = record if isinstance(record, bytes) else RESULT(record)
        key = key if key is not None else record["video_id"]
        self.published[key] = value
        self.broker.publish(self.settings.results_topic, key.encode(), value)

    def run(self) -> Sink:
        """A sink member until every result published so far is committed, then stopped."""
        backend = MemoryBackend(self.broker)
        member = Member(
            SinkGroup(self.settings, db.connect(self.path)), self.settings, until_idle=None, backend=backend
        )
        member.start()
        wait_for(lambda: backend._listener is not None, 5, "the sink to subscribe")
        backend.assign(range(self.broker.partitions))
        topic = self.settings.results_topic
        ends = {(topic, p): len(log) for p, log in enumerate(self.broker.log(topic)) if log}
        wait_for(lambda: self.broker.committed == ends or member.error, 10, "every result committed")
        member.runner.stop()
        member.thread.join(10)
        assert member.error is None, member.error
        return self

    def rows(self, table: str = "thumbnail_checks") -> dict[str, tuple]:
        with sqlite3.connect(self.path) as conn:
            return {r[0]: r[1:] for r in conn.execute(f"SELECT video_id, status, reason, event_at FROM {table}")}

    def dead_letters(self) -> dict[str, str]:
        """Video id -> the reason its dead letter gives."""
        letters = self.broker.read(self.settings.dead_letter_topic("sink"))
        return {r.key.decode(): read_headers(r.headers)["error.message"] for r in letters}


def test_a_result_whose_group_and_detail_disagree_is_a_dead_letter_and_the_partition_moves_on(tmp_path):
    """Issue 21, case 1: a thumbnails result carrying a LivenessDetail crash-looped the sink (a missing :width)."""
    sink = Sink(tmp_path)
    sink.publish(result(KNOWN[0], liveness("deleted")))
    sink.publish(result(KNOWN[1], thumbnail(), group="liveness"))
    sink.publish(result(KNOWN[2], thumbnail("valid", "after the bad ones")))
    sink.run()
    assert sink.dead_letters() == {
        KNOWN[0]: "a thumbnails result carries LivenessDetail as its detail: expected ThumbnailDetail",
        KNOWN[1]: "a liveness result carries ThumbnailDetail as its detail: expected LivenessDetail",
    }
    assert sink.rows() == {KNOWN[2]: ("valid", "after the bad ones", pytest.approx(now_ms(), abs=60_000))}


def test_a_far_future_time_never_pins_a_verdict(tmp_path):
    """Issue 21, case 2: event_at 2**62 was stored, and every later real check of that video was 'older'."""
    sink = Sink(tmp_path)
    sink.publish(result(KNOWN[0], thumbnail("broken", "pinned"), event_at=2**62))
    sink.publish(result(KNOWN[1], thumbnail("broken", "from the future"), processed_at=now_ms() + 2 * DAY_MS))
    sink.publish(result(KNOWN[0], thumbnail("valid", "the real check")))
    sink.publish(result(KNOWN[2], thumbnail("valid", "written before event_at existed"), event_at=0))
    sink.run()
    letters = sink.dead_letters()
    assert letters[KNOWN[0]] == "invalid event_at 4611686018427387904 ms: outside 2005..tomorrow"
    assert letters[KNOWN[1]].startswith("invalid processed_at ") and letters[KNOWN[1]].endswith(
        "outside 2005..tomorrow"
    )
    assert {v: row[:2] for v, row in sink.rows().items()} == {
        KNOWN[0]: ("valid", "the real check"),
        KNOWN[2]: ("valid", "written before event_at existed"),
    }


def test_a_result_for_a_video_the_database_does_not_know_is_a_dead_letter_to_replay(tmp_path):
    """Issue 21, case 10: such a result was stored silently; a 5 MB reason was stored whole."""
    sink = Sink(tmp_path)
    sink.publish(result("madeup00001", thumbnail()))
    sink.publish(result(KNOWN[0], thumbnail("broken", "r" * 5_000_000)))
    sink.publish(result(KNOWN[1], liveness("deleted"), group="liveness"))
    sink.publish(result("madeup00002", liveness("deleted"), group="liveness", stored=True))  # its member stored it
    sink.run()
    too_long = (
        "invalid reason 'rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr... (5000000 chars): expected at most 2048 characters"
    )
    assert sink.dead_letters() == {
        "madeup00001": "not stored: video madeup00001 is not in the cron database",
        KNOWN[0]: too_long,
    }
    assert sink.rows() == {} and list(sink.rows("video_liveness")) == [KNOWN[1]]
    with sqlite3.connect(sink.path) as conn:  # the video arrives; its result, replayed as it was, is stored
        conn.execute("INSERT INTO videos (video_id) VALUES ('madeup00001')")
    letter = next(r for r in sink.broker.read(sink.settings.dead_letter_topic("sink")) if r.key == b"madeup00001")
    sink.publish(letter.value, "madeup00001")
    assert list(sink.run().rows()) == ["madeup00001"]


def test_a_store_failing_on_one_event_dead_letters_that_event_and_stores_the_others(tmp_path):
    """The safety net: whatever inconsistency a future group meets, SQLite refusing one event's values
    dead-letters that event as invalid input; the events before and after it are stored, the member goes on."""
    p = Pipeline(tmp_path, valid, partitions=1)
    for n in range(9):
        p.publish(vid(n), "unstorable" if n == 4 else f"fine {n}")
    sql = "INSERT INTO verdicts VALUES (:video_id, :status, :reason, :attempts)"

    def store(conn: sqlite3.Connection, outcomes) -> None:  # an apply that trips on one event's detail
        rows = [{**o.detail, "video_id": o.inbound.event.video_id} for o in outcomes]
        conn.executemany(
            sql, [{k: v for k, v in r.items() if r["reason"] != "unstorable" or k != "status"} for r in rows]
        )

    p.group.store = store
    p.start()
    wait_for(lambda: p.broker.committed == p.end_offsets(), 5, "every event committed")
    p.stop()
    assert sorted(p.rows()) == [vid(n) for n in range(9) if n != 4]
    (letter,) = p.dead_letters()
    why = read_headers(letter.headers)
    assert (letter.key, why["error.kind"], why["error.class"]) == (vid(4).encode(), "invalid", "ProgrammingError")
    assert why["error.message"] == "cannot be stored: You did not supply a value for binding parameter :status."
    assert [r["video_id"] for r in p.results()] == [vid(n) for n in range(9) if n != 4]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"group": "thumbnails", "detail": liveness()}, "a thumbnails result carries LivenessDetail"),
        ({"group": "liveness", "detail": thumbnail()}, "a liveness result carries ThumbnailDetail"),
        ({"group": "scoring", "detail": thumbnail()}, "a scoring result carries ThumbnailDetail"),
        ({"group": "sink"}, "invalid group 'sink': expected one of scoring, thumbnails, liveness"),
        ({"detail": {"status": "valid"}}, "carries an unknown record as its detail"),
        ({"event_at": 2**62}, "invalid event_at 4611686018427387904 ms: outside 2005..tomorrow"),
        ({"event_at": -1}, r"invalid event_at 1969-12-31T23:59:59.999000\+00:00: outside 2005..tomorrow"),
        ({"event_at": 1_000_000_000_000}, "invalid event_at 2001-09-09"),
        ({"processed_at": 0}, "invalid processed_at 1970-01-01"),
        ({"stored": 1}, "invalid stored 1: expected true or false"),
        ({"video_id": "x" * 65}, "invalid video_id"),
        ({"detail": thumbnail(width=-1)}, "invalid width -1: expected 0..2147483647"),
        ({"detail": thumbnail(http_status=99_999)}, "invalid http_status 99999: expected 100..999"),
        ({"detail": thumbnail(http_status=99)}, "invalid http_status 99: expected 100..999"),
        ({"detail": thumbnail(attempts=0)}, "invalid attempts 0: expected 1..100"),
        ({"detail": thumbnail(status="fine")}, "invalid status 'fine': expected one of valid, placeholder"),
        ({"detail": thumbnail(reason="r" * 2049)}, r"invalid reason 'rrr.*\(2049 chars\): expected at most 2048"),
        ({"group": "liveness", "detail": liveness(attempts=101)}, "invalid attempts 101: expected 1..100"),
        (
            {"group": "scoring", "detail": (DETAIL + "ScoreDetail", {**SCORE, "score": float("nan")})},
            "invalid score nan",
        ),
        ({"group": "scoring", "detail": (DETAIL + "ScoreDetail", {**SCORE, "score": 101.0})}, "invalid score 101.0"),
        ({"group": "scoring", "detail": (DETAIL + "ScoreDetail", {**SCORE, "engagement": -1.0})}, "invalid engagement"),
        ({"group": "scoring", "detail": (DETAIL + "ScoreDetail", {**SCORE, "region": "R" * 3000})}, "invalid region"),
    ],
)
def test_a_result_is_checked_whole(changes, reason):
    """Every field of a result, each refusal with its reason (the detail a plain dict, as fastavro reads a union)."""
    record = result(KNOWN[0], thumbnail()) | changes
    if isinstance(record["detail"], tuple):
        record["detail"] = record["detail"][1]
    with pytest.raises(InvalidEvent, match=reason):
        result_event(record)


def test_the_detail_branches_named_by_their_fields_are_the_schemas():
    """result_event tells a detail's branch by its fields: they must be the schema's, and no two alike."""
    schema = json.loads((DEFAULT_SCHEMA_DIR / "result.avsc").read_text())
    branches = next(f["type"] for f in schema["fields"] if f["name"] == "detail")
    fields = {b["name"]: frozenset(f["name"] for f in b["fields"]) for b in branches}
    assert {events.DETAIL_NAMES[g]: f for g, f in events.DETAIL_FIELDS.items()} == fields
    assert len(set(fields.values())) == len(fields)


def test_a_schema_id_the_registry_does_not_have_is_a_dead_letter_not_a_stop(tmp_path):
    """With a registry, a message naming an id it does not have stopped the member (Fatal) on every restart."""
    from registry_standin import RegistryStandIn

    with RegistryStandIn() as registry:
        p = Pipeline(tmp_path, valid, partitions=1, schema_registry_url=registry.url)
        body = SCHEMAS.encoder("VideoEvent")(events.video_record({"video_id": vid(1)}, "e1", now_ms()))[10:]
        p.publish(vid(1), value=b"\x00" + (424242).to_bytes(4, "big") + body)
        p.publish(vid(2), value=b"\x00" + (1).to_bytes(4, "big") + body)  # id 1: the Result schema, registered
        p.publish(vid(3), "after them")
        p.start()
        wait_for(lambda: p.broker.committed == p.end_offsets(), 5, "every message committed")
        p.stop()
    why = {r.key.decode(): read_headers(r.headers)["error.message"] for r in p.dead_letters()}
    assert why[vid(1)] == "schema id 424242 is not in the schema registry"
    assert why[vid(2)].startswith("undecodable com.viralvidvault.results.Result body: SchemaResolutionError: ")
    assert len(why[vid(2)]) < 300  # not the whole schema it quotes
    assert list(p.rows()) == [vid(3)]


HOOK_ITEMS = [{"video_id": f"vid{i:08d}", "view_count": i} for i in range(5)]


def hook_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a cron process calling the hook without settings of its own."""
    return {"KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap, "VVV_NAMESPACE": settings.namespace, **extra}


@pytest.mark.parametrize(
    ("setting", "kind", "error"),
    [
        (SECRET, "not UTF-8", "VVV_KAFKA_SASL_PASSWORD_FILE={path}: the secret is not UTF-8 text"),
        (SECRET, "a FIFO", "VVV_KAFKA_SASL_PASSWORD_FILE={path}: not a regular file"),
        (SECRET, "a device", "VVV_KAFKA_SASL_PASSWORD_FILE={path}: not a regular file"),
        (SECRET, "too large", "VVV_KAFKA_SASL_PASSWORD_FILE={path}: larger than 65,536 bytes"),
        ("VVV_KAFKA_ACKS", "0", "VVV_KAFKA_ACKS='0': expected all or -1"),
        ("VVV_THUMBNAILS", "x", "VVV_THUMBNAILS is not a setting"),
    ],
)
def test_whatever_the_settings_do_the_hook_never_raises_and_keeps_every_event(
    settings, schemas, cron_db, monkeypatch, tmp_path, setting, kind, error
):
    """Issue 21, case 4: a non-UTF-8 secret raised UnicodeDecodeError into the cron with no outbox written (the
    events gone); a FIFO blocked the hook past its deadline. Now: within the deadline, kept, delivered later."""
    import vvv_core.hook as hook

    path = bad_file(kind, tmp_path) if setting == SECRET else kind
    with monkeypatch.context() as broken:
        broken.setattr(hook, "_schemas", {})  # what a fresh cron process has
        for name, value in hook_env(settings, VVV_HOOK_TIMEOUT="1", **{setting: path}).items():
            broken.setenv(name, value)
        started = time.monotonic()
        report = hook.background_processing(HOOK_ITEMS, ["stale0000001"], cron_db)
        assert time.monotonic() - started < 1 + 1.5
    assert report.error.startswith("configuration error: " + error.format(path=path))
    assert (report.delivered, report.queued) == (0, 6) and outbox_count(cron_db) == 6
    assert hook.background_processing([], [], cron_db, settings).delivered == 6  # the setting fixed
    assert (
        len(read_topic(settings, settings.videos_topic)) == 5 and len(read_topic(settings, settings.stale_topic)) == 1
    )


def test_the_hook_with_service_links_in_its_environment_delivers(settings, cron_db, monkeypatch):
    """Issue 21, case 5: a Service named vvv-thumbnails made the hook keep every event for as long as it existed."""
    for name, value in hook_env(settings, **SERVICE_LINKS).items():
        monkeypatch.setenv(name, value)
    report = background_processing(HOOK_ITEMS, [], cron_db)
    assert report.ok and report.delivered == 5 and outbox_count(cron_db) == 0


@pytest.mark.timeout(300)
def test_every_command_runs_with_kubernetes_service_links_present(settings, sample_db, tmp_path):
    """Issue 21, case 5: Services named vvv-thumbnails and vvv-kafka stopped every command (exit 2)."""
    oembed = LocalServer(demo_oembed())
    stand_ins = {
        "VVV_OEMBED_URL": f"{oembed.base_url}/oembed",
        "VVV_LIVENESS_RATE": "6000",
        "VVV_THUMBNAIL_ATTEMPTS": "1",
    }
    env = cli_env(settings, **stand_ins, **SERVICE_LINKS)  # no network: YouTube unresolved, a check fails once
    run = {"env": env, "capture_output": True, "text": True, "timeout": 60}
    finished = [
        ["topics"],
        ["publish", "--db", sample_db],
        ["outbox", "flush", "--db", sample_db],
        ["consume", "scoring", "--db", sample_db, "--until-idle", "1"],
        ["consume", "thumbnails", "--until-idle", "1"],
        ["consume", "liveness", "--until-idle", "1"],
        ["sink", "--db", sample_db, "--until-idle", "1"],
        ["dlq", "list", "scoring"],
        ["dlq", "replay", "scoring"],
        ["status", "--db", sample_db],
        ["replay", "thumbnails", "--from-beginning"],
        ["report", "--db", sample_db, "--out", str(tmp_path / "report.html")],
        ["sample", "--db", str(tmp_path / "sample.db")],
    ]
    with oembed:
        for args in finished:
            done = subprocess.run([*VVV, "-v", *args], **run)
            assert done.returncode == 0, (args, done.stderr[-2000:])
            assert "ignoring VVV_KAFKA_SERVICE_HOST: a Kubernetes service link" in done.stderr, args
    running = {  # until stopped: each must get as far as saying it is up
        "broker": (["broker", "--port", str(free_port())], "embedded Kafka-compatible broker (tansu) on "),
        "console": (["console", "--db", sample_db, "--port", str(free_port())], "console: http://127.0.0.1:"),
        "demo": (["demo", "--exit"], "1. embedded broker on "),  # its folder under TMPDIR, here tmp_path
    }
    for name, (args, says) in running.items():
        process = subprocess.Popen(
            [*VVV, *args],
            env={**env, "TMPDIR": str(tmp_path)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            first = process.stdout.readline()
            assert says in first, (name, first, process.stderr.read() if process.poll() is not None else "")
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(30)


def test_a_message_whose_key_or_headers_are_too_large_to_dead_letter_is_dead_lettered_without_them(
    settings, schemas, sample_db
):
    """A hostile message's own key or headers made its dead letter larger than the producer takes: produce()
    raised MSG_SIZE_TOO_LARGE and the member stopped, at the same offset on every restart (any broker that
    takes such messages: the embedded one takes anything)."""
    s = settings.replace(max_message_bytes=1024)  # the producer then takes 1 KiB + 64 KiB
    kafka.ensure_project_topics(kafka.admin(s), s, ["scoring"])
    producer = Producer(kafka.producer_config(s, **{"message.max.bytes": 1_000_000}))
    good = schemas.encoder("VideoEvent")(events.video_record({"video_id": "J78aPJ3VyNs"}, "e1", now_ms()))
    producer.produce(s.videos_topic, b"x" * 1000, b"J78aPJ3VyNs", headers=[("h", b"y" * 70_000)])
    producer.produce(s.videos_topic, b"x" * 1000, b"k" * 20_000)
    producer.produce(s.videos_topic, good, b"J78aPJ3VyNs")
    assert producer.flush(30) == 0
    runner = Member("scoring", s, sample_db).start().join().runner
    assert (runner.processed, runner.dead_lettered) == (3, 2) and len(results(s, schemas)) == 1
    letters = {d.why.get("headers.omitted") or d.why.get("key.omitted"): d for d in list_dead_letters(s, "scoring")}
    assert set(letters) == {"70001", "20000"}
    assert letters["70001"].value == b"x" * 1000 and letters["70001"].key == b"J78aPJ3VyNs"


def test_a_velocity_past_what_sqlite_and_avro_hold_is_clamped_not_a_dead_letter(tmp_path):
    """Found by the property test: 10^13 views a millisecond apart in the cron's snapshots made a velocity of
    3.6 * 10^19 views an hour, past SQLite's INTEGER (the event was dead-lettered by the store's safety net) and
    past Avro's long (which the compiled writer would have written, and no reader could read)."""
    path, at = tmp_path / "cron.db", hours_ago(6)
    with sqlite3.connect(path) as conn:
        conn.executescript(CRON_SCHEMA)
        conn.execute("INSERT INTO videos (video_id, region) VALUES ('J78aPJ3VyNs', 'PL')")
        conn.executemany(
            "INSERT INTO video_snapshots VALUES ('J78aPJ3VyNs', 'PL', ?, 0, 0, ?)",
            [(5000, at), (10**13, at + ".001")],  # a millisecond later
        )
    settings = Settings(namespace="b", stop_timeout=5)
    broker, record = MemoryBroker(partitions=1), events.video_record({"video_id": "J78aPJ3VyNs"}, "e1", now_ms())
    broker.publish(settings.videos_topic, b"J78aPJ3VyNs", SCHEMAS.encoder("VideoEvent")(record))
    backend = MemoryBackend(broker)
    member = Member(ScoringGroup(settings, db.connect(path)), settings, until_idle=None, backend=backend).start()
    wait_for(lambda: backend._listener is not None, 5, "the member to subscribe")
    backend.assign([0])
    wait_for(lambda: broker.read(settings.results_topic) or member.error, 5, "the result")
    member.runner.stop()
    member.thread.join(10)
    assert member.error is None and broker.read(settings.dead_letter_topic("scoring")) == []
    (result,) = [SCHEMAS.decode(r.value, "Result") for r in broker.read(settings.results_topic)]
    assert result["detail"]["velocity"] == 2**63 - 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT virality_velocity FROM videos").fetchone() == (2**63 - 1,)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    st.integers(100, 999),
    st.integers(1, 100),
    st.text(max_size=5000),
    st.lists(st.tuples(st.text(max_size=3000), st.integers(0, 10**13), st.integers(0, 10**13)), max_size=3),
)
def test_whatever_the_members_produce_the_sink_takes(http_status, attempts, reason, snapshots):
    """The other side of checking results: every verdict a member can make (any status a server can send, any
    reason an exception can give, any region the cron wrote) passes result_event, or a real verdict would be
    lost to the sink's dead letters."""
    made = {
        "liveness": [judge_liveness(http_status), liveness_failed(reason, http_status)],
        "thumbnails": [judge_thumbnail(http_status, b""), thumbnail_refused(reason), thumbnail_failed(reason)],
    }
    history = [
        Snapshot(region or None, views, likes, 0, 1000 * i) for i, (region, views, likes) in enumerate(snapshots)
    ]
    details = [(g, v.detail(attempts)) for g, verdicts in made.items() for v in verdicts]
    details.append(("scoring", score(history).detail()))
    for group, detail in details:
        result_event(result(KNOWN[0], ("", detail), group=group) | {"detail": detail})
