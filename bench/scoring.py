"""Benchmark of the hook and the scoring group on the embedded broker or Apache Kafka. Run by hand:

    .venv/bin/python bench/scoring.py [--broker embedded|kafka] [--fetch-wait-ms 10]
                                      [--events 100000] [--latency-samples 300] [--profile] [--tracing]

Prints: hook publish cost (10,000 events, cold and warm), scoring throughput end to end
(events/s from topic to committed SQLite writes, one consumer process, peak RSS), and the
latency from one hook call to the score in SQLite on an idle system (p50/p99). ``--tracing`` instead: what
tracing costs when it is on and nothing is sampled, the hook's calls and scoring's rate with and without it,
interleaved in one run.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from common import figure, timed_consumer
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from vvv_core import db, kafka, tracing
from vvv_core.apache_kafka import ApacheKafka
from vvv_core.broker import EmbeddedBroker
from vvv_core.config import Settings
from vvv_core.domain.regions import REGIONS
from vvv_core.groups.scoring import ScoringGroup
from vvv_core.hook import PublishReport, background_processing, encode, validate
from vvv_core.kafka import QUICK_JOIN
from vvv_core.outbox import HOOK_PRODUCER
from vvv_core.runtime.loop import GroupRunner
from vvv_core.sample import CRON_SCHEMA


def make_db(path: str, videos: int) -> int:
    """A cron database as the issue measured on: 1-6 snapshots per video (``YYYY-MM-DD HH:MM:SS``),
    2 % of videos in a region the project does not know, the rollback journal the cron uses, and,
    like the cron's, no index on snapshots (scoring makes its own). Returns the number of snapshots."""
    rng = random.Random(7)
    conn = sqlite3.connect(path)
    conn.executescript(CRON_SCHEMA)
    with conn:
        rows = []
        region_of = []
        for i in range(videos):
            region = "XX" if rng.random() < 0.02 else REGIONS[i % 7]
            region_of.append(region)
            views = rng.randint(1_000, 5_000_000)
            for hour in range(rng.randint(1, 6)):
                views += rng.randint(0, 200_000)
                rows.append(
                    (f"v{i:010d}", region, views, views // 30, views // 300, f"2026-11-28 {10 + hour:02d}:00:00")
                )
        conn.executemany(
            "INSERT INTO videos (video_id, region, title, thumbnail_url) VALUES (?, ?, ?, ?)",
            (
                (f"v{i:010d}", region_of[i], f"video {i}", f"https://i.ytimg.com/vi/{i}/default.jpg")
                for i in range(videos)
            ),
        )
        conn.executemany("INSERT INTO video_snapshots VALUES (?, ?, ?, ?, ?, ?)", rows)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
    return len(rows)


def items(start: int, n: int) -> list[dict]:
    return [
        {"video_id": f"v{i:010d}", "thumbnail_url": f"https://i.ytimg.com/vi/{i}/default.jpg", "region": REGIONS[i % 7]}
        for i in range(start, start + n)
    ]


def publish(settings: Settings, db_path: str, events: int, videos: int = 100_000) -> None:
    """``events`` video events through the hook, 10,000 per call as a cron run would (beyond ``videos``,
    the same videos again)."""
    for start in range(0, events, 10_000):
        batch = items(start, min(10_000, events - start))
        for item in batch:
            item["video_id"] = f"v{int(item['video_id'][1:]) % videos:010d}"
        assert background_processing(batch, [], db_path, settings).delivered == len(batch)


def bench_hook(settings: Settings, db_path: str) -> None:
    """The hook against a bare producer sending the same 10,000 events, already encoded, and waiting
    for their acknowledgements; the two interleaved, so drift on a noisy machine hits both alike."""
    batch = items(0, 10_000)
    started = time.perf_counter()
    assert background_processing(batch, [], db_path, settings).delivered == 10_000
    cold = time.perf_counter() - started
    messages = encode(settings, validate(batch, [], PublishReport()))
    producer = Producer(kafka.producer_config(settings, **HOOK_PRODUCER))
    producer.produce(messages[0].topic, messages[0].value, messages[0].key)
    producer.flush(10)  # connected, metadata known: warm, as the hook is
    hook, bare = [], []
    for _ in range(7):
        started = time.perf_counter()
        report = background_processing(batch, [], db_path, settings)
        hook.append(time.perf_counter() - started)
        assert report.ok and report.delivered == 10_000, report
        started = time.perf_counter()
        for m in messages:
            producer.produce(m.topic, m.value, m.key)
        producer.flush(30)
        bare.append(time.perf_counter() - started)
    warm, bare_median = statistics.median(hook), statistics.median(bare)
    ratio = statistics.median(h / b for h, b in zip(hook, bare, strict=True))
    print(
        f"hook: 10,000 events: first call (connect, create topics) {cold * 1e3:.0f} ms; warm median "
        f"{warm * 1e3:.0f} ms; a bare producer sending the same encoded events {bare_median * 1e3:.0f} ms: "
        f"{ratio:.1f}x (median of 7 interleaved pairs)"
    )
    figure("hook, 10,000 events, warm", warm * 1e3, "ms", 100, higher_is_better=False)
    figure("hook / bare producer, same events", ratio, "x", 1.5, higher_is_better=False)
    fresh = statistics.median(fresh_process_call(settings, db_path) for _ in range(7))
    print(f"hook: 10,000 events, the one call of a fresh process (topics there): median of 7 {fresh * 1e3:.0f} ms")
    figure("hook, 10,000 events, fresh process", fresh * 1e3, "ms", 100, higher_is_better=False)


FRESH = """
import sys, time
from vvv_core.config import Settings
from vvv_core.hook import background_processing
items = [{"video_id": f"f{i:010d}", "thumbnail_url": f"https://i.ytimg.com/vi/{i}/default.jpg", "region": "PL"}
         for i in range(10_000)]
settings = Settings(bootstrap=sys.argv[1], namespace=sys.argv[2])
started = time.perf_counter()
report = background_processing(items, [], sys.argv[3], settings)
print(time.perf_counter() - started if report.ok else report)
"""


def fresh_process_call(settings: Settings, db_path: str) -> float:
    """Seconds the hook's one call takes in a new process, as each cron run is (imports not counted)."""
    args = [sys.executable, "-c", FRESH, settings.bootstrap, settings.namespace, db_path]
    return float(subprocess.run(args, capture_output=True, text=True, check=True).stdout)


def bare_read_rate(settings: Settings, topic: str, count: int) -> float:
    """Messages/s a bare consumer reads the whole topic at, as fast as the client can: outside any group, assigned
    every partition, no decoding, timed from the assignment to the last message. Two ways, the faster kept: the
    project's own reader (``kafka.read_topic``, 1,000 a call with partition ends) and a plain loop of
    ``consume(10000)`` on a consumer with librdkafka's defaults but the same fetch wait."""
    started = time.perf_counter()
    records = len(kafka.read_topic(settings, topic, timeout=120))
    project = records / (time.perf_counter() - started)
    consumer = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": "bare", "fetch.wait.max.ms": 10})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    started, read = time.perf_counter(), 0
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    while read < count:
        read += sum(m.error() is None for m in consumer.consume(10000, 1.0))
    plain = read / (time.perf_counter() - started)
    consumer.close()
    print(f"a bare consumer: kafka.read_topic {project:,.0f} msg/s; a consume(10000) loop {plain:,.0f} msg/s")
    return max(project, plain)


def compare_with_peer(settings: Settings, db_path: str, events: int, ours: float, peer: str, mode: str) -> None:
    """The same job in Quix Streams (bench/peer_quix.py, its own venv), on the same topic and database; in stream
    mode with its own state store and changelog, exactly-once as ours, producing a result per event."""
    conn = sqlite3.connect(db_path)
    before = conn.execute("SELECT video_id, virality_score FROM videos ORDER BY video_id").fetchall()
    conn.execute("UPDATE videos SET virality_score = NULL")
    conn.commit()
    done = subprocess.run(
        [
            peer,
            str(Path(__file__).parent / "peer_quix.py"),
            settings.bootstrap,
            settings.videos_topic,
            db_path,
            str(events),
            mode,
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("peer\t")), None)
    if line is None:
        raise RuntimeError(f"the Quix Streams peer failed: {done.stderr[-2000:]}")
    _, written, seconds = line.split("\t")
    after = conn.execute("SELECT video_id, virality_score FROM videos ORDER BY video_id").fetchall()
    same = after == before if mode == "database" else "(results on a topic, not compared)"
    rate = int(written) / float(seconds)
    print(
        f"peer (Quix Streams 3.28, {mode} mode, same topic and broker): {int(written):,} events in "
        f"{float(seconds):.2f} s = {rate:,.0f} events/s; ours {ours:,.0f}: {ours / rate:.2f}x; the same scores: {same}"
    )
    figure(f"scoring / Quix Streams peer, same job, {mode} mode", ours / rate, "x", 3.0)


def snapshot_items(start: int, n: int, videos: int, hour: int) -> list[dict]:
    """Events announcing a snapshot each (its counts and time), for stream mode."""
    return [
        {
            "video_id": f"v{i % videos:010d}",
            "region": "PL",
            "view_count": 1000 + hour * i,
            "likes": 10,
            "comments": 1,
            "fetched_at": 1796400000000 + hour * 3_600_000,
        }
        for i in range(start, start + n)
    ]


def publish_for(mode: str, settings: Settings, db_path: str, events: int, videos: int = 100_000) -> None:
    """``events`` events through the hook, 10,000 a call; in stream mode each announcing a snapshot."""
    if mode == "database":
        return publish(settings, db_path, events, videos)
    for start in range(0, events, 10_000):
        items = snapshot_items(start, min(10_000, events - start), videos, 1 + start // videos)
        assert background_processing(items, [], db_path, settings).delivered == len(items)


def bench_throughput(settings: Settings, db_path: str, events: int, mode: str, peer: str | None = None) -> None:
    publish_for(mode, settings, db_path, events)
    with tempfile.TemporaryDirectory() as state:
        where = {"VVV_STATE_DIR": state}
        run = timed_consumer("scoring", db_path if mode == "database" else None, *_at(settings), **where)
    bare = bare_read_rate(settings, settings.videos_topic, events)
    print(
        f"scoring, {mode} mode: {run.processed:,} events in {run.busy:.2f} s = {run.rate:,.0f} events/s end to end "
        f"(one consumer process, first assignment to last commit); peak RSS {run.peak_rss_mb:.0f} MB; "
        f"a bare consumer reads the topic at {bare:,.0f} msg/s: {run.rate / bare:.3f} of it"
    )
    figure(f"scoring, {mode} mode, events/s", run.rate, "events/s")
    if peer is not None:
        compare_with_peer(settings, db_path, events, run.rate, peer, mode)
    figure(f"scoring / a bare consumer reading in batches, {mode} mode", run.rate / bare, "", 0.10)
    figure(f"scoring consumer peak RSS, {mode} mode", run.peak_rss_mb, "MB", 200, higher_is_better=False)


def _at(settings: Settings) -> tuple[str, str]:
    return settings.bootstrap, settings.namespace


def bench_latency(settings: Settings, db_path: str, samples: int) -> None:
    conn = db.connect(db_path)
    runner = GroupRunner(ScoringGroup(settings, conn), settings)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    while not runner.owned:
        time.sleep(0.01)
    time.sleep(1.0)
    reader = sqlite3.connect(db_path)
    latencies = []
    for i in range(samples):
        video_id = f"lat{i:08d}"
        with reader:
            reader.execute("INSERT INTO videos (video_id, region) VALUES (?, 'PL')", (video_id,))
            reader.executemany(
                "INSERT INTO video_snapshots VALUES (?, 'PL', ?, 10, 1, ?)",
                [(video_id, 100, "2026-11-28 10:00:00"), (video_id, 5000, "2026-11-28 11:00:00")],
            )
        started = time.perf_counter()
        background_processing([{"video_id": video_id, "thumbnail_url": "u"}], [], db_path, settings)
        while reader.execute("SELECT virality_score FROM videos WHERE video_id = ?", (video_id,)).fetchone()[0] is None:
            time.sleep(0.0002)
        latencies.append(time.perf_counter() - started)
        time.sleep(0.01)
    runner.stop()
    thread.join()
    conn.close()
    q = statistics.quantiles(latencies, n=100, method="inclusive")  # never beyond the measured extremes
    print(
        f"latency hook call -> score in SQLite ({samples} single events, idle system): "
        f"p50 {q[49] * 1e3:.1f} ms, p99 {q[98] * 1e3:.1f} ms, max {max(latencies) * 1e3:.1f} ms"
    )
    figure("latency hook -> score, p50", q[49] * 1e3, "ms", 10, higher_is_better=False)
    figure("latency hook -> score, p99", q[98] * 1e3, "ms", 50, higher_is_better=False)


# Where each function's own time goes, by the step of the scoring job it belongs to (first match wins).
STEPS = [
    ("decode", ("vvv_core/avro.py:", "fastavro", "BytesIO", "'columns' of 'vvv_core._avro.Reader", "(_parse)")),
    ("validate", ("vvv_core/events.py:", "datetime", "fullmatch", "(_accept)")),
    ("lookup (history query, snapshots)", ("(_history)", "'execute' of 'sqlite3", "scoring.py:9(__init__)", "dumps")),
    ("state (store, changelog records)", ("vvv_core/runtime/state/", "lmdb", "_state", "json", "(_json)")),
    ("formula", ("vvv_core/domain/", "(_score_from_state)")),
    ("encode (result record, Avro)", ("(_message", "'columns' of 'vvv_core._avro.Writer", "now_ms")),
    ("produce (results, delivery reports)", ("produce", "(deliver)", "(_answer)", "(report)", "Producer", "flush")),
    ("store (SQLite effects)", ("(apply)", "(store)", "executemany", "db.py", "Connection")),
    ("commit offsets", ("(_commit)", "(commit)", "committable", "(finish)", "(_settle)")),
    ("poll (fetch, messages)", ("(poll)", "(consume)", "cimpl.Message", "Inbound", "(take)")),
]


WAITING, STARTING = (
    "<method 'poll' of 'cimpl.Consumer' objects>",
    "<method 'init_transactions' of 'cimpl.Producer' objects>",
)


def profile_consumer(settings: Settings, db_path: str, events: int, mode: str) -> None:
    """The scoring member in this process under cProfile: its own time per step of the job, per event.

    Shares come from the profile; µs per event scale them to the member's measured rate without
    the profiler (the profiler's overhead falls unevenly, so the µs are estimates)."""
    publish_for(mode, settings, db_path, events)
    state = tempfile.TemporaryDirectory()
    settings = settings.replace(state_dir=state.name)
    conn = db.connect(db_path) if mode == "database" else None
    group = ScoringGroup(settings, conn)
    group.prepare()  # its index made before the profile, as the timed run makes it before its first assignment
    runner = GroupRunner(group, settings, until_idle=1.0)
    profile = cProfile.Profile()
    profile.runcall(runner.run)
    if conn is not None:
        conn.close()
    stats = pstats.Stats(profile).stats  # (file, line, function) -> (calls, primitive, tottime, cumtime, callers)
    other = "other (loop, executor, bookkeeping)"
    own: dict[str, float] = dict.fromkeys([name for name, _ in STEPS] + [other], 0.0)

    def step_of(key: tuple[str, int, str]) -> str:
        where = "{}:{}({})".format(*key)
        return next((name for name, marks in STEPS if any(m in where for m in marks)), other)

    for key, (_, _, tottime, _, callers) in stats.items():
        if key[2] in (WAITING, STARTING) or "sleep" in key[2]:
            continue  # waiting for data, or the producer's start before the first assignment: not work
        if key[0] == "~" and step_of(key) == other:  # a builtin: its time belongs to its callers' steps
            for caller, (_, _, caller_tottime, _) in callers.items():
                own[step_of(caller)] += caller_tottime
        else:
            own[step_of(key)] += tottime
    total = sum(own.values())
    timed = replace(settings, namespace=settings.namespace + "-timed")  # its own topics and group
    publish_for(mode, timed, db_path, events)
    with tempfile.TemporaryDirectory() as fresh:
        where = {"VVV_STATE_DIR": fresh}
        rate = timed_consumer("scoring", db_path if mode == "database" else None, *_at(timed), **where).rate
    state.cleanup()
    print(
        f"where the time goes, scoring in {mode} mode, {runner.processed:,} events "
        f"(profiled; µs scaled to {rate:,.0f} events/s):"
    )
    for name, seconds in own.items():
        print(f"  {name:<40} {seconds / total:6.1%}  {seconds / total * 1e6 / rate:6.1f} µs/event")
        figure(f"scoring per event, {mode} mode: {name}", seconds / total * 1e6 / rate, "µs")
    print(f"  {'all':<40} {1:6.1%}  {1e6 / rate:6.1f} µs/event")
    pstats.Stats(profile).sort_stats("tottime").print_stats(25)


def bench_tracing(bootstrap: str, fast: dict, db_path: str, events: int, rounds: int = 5) -> None:
    """Tracing on, nothing sampled (``OTEL_TRACES_SAMPLER=always_off``), against tracing off, the two interleaved:
    the hook's warm 10,000-event call (every event gets its traceparent), then scoring's rate end to end (every
    event's header looked at, every result carrying it on) against the same events without headers."""
    from opentelemetry.sdk.trace import TracerProvider

    settings = Settings(bootstrap=bootstrap, namespace="tracehook", hook_timeout=60)
    batch = items(0, 10_000)
    background_processing(batch, [], db_path, settings)  # connected, topics there
    off, on = [], []
    for _ in range(7):
        for traced, times in ((False, off), (True, on)):
            tracing.install(TracerProvider(), rate=0.0) if traced else tracing.uninstall()
            started = time.perf_counter()
            assert background_processing(batch, [], db_path, settings).delivered == 10_000
            times.append(time.perf_counter() - started)
    tracing.uninstall()
    ratio = statistics.median(t / u for t, u in zip(on, off, strict=True))
    print(
        f"tracing: the hook's warm 10,000-event call, tracing on and nothing sampled / off: {ratio:.3f} "
        f"(median of 7 interleaved pairs; {statistics.median(on) * 1e3:.0f} / {statistics.median(off) * 1e3:.0f} ms)"
    )
    figure("hook, tracing on and nothing sampled / off", ratio, "x", None, higher_is_better=False)
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_TRACES_SAMPLER": "always_off"}
    rates: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}  # CPU seconds per event: less swayed by other jobs
    for n in range(rounds):
        for traced in (False, True) if n % 2 == 0 else (True, False):
            namespace = f"trace{n}{'on' if traced else 'off'}"
            target = Settings(bootstrap=bootstrap, kafka=fast, namespace=namespace, hook_timeout=60)
            tracing.install(TracerProvider(), rate=0.0) if traced else tracing.uninstall()
            publish(target, db_path, events)
            tracing.uninstall()
            run = timed_consumer("scoring", db_path, bootstrap, namespace, **(otel if traced else {}))
            assert run.processed == events, run
            rates[traced].append(run.rate)
            cpu[traced].append(run.cpu / run.processed)
    ratio = statistics.median(rates[True]) / statistics.median(rates[False])
    print(
        f"tracing: scoring, tracing on and nothing sampled / off: {ratio:.3f} ({statistics.median(rates[True]):,.0f} "
        f"/ {statistics.median(rates[False]):,.0f} events/s, medians of {rounds} runs each, interleaved)"
    )
    figure("scoring, tracing on and nothing sampled / off", ratio, "x", 0.95)
    per_event = statistics.median(cpu[True]) / statistics.median(cpu[False])
    print(
        f"tracing: scoring's CPU per event, tracing on and nothing sampled / off: {per_event:.3f} "
        f"({statistics.median(cpu[True]) * 1e6:.1f} / {statistics.median(cpu[False]) * 1e6:.1f} µs)"
    )
    figure("scoring's CPU per event, tracing on and nothing sampled / off", per_event, "x", 1.05, False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--profile", action="store_true", help="profile the consumer in-process instead")
    parser.add_argument("--broker", choices=("embedded", "kafka"), default="embedded")
    parser.add_argument("--fetch-wait-ms", type=int, default=10, help="the consumers' fetch.wait.max.ms")
    parser.add_argument("--peer", metavar="PYTHON", help="a python with quixstreams: compare with bench/peer_quix.py")
    parser.add_argument("--tracing", action="store_true", help="what tracing costs, on and sampled out, instead")
    parser.add_argument("--mode", choices=("database", "stream", "both"), default="both", help="scoring's mode")
    args = parser.parse_args()
    fast = {**QUICK_JOIN, "fetch.wait.max.ms": str(args.fetch_wait_ms)}
    os.environ["VVV_KAFKA_FETCH_WAIT_MAX_MS"] = str(args.fetch_wait_ms)  # for the consumer processes
    broker = ApacheKafka() if args.broker == "kafka" else EmbeddedBroker()
    print(f"broker: {args.broker}; consumers' fetch.wait.max.ms={args.fetch_wait_ms}")
    with broker, tempfile.TemporaryDirectory() as tmp:
        db_path = str(Path(tmp) / "cron.db")
        snapshots = make_db(db_path, args.events)
        print(
            f"cron database: {args.events:,} videos, {snapshots:,} snapshots (1-6 each), 2 % in unknown regions, "
            "rollback journal, no index on snapshots"
        )
        if args.tracing:
            bench_tracing(broker.bootstrap, fast, db_path, args.events)
            return
        modes = ("database", "stream") if args.mode == "both" else (args.mode,)
        if args.profile:
            for mode in modes:
                at = Settings(bootstrap=broker.bootstrap, kafka=fast, namespace=f"prof-{mode}")
                profile_consumer(at, db_path, args.events, mode)
            return
        bench_hook(Settings(bootstrap=broker.bootstrap, namespace="hook"), db_path)
        for mode in modes:
            at = Settings(bootstrap=broker.bootstrap, kafka=fast, namespace=f"tput-{mode}")
            bench_throughput(at, db_path, args.events, mode, args.peer)
        bench_latency(Settings(bootstrap=broker.bootstrap, kafka=fast, namespace="lat"), db_path, args.latency_samples)


if __name__ == "__main__":
    main()
