"""The outbox drains in pieces: every call that reaches the broker leaves it smaller, a deadline repeats at
most one piece, each video's events stay in order, its files are durable and never change format, and two
users share it through a group."""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import pwd
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import FAST_GROUPS, VVV, add_video, broker_processes, cli_env, hours_ago, outbox_count

from vvv_core import kafka, outbox
from vvv_core.broker import free_port
from vvv_core.config import Settings
from vvv_core.hook import background_processing, flush_outbox, publish_new
from vvv_core.kafka import read_topic
from vvv_core.outbox import outbox_dir
from vvv_core.sample import CRON_SCHEMA
from vvv_core.spool import MAGIC, RECORDS, SEGMENT, Message, Spool

VIDEOS, ROUNDS = 30, 40  # 1,200 events, each video's spread over the whole backlog


def own_settings(broker, **changes) -> Settings:
    settings = Settings(bootstrap=broker.bootstrap, kafka=dict(FAST_GROUPS), namespace=f"t{uuid.uuid4().hex[:10]}")
    kafka.ensure_project_topics(kafka.admin(settings), settings, [])
    return replace(settings, **changes)


def down(settings: Settings) -> Settings:
    """The same settings with no broker at their address: whatever is sent is kept."""
    return replace(settings, bootstrap=f"127.0.0.1:{free_port()}", hook_timeout=0.05)


def each_video_in_order(settings: Settings, schemas, expected: set[tuple[str, int]]) -> int:
    """Asserts the topic holds every expected (video, view count), each video's in order where first seen
    (a repeat dropped by its event id, as consumers do); returns how many records it holds."""
    records = [schemas.decode(m.value(), "VideoEvent") for m in read_topic(settings, settings.videos_topic, 30)]
    seen: set[str] = set()
    per_video: dict[str, list[int]] = defaultdict(list)
    for record in records:
        if record["event_id"] not in seen:
            seen.add(record["event_id"])
            per_video[record["video_id"]].append(record["view_count"])
    assert {(v, c) for v, counts in per_video.items() for c in counts} == expected
    assert all(counts == sorted(counts) for counts in per_video.values()), "a video's events out of order"
    return len(records)


def test_a_backlog_ten_deadlines_long_shrinks_every_call_with_the_broker_frozen_mid_call(
    own_broker, schemas, cron_db, monkeypatch
):
    """Each hook call has its first piece acknowledged, then the broker freezes (SIGSTOP) past the call's deadline:
    the backlog is ten times what one deadline delivers. Every call leaves the outbox smaller by what it reports
    delivered, its own event kept behind the rest; a piece cut off is at most twice what came before it; the topic
    ends with every event, at most the events plus the pieces cut off, each video's in order."""
    settings = own_settings(own_broker, hook_timeout=2.0)  # the default: a busy machine needs it after a thaw
    add_video(cron_db, "warmvideo01", "PL", [(1, 0, 0, hours_ago(1))])  # new topics: Apache Kafka elects leaders
    assert publish_new(cron_db, settings, timeout=30).delivered == 1  # and the hook's producer is connected
    backlog = [{"video_id": f"vid{v:08d}", "view_count": r} for r in range(ROUNDS) for v in range(VIDEOS)]
    assert background_processing(backlog, [], cron_db, down(settings)).queued == len(backlog)
    processes, frozen = broker_processes(own_broker), []
    delivered = outbox.Backlog.delivered

    def then_freeze(self, spans, kept):
        delivered(self, spans, kept)
        if not frozen:
            for p in processes:
                os.kill(p.pid, signal.SIGSTOP)
            frozen.append(True)

    def thaw() -> None:
        while frozen:
            frozen.pop()
            for p in processes:
                os.kill(p.pid, signal.SIGCONT)

    monkeypatch.setattr(outbox.Backlog, "delivered", then_freeze)
    reports = []
    try:
        while (before := outbox_count(cron_db)) > 0:
            assert len(reports) < 3 * len(backlog) // outbox.FIRST_PIECE, "the outbox does not empty"
            own = {"video_id": f"vid{len(reports) % VIDEOS:08d}", "view_count": ROUNDS + len(reports)}
            report = background_processing([own], [], cron_db, settings)
            thaw()
            after = outbox_count(cron_db)
            assert report.delivered > 0 and after == before + 1 - report.delivered == report.queued, report
            assert report.unconfirmed <= max(outbox.FIRST_PIECE, 2 * report.delivered), report
            reports.append(report)
    finally:
        thaw()
    assert max(r.delivered for r in reports) * 10 <= len(backlog) and sum(r.unconfirmed > 0 for r in reports) >= 10
    expected = {(b["video_id"], b["view_count"]) for b in backlog} | {("warmvideo01", 1)}
    expected |= {(f"vid{n % VIDEOS:08d}", ROUNDS + n) for n in range(len(reports))}
    assert each_video_in_order(settings, schemas, expected) <= len(expected) + sum(r.unconfirmed for r in reports)


def test_the_pace_is_remembered_beside_the_outbox_and_moves_sensibly(tmp_path):
    """Pieces of at most a quarter of the call's time; a quick piece shows only that the broker is at least that
    fast (never lowering the pace, at most doubling it); a slow one measures it; a cut-off halves it; each cron
    run, a new process, starts where the last one left."""
    pace = outbox.Pace(tmp_path / "pace")
    assert pace.rate == outbox.DEFAULT_RATE and pace.piece(budget=2.0, remaining=2.0) == 10_000
    assert pace.piece(budget=0.4, remaining=0.4) == 2_000 and pace.piece(budget=2.0, remaining=0.1) == 1_000
    pace.acknowledged(10, 0.004, budget=2.0)  # 2,500/s measured: a round trip, not the broker's pace
    assert pace.rate == outbox.DEFAULT_RATE
    pace.acknowledged(10_000, 0.01, budget=2.0)  # 1,000,000/s measured: one quick answer can be luck
    assert pace.rate == 2 * outbox.DEFAULT_RATE
    pace.acknowledged(10_000, 2.0, budget=2.0)  # twice a piece's time: the broker's pace, measured
    assert pace.rate == 5_000
    pace.missed()
    assert pace.rate == 2_500
    pace.save()
    assert outbox.Pace(tmp_path / "pace").rate == 2_500
    pace.acknowledged(500, 0.6, budget=2.0)  # slower than a piece may be, but within twice: not lowered
    pace.save()
    assert outbox.Pace(tmp_path / "pace").rate == 2_500
    (tmp_path / "pace").write_text("torn")
    assert outbox.Pace(tmp_path / "pace").rate == outbox.DEFAULT_RATE


def test_a_segment_holds_at_most_ten_thousand_events_and_they_read_back_in_order(tmp_path):
    """A large backlog is files of at most 10,000 events (a drain reads one file at a time), in their order."""
    spool = Spool(tmp_path / "outbox")
    messages = [Message("t.videos", f"vid{i:08d}".encode(), i.to_bytes(4, "big")) for i in range(25_000)]
    spool.write(messages)
    segments = spool.segments()
    assert [spool.count(s) for s in segments] == [10_000, 10_000, 5_000] and spool.waiting() == 25_000
    assert [m for s in segments for m in spool.read(s, lambda _records: [])] == messages


def test_a_drain_to_the_end_says_how_far_it_got(settings, cron_db, monkeypatch, caplog):
    """`vvv outbox flush` drains everything in one call, pieces growing from a small first one, with progress lines."""
    backlog = [{"video_id": f"vid{i % 300:08d}", "view_count": i} for i in range(3000)]
    background_processing(backlog, [], cron_db, down(settings))
    monkeypatch.setattr(outbox, "PROGRESS_SECONDS", 0.0)
    with caplog.at_level(logging.INFO, logger="vvv_core.outbox"):
        report = flush_outbox(cron_db, settings)
    assert report.ok and (report.delivered, report.queued, report.unconfirmed) == (3000, 0, 0)
    lines = [r.getMessage() for r in caplog.records if " events delivered (" in r.getMessage()]
    assert lines[0].startswith(f"outbox: {outbox.FIRST_PIECE} of 3000 events delivered")
    assert lines[-1].startswith("outbox: 3000 of 3000 events delivered") and len(lines) >= 4
    assert len(read_topic(settings, settings.videos_topic)) == 3000 and outbox_count(cron_db) == 0


def test_a_drain_to_the_end_says_within_ten_seconds_that_no_broker_answers(cron_db):
    """`vvv publish` and `vvv outbox flush` may take minutes; a broker that does not answer at all is said within
    ``CONNECT_TIMEOUT`` (10 s), not at the end of the drain's own timeout, and everything stays in the outbox."""
    nobody = down(Settings(namespace="t"))
    background_processing([{"video_id": f"vid{i:08d}"} for i in range(10)], [], cron_db, nobody)
    started = time.monotonic()
    report = flush_outbox(cron_db, nobody, timeout=60)
    assert time.monotonic() - started < outbox.CONNECT_TIMEOUT + 5
    assert "no Kafka broker reachable" in report.error and (report.delivered, report.queued) == (0, 10)


def test_a_stop_ends_a_drain_between_pieces_and_says_so(settings, cron_db, monkeypatch):
    """SIGTERM or Ctrl-C on `vvv publish` or `vvv outbox flush` sets their stop: what was delivered stays removed,
    the rest waits, and the report says why (the command exits 1)."""
    background_processing([{"video_id": f"vid{i:08d}"} for i in range(1000)], [], cron_db, down(settings))
    stop, delivered = threading.Event(), outbox.Backlog.delivered

    def then_stop(self, spans, kept):
        delivered(self, spans, kept)
        stop.set()

    monkeypatch.setattr(outbox.Backlog, "delivered", then_stop)
    report = flush_outbox(cron_db, settings, stop=stop)
    assert (report.delivered, report.queued, report.unconfirmed) == (outbox.FIRST_PIECE, 900, 0)
    assert report.error == "stopped before the outbox was empty" and outbox_count(cron_db) == 900


def test_kept_segments_and_finished_pieces_are_on_disk_before_the_drain_goes_on(settings, cron_db, monkeypatch):
    """A segment reaches its name only written whole and fsynced, through a temporary file and a rename, the
    folder fsynced after; a finished piece's progress is fsynced before the next piece is sent."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace, real_write = os.fsync, os.replace, os.write

    def path_of(fd: int) -> str:
        return os.readlink(f"/proc/self/fd/{fd}")

    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", path_of(fd))), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", f"{a} -> {b}")), real_replace(a, b))[1])
    monkeypatch.setattr(os, "write", lambda fd, b: (events.append(("write", path_of(fd))), real_write(fd, b))[1])

    class Recorded(outbox.Producer):
        def produce(self, *args, **kwargs):
            events.append(("produce", ""))
            return super().produce(*args, **kwargs)

    monkeypatch.setattr(outbox, "Producer", Recorded)
    backlog = [{"video_id": f"vid{i:08d}"} for i in range(300)]
    background_processing(backlog, [], cron_db, down(settings))
    folder = str(outbox_dir(cron_db))
    renames = [(i, e[1].split(" -> ")) for i, e in enumerate(events) if e[0] == "replace"]
    assert renames and all(src != dst and src.endswith(".tmp") and dst.endswith(SEGMENT) for _i, (src, dst) in renames)
    for i, (src, _dst) in renames:
        assert ("fsync", src) in events[:i], "renamed before its bytes were on disk"
        assert ("fsync", folder) in events[i:], "the rename itself not made durable"

    del events[:]
    assert background_processing([], [], cron_db, settings).delivered == 300  # pieces of 100, then 200
    progress = str(Spool(outbox_dir(cron_db)).progress_path)
    appended = [i for i, e in enumerate(events) if e == ("write", progress)]
    assert appended, "no piece was recorded"
    for i in appended:
        later = events[i:]
        next_piece = later.index(("produce", "")) if ("produce", "") in later else len(later)
        assert ("fsync", progress) in later[:next_piece], "a finished piece not on disk before the next one went"


def test_a_refused_event_is_kept_ahead_with_its_videos_later_events_behind_it(settings, schemas, cron_db, monkeypatch):
    """librdkafka refuses events larger than message.max.bytes (on either broker). Pieces of two, then four (the
    pace held still, so no timing decides them): in [A1 refused, B1] B1 is delivered and A1 kept ahead of the rest;
    in [D1, E1, A2 (held behind A1), A3 (the call's own, held too)] everything sent is refused, so the piece stays
    where it is and the call ends (F1, the call's own after it, is not sent). The report counts what was
    acknowledged; once the limit is lifted, every video's events arrive in order."""
    large = "x" * 2000
    limited = replace(settings, kafka={**settings.kafka, "message.max.bytes": "1000"})  # and a generous deadline
    first = [{"video_id": "videoA", "view_count": 1, "title": large}, {"video_id": "videoB", "view_count": 1}]
    second = [
        {"video_id": "videoD", "view_count": 1, "title": large},
        {"video_id": "videoE", "view_count": 1, "title": large},
        {"video_id": "videoA", "view_count": 2},
    ]
    for items in (first, second):
        background_processing(items, [], cron_db, down(settings))
    monkeypatch.setattr(outbox, "FIRST_PIECE", 2)
    monkeypatch.setattr(outbox.Pace, "acknowledged", lambda self, count, seconds, budget: None)
    # the call's own events: A3 in the second piece, F1 after it, never sent (the piece refused whole ends the call)
    own = [{"video_id": "videoA", "view_count": 3}, {"video_id": "videoF", "view_count": 1}]
    report = background_processing(own, [], cron_db, limited)
    assert (report.delivered, report.queued) == (1, 6) and "Message size too large" in report.error
    assert flush_outbox(cron_db, settings).delivered == 6 and outbox_count(cron_db) == 0
    expected = {("videoA", 1), ("videoA", 2), ("videoA", 3), ("videoB", 1), ("videoD", 1), ("videoE", 1)}
    assert each_video_in_order(settings, schemas, expected | {("videoF", 1)}) == 7


def test_a_records_file_keeps_its_format_and_an_unreadable_file_is_set_aside(settings, schemas, cron_db, caplog):
    """Issue 21, case 3, as reproduced: events kept as records (the settings broken), then a call with the broker
    away rewrote them, as segment bytes, under the records file's name, and no later drain could read it again.
    Now no file changes under its name, and a file that cannot be read is set aside while the rest is delivered."""
    env = {"KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap, "VVV_NAMESPACE": settings.namespace}
    with pytest.MonkeyPatch.context() as broken:
        for name, value in {**env, "VVV_HOOK_TIMEOUT": "nan"}.items():
            broken.setenv(name, value)
        kept = background_processing([{"video_id": "videoA", "view_count": 1}], [], cron_db)
    assert kept.error.startswith("configuration error") and kept.queued == 1
    folder = outbox_dir(cron_db)
    (records,) = folder.glob(f"*{RECORDS}")
    written = records.read_bytes()
    away = background_processing([{"video_id": "videoA", "view_count": 2}], [], cron_db, down(settings))
    assert (away.delivered, away.queued) == (0, 2) and records.read_bytes() == written
    assert all(f.read_bytes().startswith(MAGIC) for f in folder.glob(f"*{SEGMENT}"))
    json.loads(records.read_bytes())  # still what its name says

    (folder / f"{time.time_ns():020d}-1-0-1{RECORDS}").write_bytes(b"\x00VVVOUTBOX1 torn")  # behind the others
    with caplog.at_level(logging.ERROR, logger="vvv_core.outbox"):
        back = background_processing([{"video_id": "videoA", "view_count": 3}], [], cron_db, settings)
    assert (back.delivered, back.queued) == (3, 0) and [p.suffix for p in folder.glob("*.damaged")] == [".damaged"]
    assert any("set aside as" in r.getMessage() for r in caplog.records)
    assert each_video_in_order(settings, schemas, {("videoA", 1), ("videoA", 2), ("videoA", 3)}) == 3


def test_what_a_drain_leaves_behind_is_tidied(settings, cron_db):
    """The progress record goes once the outbox is empty; a temporary file a crash left (an hour old) goes, one
    being written now stays."""
    background_processing([{"video_id": f"vid{i:08d}"} for i in range(300)], [], cron_db, down(settings))
    folder = outbox_dir(cron_db)
    old, fresh = folder / "00000000000000000001-1-0-1.tmp", folder / f"{time.time_ns():020d}-1-0-1.tmp"
    for tmp in (old, fresh):
        tmp.write_bytes(b"half a segment")
    for tmp, age in ((old, 7200), (fresh, 0)):  # from the clock the code reads (pytest --clock-ahead moves it)
        os.utime(tmp, (time.time() - age, time.time() - age))
    assert flush_outbox(cron_db, settings).delivered == 300  # in pieces of 100 and 200: a progress line between
    assert not Spool(folder).progress_path.exists() and not old.exists() and fresh.exists()


def test_publish_waits_for_room_in_the_producers_queue(settings, cron_db):
    """Issue 21, case 7: `vvv publish` of more events than the producer's queue holds parked the rest with
    `Local: Queue full`; it waits for room instead, and delivers them all in one call."""
    conn = sqlite3.connect(cron_db)
    with conn:
        conn.executemany(
            "INSERT INTO videos (video_id, region, title, thumbnail_url) VALUES (?, 'PL', 't', 'u')",
            [(f"vid{i:08d}",) for i in range(2000)],
        )
        conn.executemany(
            "INSERT INTO video_snapshots VALUES (?, 'PL', 1, 0, 0, ?)",
            [(f"vid{i:08d}", time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())) for i in range(2000)],
        )
    conn.close()
    env = cli_env(settings, VVV_KAFKA_QUEUE_BUFFERING_MAX_MESSAGES="50")
    done = subprocess.run([*VVV, "publish", "--db", cron_db], capture_output=True, text=True, env=env, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "publish: delivered 2000, kept in outbox 0, rejected 0"
    assert len(read_topic(settings, settings.videos_topic)) == 2000


def test_flush_is_bounded_by_its_own_timeout(own_broker, cron_db):
    """A frozen broker: `vvv outbox flush --timeout 2` gives up after its timeout, keeps everything, exits 1."""
    settings = own_settings(own_broker)
    background_processing([{"video_id": f"vid{i:08d}"} for i in range(50)], [], cron_db, down(settings))
    processes = broker_processes(own_broker)
    for p in processes:
        os.kill(p.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        done = subprocess.run(
            [*VVV, "outbox", "flush", "--db", cron_db, "--timeout", "2"],
            capture_output=True,
            text=True,
            env=cli_env(settings),
            timeout=60,
        )
        took = time.monotonic() - started
    finally:
        for p in processes:
            os.kill(p.pid, signal.SIGCONT)
    assert done.returncode == 1 and "outbox flush: delivered 0, kept in outbox 50" in done.stdout
    assert took < 2 + 6, f"{took:.1f} s"  # its timeout, and starting Python
    assert outbox_count(cron_db) == 50


AS_USER = """
import os, sys
# what the code below reads (modules, schemas) read while still root: the interpreter and this checkout may be
# where the test's users cannot read, as any of root's folders
import encodings.idna, json, sqlite3, fastavro, vvv_core.cli, vvv_core.hook, vvv_core.registry
from vvv_core.config import Settings
vvv_core.hook.encode(Settings.from_env(), vvv_core.hook.Records())
uid, gid, shared = (int(a) for a in sys.argv[1:4])
os.setgroups([shared])
os.setgid(gid)
os.setuid(uid)
os.umask(0o022)  # the usual one: sharing must not depend on a kinder umask
exec(sys.argv[4])
"""
HOOK = """
from vvv_core.config import Settings
from vvv_core.hook import background_processing
items = [{"video_id": v, "view_count": int(c)} for v, c in (x.split(":") for x in sys.argv[5].split(","))]
print(background_processing(items, [], sys.argv[6], Settings.from_env()))
"""
CLI = "sys.exit(vvv_core.cli.main(sys.argv[5:]))"


@contextlib.contextmanager
def two_users_and_a_group() -> Iterator[tuple[int, tuple[int, int], tuple[int, int]]]:
    """A group and two users in it, each with a private primary group: (group id, (uid, gid) of each)."""
    tag = uuid.uuid4().hex[:8]
    group, users = f"vvvg{tag}", [f"vvvc{tag}", f"vvvp{tag}"]
    subprocess.run(["groupadd", group], check=True)
    try:
        for user in users:
            subprocess.run(["useradd", "-M", "-U", "-G", group, "-s", "/usr/sbin/nologin", user], check=True)
        yield grp.getgrnam(group).gr_gid, *((pwd.getpwnam(u).pw_uid, pwd.getpwnam(u).pw_gid) for u in users)
    finally:
        for user in users:
            subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", group], capture_output=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="two real users: root creates them (CI runs as root)")
def test_two_users_share_the_outbox_through_its_group(settings, schemas):
    """The hook in the cron's own Python as one user, `vvv publish` and `vvv outbox flush` as another, both in the
    group the operator gave the cron's data directory (setgid, 2770), each with the usual umask 022: each drains,
    removes, appends to and folds what the other wrote, and every file of the outbox stays the group's, 0660."""
    with two_users_and_a_group() as (shared, cron, publisher):
        data = Path(tempfile.mkdtemp(prefix="vvv-shared-"))  # pytest's tmp_path is root's alone
        try:
            os.chown(data, 0, shared)
            os.chmod(data, 0o2770)
            cron_db = str(data / "cron.db")
            conn = sqlite3.connect(cron_db)
            conn.executescript(CRON_SCHEMA)
            conn.close()
            os.chown(cron_db, cron[0], shared)  # the cron's, its group may write (as `vvv publish` does)
            os.chmod(cron_db, 0o660)

            def run(user: tuple[int, int], code: str, *args: str, up: bool = True) -> str:
                # a generous deadline where the broker is up; where it is not, the hook waits its deadline out
                env = cli_env(settings if up else down(settings), VVV_HOOK_TIMEOUT="30" if up else "2")
                argv = [sys.executable, "-c", AS_USER, str(user[0]), str(user[1]), str(shared), code, *args]
                done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=data, timeout=90)
                assert done.returncode in (0, 1), done.stderr
                return done.stdout

            hook = lambda user, items, up=True: run(user, HOOK, items, cron_db, up=up)  # noqa: E731
            assert "kept in outbox 2" in hook(cron, "videoA:1,videoB:1", up=False)
            add_video(cron_db, "videoC", "PL", [(1, 0, 0, hours_ago(1))])
            assert "publish: delivered 3, kept in outbox 0" in run(publisher, CLI, "publish", "--db", cron_db)
            assert "kept in outbox 1" in hook(cron, "videoA:2", up=False)
            add_video(cron_db, "videoD", "PL", [(1, 0, 0, hours_ago(1))])
            assert "kept in outbox 2" in run(publisher, CLI, "publish", "--db", cron_db, "--timeout", "2", up=False)
            assert "delivered 3, kept in outbox 0" in hook(cron, "videoA:3")
            assert "kept in outbox 1" in hook(cron, "videoB:2", up=False)
            assert "delivered 1, kept in outbox 0" in run(publisher, CLI, "outbox", "flush", "--db", cron_db)

            folder = outbox_dir(cron_db)
            assert stat.S_IMODE(folder.stat().st_mode) == 0o2770 and folder.stat().st_gid == shared
            files = {p.name: p.stat() for p in folder.iterdir()}
            assert {"lock", "published.log", "published.db"} <= set(files)
            assert {(name, stat.S_IMODE(s.st_mode), s.st_gid) for name, s in files.items()} == {
                (name, 0o660, shared) for name in files
            }
            assert {s.st_uid for s in files.values()} == {cron[0], publisher[0]}  # each created some of them
        finally:
            shutil.rmtree(data)
    records = [schemas.decode(m.value(), "VideoEvent") for m in read_topic(settings, settings.videos_topic)]
    assert sorted((r["video_id"], r["view_count"]) for r in records) == [
        ("videoA", 1), ("videoA", 2), ("videoA", 3), ("videoB", 1), ("videoB", 2), ("videoC", 1), ("videoD", 1)
    ]  # fmt: skip
