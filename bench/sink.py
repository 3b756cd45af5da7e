"""The sink: results applied per second, and what storing through it adds to a check's latency.

1. 100,000 thumbnail results (as results-only workers publish them) on the results topic, then one
   `vvv sink` process drains them into the cron database: results applied per second.
2. hook -> verdict row in SQLite for single events, the thumbnails member in direct mode (it stores
   its verdicts) against results-only mode (the sink stores them): the median difference is what
   the sink adds.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).parent))
from common import empty_cron_db, figure, timed_consumer
from confluent_kafka import Producer

from vvv_core import db, kafka
from vvv_core.apache_kafka import ApacheKafka
from vvv_core.avro import SchemaStore
from vvv_core.broker import EmbeddedBroker
from vvv_core.config import Settings
from vvv_core.events import now_ms
from vvv_core.groups.sink import SinkGroup
from vvv_core.groups.thumbnails import ThumbnailGroup
from vvv_core.hook import background_processing
from vvv_core.kafka import QUICK_JOIN
from vvv_core.runtime.loop import GroupRunner
from vvv_core.standins import LocalServer, Reply, image_bytes


def publish_results(settings: Settings, count: int) -> None:
    kafka.ensure_project_topics(kafka.admin(settings), settings, ["sink"])
    encode = SchemaStore().encoder("Result")
    producer = Producer(kafka.producer_config(settings, **{"linger.ms": 20}))
    detail = {"status": "valid", "width": 320, "height": 180, "http_status": 200, "reason": None, "attempts": 1}
    for i in range(count):
        video_id = f"s{i:010d}"
        record = {
            "event_id": f"e{i}",
            "group": "thumbnails",
            "video_id": video_id,
            "processed_at": now_ms(),
            "event_at": now_ms(),
            "stored": False,
            "detail": ("com.viralvidvault.results.ThumbnailDetail", detail),
        }
        while True:
            try:
                producer.produce(settings.results_topic, encode(record), video_id.encode())
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(60)


def bench_throughput(settings: Settings, db_path: str, count: int) -> None:
    publish_results(settings, count)
    run = timed_consumer("sink", db_path, settings.bootstrap, settings.namespace)
    print(
        f"sink: {run.processed:,} results applied in {run.busy:.2f} s = {run.rate:,.0f} results/s "
        f"(one process, first assignment to last commit); peak RSS {run.peak_rss_mb:.0f} MB"
    )
    figure("sink, results applied/s", run.rate, "/s", 150_000)


def latency(settings: Settings, db_path: str, samples: int, url: str, through_sink: bool) -> list[float]:
    """Seconds from the hook's call to the verdict row, for ``samples`` single events."""
    members = [GroupRunner(ThumbnailGroup(settings, None if through_sink else db.connect(db_path)), settings)]
    if through_sink:
        members.append(GroupRunner(SinkGroup(settings, db.connect(db_path)), settings))
    threads = [threading.Thread(target=m.run, daemon=True) for m in members]
    for t in threads:
        t.start()
    while not all(m.owned for m in members):
        time.sleep(0.01)
    time.sleep(1.0)
    reader = sqlite3.connect(db_path)
    ThumbnailGroup.create_tables(reader)
    reader.commit()
    taken = []
    for i in range(samples):
        video_id = f"{'k' if through_sink else 'd'}{i:09d}"
        started = time.perf_counter()
        background_processing([{"video_id": video_id, "thumbnail_url": url}], [], db_path, settings)
        while not reader.execute("SELECT 1 FROM thumbnail_checks WHERE video_id = ?", (video_id,)).fetchone():
            time.sleep(0.0002)
        taken.append(time.perf_counter() - started)
        time.sleep(0.01)
    for m in members:
        m.stop()
    for t in threads:
        t.join()
    return taken


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", type=int, default=100_000)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--broker", choices=("embedded", "kafka"), default="embedded")
    args = parser.parse_args()
    fast = {**QUICK_JOIN, "fetch.wait.max.ms": "10"}
    broker = ApacheKafka() if args.broker == "kafka" else EmbeddedBroker()
    print(f"broker: {args.broker}")
    image = image_bytes(320, 180, seed=1)
    with broker, tempfile.TemporaryDirectory() as tmp, LocalServer(lambda _m, _p: Reply(200, image)) as server:
        db_path = str(Path(tmp) / "cron.db")
        known = [f"s{i:010d}" for i in range(args.results)]  # the videos of the results and the latency samples
        empty_cron_db(db_path, known + [f"{m}{i:09d}" for m in "kd" for i in range(args.latency_samples)])
        bench_throughput(Settings(bootstrap=broker.bootstrap, kafka=fast, namespace="sink"), db_path, args.results)
        hosts = (urlsplit(server.base_url).netloc,)
        settings = Settings(bootstrap=broker.bootstrap, kafka=fast, namespace="lat", thumbnail_hosts=hosts)
        url = f"{server.base_url}/vi/x/default.jpg"
        direct = statistics.median(latency(settings, db_path, args.latency_samples, url, through_sink=False))
        sunk = statistics.median(
            latency(settings.replace(namespace="lat2"), db_path, args.latency_samples, url, through_sink=True)
        )
        print(
            f"latency hook -> verdict row, p50 of {args.latency_samples}: direct {direct * 1e3:.1f} ms, "
            f"through the sink {sunk * 1e3:.1f} ms: the sink adds {(sunk - direct) * 1e3:.1f} ms "
            f"({sunk / direct:.2f}x)"
        )
        figure("sink mode / direct mode, latency p50", sunk / direct, "x")


if __name__ == "__main__":
    main()
