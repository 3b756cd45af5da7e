"""Scoring from the stream without a broker (``backends/memory.py``): the newest two snapshots kept in any
order, every change in the changelog, restores on assignment (also of a partition taken back), and under
exactly-once a store never ahead of what was committed. Deliberate breaks must turn these red
(``scripts/breaks.py``)."""

from __future__ import annotations

import json
import random
import sqlite3
from collections import defaultdict
from pathlib import Path

import hypothesis
from conftest import Member, wait_for
from hypothesis import settings as examples
from hypothesis import strategies as st

from vvv_core import events
from vvv_core.avro import SchemaStore
from vvv_core.config import Settings
from vvv_core.domain.scoring import Snapshot, remember, score
from vvv_core.groups.scoring import ScoringGroup, decode_state, encode_state
from vvv_core.runtime.backends.memory import MemoryBackend, MemoryBroker
from vvv_core.runtime.model import Effect
from vvv_core.runtime.state.store import PartitionStore
from vvv_core.sample import sample_rows

SCHEMAS = SchemaStore()
EVENT_IDS = events.new_event_ids()
HOUR = 3_600_000
T0 = events.now_ms() - 100 * HOUR


def snapshot_event(video_id: str, at: int, views: int, region: str = "PL") -> bytes:
    item = {"video_id": video_id, "region": region, "view_count": views, "likes": views // 50, "comments": 3}
    return SCHEMAS.encoder("VideoEvent")(events.video_record({**item, "fetched_at": at}, next(EVENT_IDS), T0))


def expected(snapshots: list[tuple[int, int]]) -> float:
    """The score of the newest two (time, views) snapshots, as the database's lookup gives them."""
    newest = sorted(snapshots, reverse=True)[:2]
    return score([Snapshot("PL", v, v // 50, 3, at) for at, v in newest]).score


class Scoring:
    """A scoring member in stream mode on an in-memory broker, with its own state folder (its "host")."""

    def __init__(self, broker: MemoryBroker, state_dir: Path, *, batch_size: int = 2000, **settings) -> None:
        self.broker = broker
        self.settings = Settings(namespace="t", state_dir=str(state_dir), batch_size=batch_size, **settings)
        self.backend = MemoryBackend(broker, transactional=self.settings.exactly_once)
        self.member = Member(ScoringGroup(self.settings, None), self.settings, until_idle=None, backend=self.backend)
        self.runner = self.member.runner

    def start(self, partitions=None) -> Scoring:
        self.member.start()
        wait_for(lambda: self.backend._listener is not None, 5, "the member to subscribe")
        if partitions is not None:
            self.assign(partitions)
        return self

    def assign(self, partitions) -> None:
        self.backend.assign(partitions)
        wait_for(lambda: {p for _t, p in self.runner.owned} >= set(partitions), 5, "the assignment")
        wait_for(lambda: not self.runner.state.restoring, 5, "the restore")

    def revoke(self, partitions) -> None:
        self.backend.revoke(partitions)
        wait_for(lambda: not {p for _t, p in self.runner.owned} & set(partitions), 5, "the revocation")

    def stop(self) -> None:
        self.runner.stop()
        self.member.thread.join(10)
        assert not self.member.thread.is_alive()

    def publish(self, video_id: str, at: int, views: int) -> None:
        self.broker.publish(self.settings.videos_topic, video_id.encode(), snapshot_event(video_id, at, views))

    def done(self, n: int) -> None:
        wait_for(lambda: self.runner.processed >= n, 5, f"{n} events")

    def scores(self) -> dict[str, float]:
        """Each video's latest result (what the sink would store last), read_committed."""
        latest = {}
        for record in self.broker.read(self.settings.results_topic):
            result = SCHEMAS.decode(record.value, "Result")
            latest[result["video_id"]] = result["detail"]["score"]
        return latest


def test_the_newest_two_snapshots_of_the_real_data_are_the_databases_in_any_order():
    """Every video of the sample, its snapshots applied in five shuffled orders and each twice (repeats):
    the state scores what the database's lookup (the newest two by time) scores."""
    history: dict[str, list[Snapshot]] = defaultdict(list)
    for row in sample_rows():
        at = events._fetched_at(row["fetched_at"])
        history[row["video_id"]].append(
            Snapshot(row["region"], int(row["view_count"]), int(row["likes"]), int(row["comments"]), at)
        )
    rng = random.Random(20)
    for video_id, snapshots in history.items():
        by_database = score(sorted(snapshots, key=lambda s: s.fetched_at_ms, reverse=True)[:2])
        for _ in range(5):
            kept: list[Snapshot] = []
            for snapshot in rng.sample(snapshots * 2, 2 * len(snapshots)):
                kept = remember(kept, snapshot) or kept
            assert score(kept) == by_database, video_id


def test_equal_times_count_the_later_arrival_as_newer_and_repeats_change_nothing():
    a, b, c = (Snapshot("PL", v, 0, 0, 1000) for v in (1, 2, 3))
    older = Snapshot("PL", 0, 0, 0, 500)
    kept = remember([], older)
    kept = remember(kept, a)
    assert remember(kept, a) is None and remember(kept, older) is None  # repeats
    kept = remember(kept, b)
    assert kept == [b, a]  # as the later-inserted of two rows with equal times: "no time delta"
    assert score(kept).reason == "no time delta"
    assert remember(kept, older) is None  # older than both kept
    assert remember(kept, c) == [c, b]


def test_every_change_is_in_the_changelog_and_a_member_on_another_host_restores_it(tmp_path):
    broker = MemoryBroker(partitions=2)
    first = Scoring(broker, tmp_path / "host1").start([0, 1])
    for n in range(20):
        first.publish(f"v{n:03d}", T0, 1000 * n)
        first.publish(f"v{n:03d}", T0 + HOUR, 1000 * n + 500 * n)
    first.done(40)
    first.stop()
    second = Scoring(broker, tmp_path / "host2").start([0, 1])  # a fresh store: restored from the changelog
    for n in range(20):
        second.publish(f"v{n:03d}", T0 + 2 * HOUR, 1000 * n + 900 * n)
    second.done(20)
    second.stop()
    wanted = {f"v{n:03d}": expected([(T0 + HOUR, 1500 * n), (T0 + 2 * HOUR, 1900 * n)]) for n in range(20)}
    assert second.scores() == wanted


def test_a_partition_taken_back_is_restored_with_what_its_other_owner_did(tmp_path):
    """Host 1 owns partition 0, gives it up; host 2 scores a snapshot there; host 1 takes it back: its own store
    is behind, and is caught up from its own position before the next event is scored."""
    broker = MemoryBroker(partitions=1)
    one = Scoring(broker, tmp_path / "host1").start([0])
    two = Scoring(broker, tmp_path / "host2").start()
    one.publish("video", T0, 1000)
    one.done(1)
    one.revoke([0])
    two.assign([0])
    two.publish("video", T0 + HOUR, 3000)
    two.done(1)
    two.revoke([0])
    one.assign([0])
    one.publish("video", T0 + 2 * HOUR, 9000)
    one.done(2)
    one.stop()
    two.stop()
    assert one.scores() == {"video": expected([(T0 + HOUR, 3000), (T0 + 2 * HOUR, 9000)])}


def test_a_rebalance_during_a_restore_loses_nothing(tmp_path):
    """Restoring a few records a turn, the partition is taken away midway and given back: the restore goes on
    from where the store got to, and the state is whole."""
    broker = MemoryBroker(partitions=1)
    first = Scoring(broker, tmp_path / "host1").start([0])
    for n in range(300):
        first.publish(f"v{n:03d}", T0, 100 * n)
    first.done(300)
    first.stop()
    second = Scoring(broker, tmp_path / "host2", batch_size=7).start()
    second.backend.assign([0])
    wait_for(lambda: second.runner.state.stores and second.runner.state.stores[("t.videos", 0)].position, 5, "a start")
    second.backend.revoke([0])
    wait_for(lambda: not second.runner.owned, 5, "the revocation")
    second.assign([0])
    for n in range(300):
        second.publish(f"v{n:03d}", T0 + HOUR, 100 * n + 50 * n)
    second.done(300)
    second.stop()
    assert second.scores() == {f"v{n:03d}": expected([(T0, 100 * n), (T0 + HOUR, 150 * n)]) for n in range(300)}


def store_contents(state_dir: Path) -> dict[str, list[Snapshot]]:
    found = {}
    for path in (state_dir / "t.scoring").glob("*.lmdb"):
        store = PartitionStore(path)
        found.update({k: decode_state(v) for k, v in store.items().items()})
        store.close()
    return found


def test_a_store_past_its_changelogs_end_is_wiped_and_restored_from_the_start(tmp_path):
    """The changelog was deleted and made again, shorter than the store's position: it is not the one the store
    came from, so the store is wiped and restored from the new changelog's start, keeping nothing of its own."""
    broker = MemoryBroker(partitions=1)
    one = Scoring(broker, tmp_path / "host1").start([0])
    for n in range(3):
        one.publish(f"v{n}", T0, 1000)
        one.publish(f"v{n}", T0 + HOUR, 2000)
    one.done(6)
    one.stop()
    changelog = one.settings.changelog_topic("scoring")
    assert len(broker.log(changelog)[0]) >= 3
    del broker.topics[changelog]  # made again, holding one video's state only
    broker.publish(changelog, b"other", encode_state([Snapshot("PL", 1000, 20, 3, T0)]))
    again = Scoring(broker, tmp_path / "host1").start([0])  # the same store, its position past the end
    again.publish("v0", T0 + 2 * HOUR, 5000)
    again.publish("other", T0 + HOUR, 4000)
    again.done(2)
    again.stop()
    latest = again.scores()
    assert latest["v0"] == 0.0  # insufficient data: its old snapshots went with the store
    assert latest["other"] == expected([(T0, 1000), (T0 + HOUR, 4000)])  # restored from the new changelog


def test_a_damaged_store_is_wiped_and_restored_from_the_changelog(tmp_path):
    broker = MemoryBroker(partitions=1)
    one = Scoring(broker, tmp_path / "host1").start([0])
    one.publish("video", T0, 1000)
    one.done(1)
    one.stop()
    damaged = list((tmp_path / "host1").rglob("data.mdb"))
    assert damaged
    for path in damaged:
        path.write_bytes(b"not a store " * 1000)
    again = Scoring(broker, tmp_path / "host1").start([0])
    again.publish("video", T0 + HOUR, 3000)
    again.done(1)
    again.stop()
    assert again.scores() == {"video": expected([(T0, 1000), (T0 + HOUR, 3000)])}


def test_under_exactly_once_a_store_is_never_ahead_of_what_was_committed(tmp_path):
    """The transaction fails at its commit after the changes were written to the changelog: the store has none
    of them, so the member taking over (the same host) is not misled into thinking they are done."""
    broker = MemoryBroker(partitions=1)
    first = Scoring(broker, tmp_path / "host", exactly_once=True, commit_interval=3600)
    first.backend.fail_commit = True
    first.start([0])
    first.publish("video", T0, 1000)
    first.publish("video", T0 + HOUR, 5000)
    first.done(2)
    first.stop()
    assert first.member.error is not None and broker.committed == {}
    assert store_contents(tmp_path / "host") == {}  # behind, never ahead
    again = Scoring(broker, tmp_path / "host", exactly_once=True).start([0])
    again.done(2)
    again.stop()
    assert again.scores() == {"video": expected([(T0, 1000), (T0 + HOUR, 5000)])}
    assert [s.view_count for s in store_contents(tmp_path / "host")["video"]] == [5000, 1000]


def test_the_sink_stores_each_videos_latest_score_and_never_an_older_events(tmp_path):
    conn = sqlite3.connect(tmp_path / "cron.db")
    conn.executescript("CREATE TABLE videos (video_id TEXT PRIMARY KEY, region TEXT);")
    conn.execute("INSERT INTO videos VALUES ('video', 'PL')")
    ScoringGroup.create_tables(conn)

    first = score([Snapshot("PL", 5000, 0, 0, T0 + HOUR), Snapshot("PL", 1000, 0, 0, T0)]).detail()
    second = score([Snapshot("PL", 15000, 0, 0, T0 + 2 * HOUR), Snapshot("PL", 5000, 0, 0, T0 + HOUR)]).detail()
    assert first["score"] != second["score"]
    ScoringGroup.apply(conn, [Effect("video", first, T0, "a"), Effect("video", second, T0, "b")])
    assert conn.execute("SELECT virality_score FROM videos").fetchone()[0] == second["score"]  # the batch's last
    ScoringGroup.apply(conn, [Effect("video", first, T0 - 1, "late")])  # an older event's result, arriving late
    assert conn.execute("SELECT virality_score FROM videos").fetchone()[0] == second["score"]
    # a result of the same time (as every result written before event_at existed reads 0) is applied as it arrives
    ScoringGroup.apply(conn, [Effect("video", first, T0, "c")])
    assert conn.execute("SELECT virality_score FROM videos").fetchone()[0] == first["score"]


def test_a_member_with_a_state_store_runs_exactly_once_whatever_the_setting(tmp_path):
    """At-least-once, a member cut off from the broker could put a stale state on the changelog after its
    partitions moved, and compaction would keep it: with a store, the checkpoint is transactional regardless."""
    from vvv_core.runtime.loop import GroupRunner

    settings = Settings(namespace="t", state_dir=str(tmp_path), exactly_once=False)
    stream = GroupRunner(ScoringGroup(settings, None), settings)
    assert stream.backend.transactional
    direct = GroupRunner(ScoringGroup(settings, sqlite3.connect(":memory:")), settings)
    assert not direct.backend.transactional  # without a store, the setting decides


@examples(max_examples=300, derandomize=True, deadline=None)
@hypothesis.given(
    st.lists(
        st.builds(
            Snapshot,
            st.one_of(st.none(), st.text(max_size=6)),
            st.integers(0, 10**13),
            st.integers(0, 10**13),
            st.integers(0, 10**13),
            st.integers(0, 2**62),
        ),
        max_size=2,
    )
)
def test_a_state_is_written_as_json_dumps_writes_it(kept):
    """The changelog's records are JSON as ``json.dumps`` writes it, whatever a region holds, and read back whole."""
    expected = json.dumps([[s.fetched_at_ms, s.view_count, s.likes, s.comments, s.region] for s in kept]).encode()
    assert encode_state(kept) == expected
    assert decode_state(expected) == kept
