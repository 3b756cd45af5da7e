"""Apache Kafka losing a broker under load: one node restarted on its data, or a cluster's leader.

While the hook publishes and all three groups consume, the broker leading the busiest
partition of the events topic is killed with SIGKILL, then restarted on its own data: the
only node of a single-node broker (a durable restart), or one of three (replication factor
3, ``min.insync.replicas=2``, ``acks=all`` for every producer). Nothing may be lost, every
score must equal the formula, every group must keep going without an operator. Apache Kafka
only (tansu keeps nothing across a restart and has no replication); the figures it prints
are in the README.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from conftest import FAST_GROUPS, FAST_KIP848, Member, outbox_count, wait_for

from vvv_core import kafka
from vvv_core.apache_kafka import ApacheKafka
from vvv_core.config import Settings
from vvv_core.domain.scoring import Snapshot, score
from vvv_core.hook import background_processing, flush_outbox
from vvv_core.kafka import read_topic
from vvv_core.standins import LocalServer, demo_oembed, demo_thumbnails

pytestmark = [pytest.mark.apache_kafka_only, pytest.mark.timeout(300)]  # three JVMs start, die and start again

ROUNDS = 40  # hook calls, 0.25 s apart: the kill falls in the middle


def expected_scores(db_path: str) -> dict[str, float]:
    """The formula applied to each video's newest snapshots, computed here without SQL ordering."""
    conn = sqlite3.connect(db_path)
    rows = conn.execute("SELECT rowid, video_id, region, view_count, likes, comments, fetched_at FROM video_snapshots")
    history: dict[str, list[tuple[int, int, Snapshot]]] = defaultdict(list)
    for rowid, video_id, region, views, likes, comments, fetched_at in rows:
        at = datetime.fromisoformat(fetched_at.replace("Z", "+00:00"))
        ms = int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1000)
        history[video_id].append((ms, rowid, Snapshot(region, views, likes, comments, ms)))
    out = {}
    for video_id, snaps in history.items():
        newest = [s for _ms, _rowid, s in sorted(snaps, key=lambda t: (t[0], t[1]), reverse=True)[:5]]
        result = score(newest)
        if result.reason is None:
            out[video_id] = result.score
    return out


@pytest.mark.parametrize("nodes", [1, 3], ids=["durable restart", "three brokers"])
def test_killing_the_busiest_leader_loses_nothing(tmp_path, sample_db, schemas, nodes):
    with (
        ApacheKafka(nodes=nodes, data=tmp_path / "cluster", properties=FAST_KIP848) as cluster,
        LocalServer(demo_thumbnails()) as thumbs,
        LocalServer(demo_oembed()) as oembed,
    ):
        settings = Settings(
            bootstrap=cluster.bootstrap,
            kafka=dict(FAST_GROUPS),
            namespace="cluster",
            replication_factor=min(3, nodes),
            thumbnail_hosts=(urlsplit(thumbs.base_url).netloc,),
            oembed_url=f"{oembed.base_url}/oembed",
            liveness_rate=6000,
            hook_timeout=0.5,
        )
        kafka.ensure_project_topics(kafka.admin(settings), settings, ["scoring", "thumbnails", "liveness"])
        conn = sqlite3.connect(sample_db)
        videos = [r[0] for r in conn.execute("SELECT video_id FROM videos ORDER BY video_id")]
        conn.close()
        members = [
            Member(g, settings, sample_db, until_idle=None).start() for g in ("scoring", "thumbnails", "liveness")
        ]

        try:
            published: Counter[str] = Counter()

            def publish(round_: int) -> None:
                batch = [videos[(round_ * 25 + i) % len(videos)] for i in range(25)]
                new = [
                    {
                        "video_id": v,
                        "region": "PL",
                        "view_count": round_,
                        "thumbnail_url": f"{thumbs.base_url}/vi/{v}/0.jpg",
                    }
                    for v in batch
                ]
                waiting = outbox_count(sample_db)
                report = background_processing(new, batch[:5], sample_db, settings)
                # every event of the call and of the outbox before it: delivered, or kept (again)
                assert report.delivered + report.queued == waiting + 30 and not report.rejected
                published["videos"] += 25
                published["stale"] += 5

            for round_ in range(ROUNDS // 2):
                publish(round_)
                time.sleep(0.25)

            # the busiest partition of the events topic, and the broker leading it
            counts = Counter(m.partition() for m in read_topic(settings, settings.videos_topic))
            busiest = counts.most_common(1)[0][0]
            topic = kafka.admin(settings).list_topics(timeout=10).topics[settings.videos_topic]
            leader = topic.partitions[busiest].leader
            victim = cluster.nodes[leader - 1]
            killed_at = time.time()
            cluster.kill(victim)

            for round_ in range(ROUNDS // 2, ROUNDS):
                publish(round_)
                time.sleep(0.25)
            cluster.start_node(victim)  # on its own data: it rejoins and catches up
            cluster.wait_ready(90)
            flushed = lambda: flush_outbox(sample_db, settings).error is None and outbox_count(sample_db) == 0  # noqa: E731
            wait_for(flushed, 60, "the outbox to be delivered")

            # done: each group's committed offsets at the end of what it reads (a count of events
            # processed would also count repeats, and could not tell a stalled partition from a lost event)
            reads = {
                "scoring": settings.videos_topic,
                "thumbnails": settings.videos_topic,
                "liveness": settings.stale_topic,
            }
            ends = {
                t: {p: high for p, (_low, high) in kafka.watermarks(settings, t).items()} for t in set(reads.values())
            }

            def behind() -> dict[str, dict[int, tuple[int, int]]]:
                out = {}
                for group, topic in reads.items():
                    done = kafka.committed_offsets(settings, settings.group_id(group), topic)
                    late = {p: (done.get(p, -1), end) for p, end in ends[topic].items() if done.get(p, -1) < end}
                    if late:
                        out[group] = late
                return out

            def done() -> bool:
                time.sleep(0.5)  # each look opens three consumers
                return not behind()

            try:
                wait_for(done, 120, "every group to commit every event")
            except AssertionError as e:
                raise AssertionError(f"{e}; (committed, end) of each partition behind: {behind()}") from None
            assert all(m.thread.is_alive() and m.error is None for m in members), [m.error for m in members]
        finally:  # before the brokers go: a member leaving its group needs them
            for member in members:
                member.runner.stop()
            for member in members:
                member.join(60)

        # every event the hook took is on its topic, once per hook call that published it
        on_videos = Counter(
            (e["video_id"], e["view_count"])
            for e in (schemas.decode(m.value(), "VideoEvent") for m in read_topic(settings, settings.videos_topic))
        )
        assert sum(on_videos.values()) >= published["videos"] and len(on_videos) == published["videos"]
        # every event has a result from each group that reads it: nothing lost
        results = [schemas.decode(m.value(), "Result") for m in read_topic(settings, settings.results_topic)]
        by_group: dict[str, set[str]] = defaultdict(set)
        for r in results:
            by_group[r["group"]].add(r["event_id"])
        video_events = {
            schemas.decode(m.value(), "VideoEvent")["event_id"] for m in read_topic(settings, settings.videos_topic)
        }
        stale_events = {
            schemas.decode(m.value(), "StaleCheckEvent")["event_id"] for m in read_topic(settings, settings.stale_topic)
        }
        for group, wanted in (("scoring", video_events), ("thumbnails", video_events), ("liveness", stale_events)):
            assert not wanted - by_group[group], f"{len(wanted - by_group[group])} events without a {group} result"
        # every stored score is the formula's
        conn = sqlite3.connect(sample_db)
        stored = {v: s for v, s in conn.execute("SELECT video_id, virality_score FROM videos") if s is not None}
        assert stored == {v: s for v, s in expected_scores(sample_db).items() if v in stored} and stored

        # the longest pause in results, and when results flowed again after the kill
        times = sorted(r["processed_at"] / 1000 for r in results)
        pause = max(b - a for a, b in itertools.pairwise(times))
        after = [t for t in times if t > killed_at]
        recovered = after[0] - killed_at if after else float("inf")
        print(
            f"\n{nodes} node(s): longest pause in results {pause:.1f} s, results {recovered:.1f} s after the kill; "
            f"{sum(on_videos.values())} events on the topic for {published['videos']} published (the outbox's repeats)"
        )
        assert cluster.running() and len(kafka.admin(settings).list_topics(timeout=10).brokers) == nodes


def test_the_restarted_broker_rejoins_the_in_sync_replicas(tmp_path):
    with ApacheKafka(nodes=3, data=tmp_path / "cluster", properties=FAST_KIP848) as cluster:
        settings = Settings(bootstrap=cluster.bootstrap, namespace="isr", replication_factor=3)
        kafka.ensure_project_topics(kafka.admin(settings), settings, [])
        victim = cluster.nodes[2]
        cluster.kill(victim)
        wait_for(lambda: _isr_sizes(settings) == {2}, 60, "the in-sync replicas to shrink to 2")
        cluster.start_node(victim)
        cluster.wait_ready(90)
        wait_for(lambda: _isr_sizes(settings) == {3}, 90, "the restarted broker to rejoin every ISR")


def _isr_sizes(settings: Settings) -> set[int]:
    topic = kafka.admin(settings).list_topics(settings.videos_topic, timeout=10).topics[settings.videos_topic]
    return {len(p.isrs) for p in topic.partitions.values()}
