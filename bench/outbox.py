"""Benchmark of draining a large outbox (issue 26). Run by hand:

    .venv/bin/python bench/outbox.py [--broker embedded|kafka] [--events 1000000] [--done-when 800000]

Prints: the time `vvv outbox flush`'s drain (``flush_outbox``, in this process, reading the segments
included) takes to empty an outbox of ``--events`` events kept as the hook keeps them, beside a bare
producer sending the same bytes (the hook's producer settings, every message handed over at once, then
one flush), as a ratio of the two in one run; then the issue's "done when" for an outbox of
``--done-when`` events: one `vvv outbox flush` on a healthy broker (repeats counted on the topic), and
`vvv outbox flush --timeout 10` again and again (each a new process) on a struggling broker (stopped
with SIGSTOP 0.9 s of every second) until it is empty: each call's progress and the repeats it cost.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import FAST_GROUPS, figure
from confluent_kafka import Producer

from vvv_core import kafka
from vvv_core.apache_kafka import ApacheKafka
from vvv_core.broker import EmbeddedBroker
from vvv_core.config import Settings
from vvv_core.domain.regions import REGIONS
from vvv_core.hook import PublishReport, encode, flush_outbox, validate
from vvv_core.outbox import HOOK_PRODUCER, outbox_dir
from vvv_core.spool import Message, Spool

CHUNK = 10_000  # events encoded and kept per hook-sized batch
FLUSH = re.compile(r"outbox flush: delivered (\d+), kept in outbox (\d+)(?: \((\d+) of them sent unconfirmed)?")


def kept_outbox(settings: Settings, db_path: str, events: int) -> list[Message]:
    """An outbox of ``events`` events, as the hook keeps them (10,000 a segment), and the same messages."""
    messages: list[Message] = []
    spool = Spool(outbox_dir(db_path))
    for start in range(0, events, CHUNK):
        items = [
            {
                "video_id": f"v{i % 400_000:010d}",  # 400,000 videos: a video's later events follow its earlier ones
                "region": REGIONS[i % 7],
                "title": f"video {i}",
                "thumbnail_url": f"https://i.ytimg.com/vi/{i}/default.jpg",
                "view_count": i,
                "likes": i // 30,
                "comments": i // 300,
            }
            for i in range(start, min(events, start + CHUNK))
        ]
        chunk = encode(settings, validate(items, [], PublishReport()))
        spool.write(chunk)
        messages += chunk
    return messages


def on_topics(settings: Settings) -> int:
    return sum(high - low for low, high in kafka.watermarks(settings, settings.videos_topic, timeout=30).values())


def flush(settings: Settings, db_path: str, timeout: float | None = None) -> tuple[float, int, int, int]:
    """`vvv outbox flush` in its own process: seconds, delivered, kept, sent unconfirmed."""
    env = {**os.environ, **FAST_GROUPS, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap}
    env["VVV_NAMESPACE"] = settings.namespace
    command = [sys.executable, "-m", "vvv_core.cli", "outbox", "flush", "--db", db_path]
    command += ["--timeout", str(timeout)] if timeout else []
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    took = time.perf_counter() - started
    match = FLUSH.search(done.stdout)
    assert match, done.stdout + done.stderr
    return took, int(match[1]), int(match[2]), int(match[3] or 0)


def bare_producer(settings: Settings, messages: list[Message]) -> float:
    """Seconds a bare producer takes to send ``messages`` and have them all acknowledged."""
    producer = Producer(kafka.producer_config(settings, **HOOK_PRODUCER))
    producer.list_topics(timeout=10)  # connected, as the drain is once it checked its topics
    started = time.perf_counter()
    for topic, key, value, _headers in messages:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(300) == 0
    return time.perf_counter() - started


def bench_drain(broker, events: int, tmp: Path) -> None:
    drain = Settings(bootstrap=broker.bootstrap, namespace="drain")
    bare = Settings(bootstrap=broker.bootstrap, namespace="bare")
    for s in (drain, bare):
        kafka.ensure_project_topics(kafka.admin(s), s, [])
    db_path = str(tmp / "drain.db")
    messages = kept_outbox(drain, db_path, events)
    kafka.check_broker(drain)
    started = time.perf_counter()
    report = flush_outbox(db_path, drain)
    drained = time.perf_counter() - started
    assert (report.delivered, report.queued) == (events, 0) and on_topics(drain) == events, report
    bare_messages = [m._replace(topic=bare.videos_topic) for m in messages]
    del messages
    alone = bare_producer(bare, bare_messages)
    assert on_topics(bare) == events
    print(
        f"outbox: {events:,} events drained (`vvv outbox flush`'s call, reading the segments included) in "
        f"{drained:.1f} s; a bare producer sending the same bytes {alone:.1f} s: {drained / alone:.2f}x"
    )
    figure(f"outbox, {events:,} events, drain / bare producer", drained / alone, "x")
    figure(f"outbox, {events:,} events, drained per second", events / drained, "events/s")


def bench_done_when(broker, events: int, tmp: Path) -> None:
    """Issue 26's "done when": one flush on a healthy broker, a handful of calls on a struggling one."""
    healthy = Settings(bootstrap=broker.bootstrap, namespace="healthy")
    kafka.ensure_project_topics(kafka.admin(healthy), healthy, [])
    db_path = str(tmp / "healthy.db")
    kept_outbox(healthy, db_path, events)
    took, delivered, kept, _ = flush(healthy, db_path)
    repeats = on_topics(healthy) - events
    print(
        f"outbox, healthy broker: {events:,} events in one flush: delivered {delivered:,}, kept {kept:,}, "
        f"{took:.1f} s, repeats on the topic {repeats:,} ({repeats / events:.1%})"
    )
    figure("outbox, healthy broker: repeats of one flush", repeats / events * 100, "%", 10, higher_is_better=False)

    struggling = Settings(bootstrap=broker.bootstrap, namespace="struggling")
    kafka.ensure_project_topics(kafka.admin(struggling), struggling, [])
    db_path = str(tmp / "struggling.db")
    kept_outbox(struggling, db_path, events)
    processes = [n.process for n in broker.nodes] if hasattr(broker, "nodes") else [broker.process]
    stopped = threading.Event()

    def duty_cycle() -> None:  # stopped 0.9 s of every second
        while not stopped.is_set():
            for p in processes:
                os.kill(p.pid, signal.SIGSTOP)
            time.sleep(0.9)
            for p in processes:
                os.kill(p.pid, signal.SIGCONT)
            stopped.wait(0.1)

    calls, unconfirmed = [], 0
    thread = threading.Thread(target=duty_cycle)
    thread.start()
    try:
        kept = events
        while kept and len(calls) < 50:
            took, delivered, kept, cut = flush(struggling, db_path, timeout=10)
            calls.append(delivered)
            unconfirmed += cut
            print(f"  call {len(calls)}: delivered {delivered:,}, kept {kept:,} ({cut:,} unconfirmed), {took:.1f} s")
            assert delivered > 0, "a call that reached the broker made no progress"
    finally:
        stopped.set()
        thread.join()
        for p in processes:
            os.kill(p.pid, signal.SIGCONT)
    repeats = on_topics(struggling) - events
    print(
        f"outbox, struggling broker (SIGSTOP 0.9 s of every second), {events:,} events: {len(calls)} calls of "
        f"`vvv outbox flush --timeout 10`, each delivered something; repeats on the topic {repeats:,} "
        f"({repeats / events:.1%}; the calls reported {unconfirmed:,} sent unconfirmed)"
    )
    figure("outbox, struggling broker: calls to drain", len(calls), "calls")
    figure("outbox, struggling broker: repeats", repeats / events * 100, "%")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", choices=("embedded", "kafka"), default="embedded")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--done-when", type=int, default=800_000, help="events for the issue's done-when checks")
    args = parser.parse_args()
    broker = ApacheKafka() if args.broker == "kafka" else EmbeddedBroker()
    print(f"broker: {args.broker}")
    with broker, tempfile.TemporaryDirectory() as tmp:
        bench_drain(broker, args.events, Path(tmp))
        if args.done_when:
            bench_done_when(broker, args.done_when, Path(tmp))


if __name__ == "__main__":
    main()
