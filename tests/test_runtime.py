"""The runtime without a broker (``backends/memory.py``): order, commits, revoke, drain, retries,
time limit, dead letters and exactly-once, each asserted on what ends up in SQLite, on the topics
and in the committed offsets. Every test here is one a deliberate break must turn red
(``scripts/breaks.py``)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from conftest import Member, wait_for

from vvv_core import db, events
from vvv_core.avro import SchemaStore
from vvv_core.config import Settings
from vvv_core.domain.thumbnail import ThumbnailVerdict
from vvv_core.errors import Fatal, InvalidInput
from vvv_core.runtime import Checked, ConcurrentExecutor, ConsumerStopped, EffectGroup
from vvv_core.runtime.backends.memory import ABORTED, COMMITTED, OPEN, MemoryBackend, MemoryBroker
from vvv_core.runtime.deadletter import read_headers
from vvv_core.runtime.model import Effect

Check = Callable[[events.VideoEvent, int], Checked]
SCHEMAS = SchemaStore()

EVENT_IDS = events.new_event_ids()


def verdict(status: str, reason: str | None = None, transient: bool = False, attempt: int = 1) -> Checked:
    return Checked(ThumbnailVerdict(status, reason=reason).detail(attempt), transient=transient)


class EchoGroup(EffectGroup):
    """A group whose check is the test's function: stores each verdict per video."""

    name = "thumbnails"  # the Result schema knows the real groups only
    reads = "videos"
    event_schema = "VideoEvent"
    detail_schema = "ThumbnailDetail"
    parse_events = staticmethod(events.video_events)
    check: Check

    def prepare(self) -> None:
        self.conn.execute("CREATE TABLE IF NOT EXISTS verdicts (video_id TEXT PRIMARY KEY, status, reason, attempts)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS applied (video_id TEXT, reason TEXT)")

    def executor(self) -> ConcurrentExecutor:
        s = self.settings
        return ConcurrentExecutor(
            lambda event, attempt: type(self).check(event, attempt),
            concurrency=8,
            attempts=s.thumbnail_attempts,
            retry_delay=s.thumbnail_retry_delay,
            time_limit=s.time_limit,
            on_give_up=lambda _event, reason, attempts: ThumbnailVerdict("error", reason=reason).detail(attempts),
        )

    @classmethod
    def apply(cls, conn: sqlite3.Connection, effects: list[Effect]) -> None:
        rows = [(e.video_id, e.detail["status"], e.detail["reason"], e.detail["attempts"]) for e in effects]
        conn.executemany("INSERT INTO applied VALUES (?, ?)", [(v, r) for v, _s, r, _a in rows])
        conn.executemany(
            "INSERT INTO verdicts VALUES (?, ?, ?, ?) ON CONFLICT (video_id) DO UPDATE SET status = excluded.status,"
            " reason = excluded.reason, attempts = excluded.attempts",
            rows,
        )


class Pipeline:
    """One member on an in-memory broker, running in a thread."""

    def __init__(
        self,
        tmp_path,
        check: Check,
        *,
        partitions: int = 2,
        auto_ack: bool = True,
        broker: MemoryBroker | None = None,
        **settings: Any,
    ) -> None:
        """``broker``: another pipeline's, for a member taking over (the same database and topics)."""
        self.broker = broker or MemoryBroker(partitions)
        self.settings = Settings(namespace="t", **{"thumbnail_retry_delay": 0.05, "stop_timeout": 5, **settings})
        self.backend = MemoryBackend(self.broker, auto_ack=auto_ack, transactional=self.settings.exactly_once)
        self.path = tmp_path / "cron.db"
        if broker is None:
            with sqlite3.connect(self.path) as conn:  # what db.connect recognises as the cron's database
                for table in db.CRON_TABLES:
                    conn.execute(f"CREATE TABLE {table} (video_id TEXT)")
        group_class = type("Echo", (EchoGroup,), {"check": staticmethod(check)})
        self.group = group_class(self.settings, db.connect(self.path))
        self.member = Member(self.group, self.settings, until_idle=None, backend=self.backend)
        self.runner, self.thread = self.member.runner, self.member.thread

    @property
    def error(self) -> BaseException | None:
        return self.member.error

    def start(self, assign: bool = True) -> Pipeline:
        self.member.start()
        wait_for(lambda: self.backend._listener is not None, 5, "the member to subscribe")
        if assign:
            self.backend.assign(range(self.broker.partitions))
            wait_for(lambda: len(self.runner.owned) == self.broker.partitions, 5, "the assignment")
        return self

    def stop(self) -> None:
        self.runner.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()

    def publish(
        self, video_id: str, title: str = "", value: bytes | None = None, state: str = COMMITTED
    ) -> tuple[str, int]:
        """``state``: OPEN or ABORTED for an event a transactional producer upstream wrote."""
        if value is None:
            item = {"video_id": video_id, "title": title or None}
            record = events.video_record(item, next(EVENT_IDS), events.now_ms())
            value = SCHEMAS.encoder("VideoEvent")(record)
        return self.broker.publish(self.settings.videos_topic, video_id.encode(), value, state=state)

    def end_offsets(self) -> dict[tuple[str, int], int]:
        topic = self.settings.videos_topic
        return {(topic, p): len(log) for p, log in enumerate(self.broker.log(topic)) if log}

    def rows(self) -> dict[str, tuple]:
        with sqlite3.connect(self.path) as conn:  # another connection: only committed rows
            return {r[0]: r[1:] for r in conn.execute("SELECT * FROM verdicts")}

    def applied(self) -> list[tuple[str, str]]:
        with sqlite3.connect(self.path) as conn:
            return conn.execute("SELECT video_id, reason FROM applied ORDER BY rowid").fetchall()

    def results(self, isolation: str = "read_committed") -> list[dict]:
        records = self.broker.read(self.settings.results_topic, isolation)
        return [SCHEMAS.decode(r.value, "Result") for r in records]

    def dead_letters(self):
        return self.broker.read(self.settings.dead_letter_topic("thumbnails"))


def vid(n: int) -> str:
    return f"video{n:06d}"


def valid(event, attempt: int) -> Checked:
    return verdict("valid", event.title, attempt=attempt)


def test_a_videos_events_take_effect_in_offset_order_even_when_the_earlier_one_is_retried(tmp_path):
    """The older event fails once and is retried; the newer one would finish first and be overwritten."""
    release = threading.Event()

    def check(event, attempt):
        if event.title == "older" and attempt == 1:
            return verdict("error", "flaky", transient=True)
        if event.title == "older":
            release.wait(5)  # the retry of the older event is slow
        return valid(event, attempt)

    p = Pipeline(tmp_path, check, partitions=1)
    p.publish(vid(1), "older")
    p.publish(vid(1), "newer")
    p.publish(vid(2), "other video")
    p.start()
    wait_for(lambda: vid(2) in p.rows(), 5, "another video to flow while the first one's retry waits")
    assert vid(1) not in p.rows()  # the newer event waits for the older one
    release.set()
    wait_for(lambda: len(p.applied()) == 3, 5, "every event")
    p.stop()
    assert p.rows()[vid(1)][1] == "newer"
    assert [r for v, r in p.applied() if v == vid(1)] == ["older", "newer"]
    assert [r["detail"]["reason"] for r in p.results() if r["video_id"] == vid(1)] == ["older", "newer"]


def test_never_commits_past_an_unfinished_event(tmp_path):  # commits due on every turn
    release = threading.Event()

    def check(event, attempt):
        if event.video_id == vid(0):
            release.wait(5)
        return valid(event, attempt)

    p = Pipeline(tmp_path, check, partitions=1, commit_interval=0)
    for n in range(5):
        p.publish(vid(n))
    p.start()
    wait_for(lambda: len(p.rows()) == 4, 5, "the four later events")
    time.sleep(0.2)  # commits are due on every turn
    assert all(offsets.get((p.settings.videos_topic, 0), 0) == 0 for offsets in p.backend.commits)
    release.set()
    wait_for(lambda: p.broker.committed == p.end_offsets(), 5, "the commit past all five")
    p.stop()


def test_offsets_are_committed_only_once_the_broker_acknowledged_the_results(tmp_path):
    p = Pipeline(tmp_path, valid, auto_ack=False, commit_interval=0)
    for n in range(6):
        p.publish(vid(n))
    p.start()
    wait_for(lambda: len(p.rows()) == 6, 5, "the SQLite effects")
    time.sleep(0.2)
    assert all(offset == 0 for commit in p.backend.commits for offset in commit.values()) and p.results() == []
    p.backend.auto_ack = True
    wait_for(lambda: p.broker.committed == p.end_offsets(), 5, "the commit after the acknowledgements")
    assert len(p.results()) == 6
    p.stop()


def test_finished_work_is_committed_before_partitions_are_given_up(tmp_path):  # no commit is due otherwise
    p = Pipeline(tmp_path, valid, commit_interval=3600)
    for n in range(10):
        p.publish(vid(n))
    p.start()
    wait_for(lambda: len(p.results()) == 10, 5, "every result")
    assert p.broker.committed == {}  # not due yet
    lag = p.runner.metrics.registry.get_sample_value
    wait_for(lambda: lag("vvv_lag", {"group": "thumbnails", "partition": "0"}) is not None, 5, "the lag gauge")
    p.backend.revoke([0, 1])
    wait_for(lambda: not p.runner.owned, 5, "the revocation")
    assert p.broker.committed == p.end_offsets()
    assert lag("vvv_lag", {"group": "thumbnails", "partition": "0"}) is None  # another member reports it now
    p.stop()


def test_a_commit_is_due_after_so_many_finished_events_before_its_interval(tmp_path, monkeypatch):
    """Every ``VVV_COMMIT_INTERVAL`` or ``COMMIT_EVERY`` (10,000) finished events, whichever comes first: a busy
    member's crash repeats at most that many, however long its interval."""
    from vvv_core.runtime import checkpoint

    monkeypatch.setattr(checkpoint, "COMMIT_EVERY", 5)
    p = Pipeline(tmp_path, valid, partitions=1, commit_interval=3600)
    for n in range(10):
        p.publish(vid(n))
    p.start()
    wait_for(lambda: len(p.results()) == 10, 5, "every result")
    wait_for(lambda: p.broker.committed.get((p.settings.videos_topic, 0), 0) >= 5, 5, "a commit past five events")
    p.stop()


def test_lost_partitions_commit_nothing(tmp_path):
    p = Pipeline(tmp_path, valid, commit_interval=3600)
    for n in range(10):
        p.publish(vid(n))
    p.start()
    wait_for(lambda: len(p.results()) == 10, 5, "every result")
    p.backend.revoke([0, 1], lost=True)
    wait_for(lambda: not p.runner.owned, 5, "the loss")
    p.stop()
    assert p.broker.committed == {}


def test_a_graceful_stop_lets_running_checks_finish_and_commits_them(tmp_path):
    started = threading.Semaphore(0)

    def slow(event, attempt):
        started.release()
        time.sleep(0.5)
        return valid(event, attempt)

    p = Pipeline(tmp_path, slow, commit_interval=3600)
    for n in range(4):
        p.publish(vid(n))
    p.start()
    for _ in range(4):
        assert started.acquire(timeout=5)
    p.stop()  # while all four run
    assert len(p.rows()) == 4 and len(p.results()) == 4
    assert p.broker.committed == p.end_offsets()


def test_a_store_that_fails_midway_leaves_nothing_behind(tmp_path):
    class Exploding(Exception):
        pass

    p = Pipeline(tmp_path, valid, partitions=1)
    p.publish(vid(2), "explodes")
    store = p.group.store

    def exploding_store(conn, outcomes):
        store(conn, outcomes)  # the batch's rows are written ...
        if any(o.detail["reason"] == "explodes" for o in outcomes):
            raise Exploding("after writing")  # ... and then the turn fails

    p.group.store = exploding_store
    p.start()
    p.thread.join(5)
    assert isinstance(p.error, Exploding)
    assert p.rows() == {} and p.results() == [] and p.broker.committed == {}


def test_dead_letters_keep_the_original_bytes_and_say_why(tmp_path):
    def check(event, attempt):
        if event.title == "invalid":
            raise InvalidInput("the check refused it")
        if event.title == "bug":
            raise TimeoutError("a socket timed out inside the check")  # a bug, not the runtime's time limit
        return valid(event, attempt)

    p = Pipeline(tmp_path, check, partitions=1)
    p.publish(vid(1), value=b"\x00not avro")
    p.publish(vid(2), "invalid")
    p.publish(vid(3), "bug")
    p.publish(vid(4), "fine")
    p.start()
    wait_for(lambda: len(p.dead_letters()) == 3, 5, "three dead letters")
    p.stop()
    letters = {r.key.decode(): r for r in p.dead_letters()}
    why = {video: read_headers(r.headers) for video, r in letters.items()}
    assert letters[vid(1)].value == b"\x00not avro"
    assert {v: (w["error.kind"], w["error.class"]) for v, w in why.items()} == {
        vid(1): ("invalid", "DecodeError"),
        vid(2): ("invalid", "InvalidInput"),
        vid(3): ("unexpected", "TimeoutError"),
    }
    assert why[vid(3)]["attempts"] == "1"  # dead-lettered at once, not retried
    assert why[vid(2)]["error.message"] == "the check refused it" and why[vid(2)]["group"] == "thumbnails"
    assert [(w["source.topic"], w["source.offset"]) for w in why.values()] == [
        (p.settings.videos_topic, str(n)) for n in range(3)
    ]
    assert list(p.rows()) == [vid(4)] and p.broker.committed == p.end_offsets()


def test_a_fatal_failure_stops_the_member_and_its_event_is_neither_dead_lettered_nor_committed(tmp_path):
    """``Fatal`` is what the operator must fix (a full disk): the member stops, and the event is redone after."""

    def check(event, attempt):
        if event.title == "fatal":
            raise Fatal("the disk is full")
        return valid(event, attempt)

    p = Pipeline(tmp_path, check, partitions=1)
    p.publish(vid(1), "fine")
    p.publish(vid(2), "fatal")
    p.start()
    p.thread.join(5)
    stopped = not p.thread.is_alive()
    if not stopped:
        p.stop()
    assert stopped and isinstance(p.error, Fatal) and str(p.error) == "the disk is full"
    assert p.dead_letters() == [] and vid(2) not in p.rows()
    assert p.broker.committed.get((p.settings.videos_topic, 0), 0) <= 1  # never past the failed event


def test_a_dead_letter_too_large_to_keep_whole_names_its_size(tmp_path):
    p = Pipeline(tmp_path, valid, max_message_bytes=1024)
    p.publish(vid(1), value=b"\x00" * 5000)
    p.start()
    wait_for(lambda: p.dead_letters(), 5, "the dead letter")
    p.stop()
    letter = p.dead_letters()[0]
    assert letter.value is None and read_headers(letter.headers)["value.omitted"] == "5000"


def test_a_flood_of_dead_letters_stops_the_member_before_publishing_them(tmp_path):
    p = Pipeline(tmp_path, valid, partitions=1)
    for n in range(300):
        p.publish(vid(n), value=b"garbage")
    p.start()
    p.thread.join(5)
    assert isinstance(p.error, ConsumerStopped) and "were dead-lettered" in str(p.error)
    assert len(p.dead_letters()) < 300 and p.broker.committed == {}


def test_an_attempt_past_the_time_limit_is_abandoned_and_tried_again(tmp_path):
    def check(event, attempt):
        if attempt == 1:
            time.sleep(2)  # hangs past the limit; its late answer must be ignored
            return verdict("valid", "late first attempt", attempt=attempt)
        return verdict("valid", "second attempt", attempt=attempt)

    p = Pipeline(tmp_path, check, time_limit=0.3)
    p.publish(vid(1))
    p.start()
    wait_for(lambda: p.rows(), 5, "the verdict")
    time.sleep(2)  # the abandoned attempt answers meanwhile
    p.stop()
    assert p.rows()[vid(1)] == ("valid", "second attempt", 2)
    assert [r for _v, r in p.applied()] == ["second attempt"]


def test_transient_failures_are_retried_then_given_up_with_the_last_reason(tmp_path):
    def check(event, attempt):
        return verdict("error", f"HTTP 503 on attempt {attempt}", transient=True, attempt=attempt)

    p = Pipeline(tmp_path, check, thumbnail_attempts=3)
    p.publish(vid(1))
    p.start()
    wait_for(lambda: p.rows(), 5, "the verdict")
    p.stop()
    assert p.rows()[vid(1)] == ("error", "HTTP 503 on attempt 3", 3) and p.dead_letters() == []


def test_a_refused_batch_is_sent_again_and_committed_once_acknowledged(tmp_path):
    p = Pipeline(tmp_path, valid)
    p.backend.refuse = 2
    for n in range(6):
        p.publish(vid(n))
    p.start()
    wait_for(lambda: {r["video_id"] for r in p.results()} == {vid(n) for n in range(6)}, 5, "every result")
    p.stop()
    assert p.broker.committed == p.end_offsets()


def test_exactly_once_commits_results_and_offsets_in_one_transaction(tmp_path):
    p = Pipeline(tmp_path, valid, exactly_once=True, commit_interval=3600)
    for n in range(6):
        p.publish(vid(n))
    p.start()
    wait_for(lambda: len(p.rows()) == 6, 5, "the SQLite effects")
    time.sleep(0.1)
    assert p.results() == []  # written, but not visible to read_committed readers before the commit
    p.stop()
    assert p.backend.transactions == ["commit"] and len(p.results()) == 6
    assert p.broker.committed == p.end_offsets()


def test_exactly_once_aborts_when_the_broker_refuses_a_message(tmp_path):
    p = Pipeline(tmp_path, valid, exactly_once=True)
    p.backend.refuse = 1
    for n in range(6):
        p.publish(vid(n))
    p.start()
    p.thread.join(5)
    assert isinstance(p.error, ConsumerStopped)
    assert p.backend.transactions == ["abort"] and p.results() == [] and p.broker.committed == {}


def test_exactly_once_offsets_become_the_groups_only_when_its_transaction_commits(tmp_path):
    """The transaction fails at its commit, after its results were written and its offsets sent: the group's
    committed offsets do not move, a read_committed reader sees nothing, and the next member redoes it all."""
    p = Pipeline(tmp_path, valid, exactly_once=True, commit_interval=3600)
    for n in range(6):
        p.publish(vid(n))
    p.backend.fail_commit = True
    p.start()
    wait_for(lambda: len(p.rows()) == 6, 5, "the SQLite effects")
    p.runner.stop()
    p.thread.join(10)
    assert isinstance(p.error, ConsumerStopped)
    assert p.broker.committed == {} and p.backend.commits == [] and p.backend.transactions == ["abort"]
    assert p.results() == [] and len(p.results("read_uncommitted")) == 6  # there, aborted
    again = Pipeline(tmp_path, valid, broker=p.broker, exactly_once=True, commit_interval=3600).start()
    wait_for(lambda: again.runner.processed == 6, 5, "the six events done again")
    again.stop()
    assert sorted(r["video_id"] for r in again.results()) == [vid(n) for n in range(6)]
    assert p.broker.committed == p.end_offsets()


def test_exactly_once_never_commits_the_work_of_a_partition_lost_inside_its_transaction(tmp_path):
    """Partition 0 is taken away (its session expired) while the open transaction holds its results. Committed,
    they would stand beside its new owner's, with no offsets of partition 0 in the transaction for the group to
    refuse. The member aborts it and starts over from the committed offsets: one result per event it kept."""
    p = Pipeline(tmp_path, valid, exactly_once=True, commit_interval=3600)
    videos = [vid(n) for n in range(12)]
    for video in videos:
        p.publish(video)
    kept = sorted(v for v in videos if p.broker.partition_for(v.encode()) == 1)
    assert 0 < len(kept) < len(videos)
    p.start()
    wait_for(lambda: p.runner.processed == len(videos), 5, "every event, in one open transaction")
    p.backend.revoke([0], lost=True)
    wait_for(lambda: p.runner.processed == len(videos) + len(kept), 5, "partition 1's events done again")
    p.stop()
    assert p.backend.transactions == ["abort", "commit"] and p.backend.rejoins == 1
    assert sorted(r["video_id"] for r in p.results()) == kept  # partition 0's: its next owner's to publish
    assert p.broker.committed == {(p.settings.videos_topic, 1): len(p.broker.log(p.settings.videos_topic)[1])}


def test_exactly_once_starts_over_after_an_abortable_failure_and_keeps_going(tmp_path):
    """The transaction's commit fails as the broker fails one whose member epoch just moved on (KIP-848): the
    member does not stop; it starts over from the committed offsets, and every event gets one result."""
    p = Pipeline(tmp_path, valid, exactly_once=True, commit_interval=3600)
    for n in range(6):
        p.publish(vid(n))
    p.backend.abortable_commit = True
    p.start()
    wait_for(lambda: p.runner.processed == 6, 5, "the events, in one open transaction")
    p.runner.checkpoint.commit_interval = 0  # the commit due now: it fails
    wait_for(lambda: p.broker.committed == p.end_offsets(), 5, "every offset committed after starting over")
    assert p.thread.is_alive() and p.error is None
    assert p.backend.transactions[:2] == ["abort", "commit"] and p.backend.rejoins == 1
    assert sorted(r["video_id"] for r in p.results()) == [vid(n) for n in range(6)]
    p.stop()


def test_a_member_never_processes_what_a_transaction_upstream_aborted_nor_what_it_has_not_committed(tmp_path):
    p = Pipeline(tmp_path, valid, partitions=1)
    p.publish(vid(1), "before")
    p.publish(vid(2), "aborted", state=ABORTED)
    p.publish(vid(3), "after")
    p.publish(vid(4), "open", state=OPEN)
    p.publish(vid(5), "behind the open one")
    p.start()
    wait_for(lambda: len(p.rows()) == 2, 5, "the committed events before the open transaction")
    time.sleep(0.2)
    assert set(p.rows()) == {vid(1), vid(3)}  # the open one holds back what follows it (the last stable offset)
    p.broker.log(p.settings.videos_topic)[0][3].state = COMMITTED  # its transaction commits
    wait_for(lambda: len(p.rows()) == 4, 5, "the rest")
    p.stop()
    assert set(p.rows()) == {vid(1), vid(3), vid(4), vid(5)}


def test_fetching_pauses_while_too_much_is_unfinished(tmp_path):
    release = threading.Event()
    p = Pipeline(tmp_path, lambda event, attempt: (release.wait(5), valid(event, attempt))[1], max_in_flight=3)
    for n in range(10):
        p.publish(vid(n))
    p.start()
    wait_for(lambda: p.backend.paused, 5, "the pause")
    release.set()
    wait_for(lambda: len(p.rows()) == 10, 5, "everything, after resuming")
    assert not p.backend.paused
    p.stop()


def test_a_group_keeping_its_own_offsets_skips_what_they_say_is_done_across_incremental_assignments(tmp_path):
    """Like the sink: offsets stored with the effects. Partitions arriving one at a time keep each one's."""
    p = Pipeline(tmp_path, valid)
    topic = p.settings.videos_topic
    by_partition: dict[int, list[str]] = {0: [], 1: []}
    for n in range(40):
        _topic, partition = p.publish(vid(n))
        by_partition[partition].append(vid(n))
    done = {(topic, 0): 3, (topic, 1): 2}  # the first three and the first two are in the database already
    p.group.start_offsets = lambda partitions: {tp: o for tp, o in done.items() if tp in partitions}
    p.start(assign=False)
    p.backend.assign([0])  # incremental: one partition, then the other
    p.backend.assign([1])
    wait_for(lambda: p.broker.committed == p.end_offsets(), 5, "every partition committed")
    p.stop()
    assert set(p.rows()) == set(by_partition[0][3:] + by_partition[1][2:])
