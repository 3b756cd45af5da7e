"""Benchmark of the thumbnails group. Run by hand:

    .venv/bin/python bench/thumbnails.py [--videos 2000] [--latency 0.05] [--concurrency 64[,128,...]] [--worst-case]

2,000 video events whose thumbnails (real 320x180 JPEGs) are served by a local HTTP server
that answers each request after 50 ms; one consumer process (`vvv consume thumbnails`).
Prints thumbnails/s from first assignment to last commit, the consumer's CPU per 1,000 checks
and its peak RSS; with several concurrencies, one run each: where the ceiling is. Then the same
checks by `vvv consume thumbnails --processes 2` against one process, 64 at once each: what a
host's second core adds. The server runs in this process, on the same two cores.

``--worst-case`` serves what costs the most memory instead: half the images are 3400x3400
RGBA PNGs (46 MB each to decode, just under half the default memory budget) and half are
bodies just under the 5 MB cap, all at once: the peak RSS is the memory ceiling in practice.
"""

from __future__ import annotations

import argparse
import io
import sqlite3
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from common import Timed, empty_cron_db, figure, timed_consumer
from PIL import Image

from vvv_core.broker import EmbeddedBroker
from vvv_core.config import Settings
from vvv_core.hook import background_processing
from vvv_core.standins import LocalServer, Reply, image_bytes


def solid_png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (200, 30, 30, 255)).save(out, "PNG")
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", default="64", help="checks at once; several, comma-separated")
    parser.add_argument("--worst-case", action="store_true")
    args = parser.parse_args()
    if args.worst_case:
        images = [solid_png(3400, 3400), b"\xff\xd8\xff" + bytes(4_999_000)]
    else:
        images = [image_bytes(320, 180, seed=s) for s in range(8)]
    route = lambda _m, path: Reply(200, images[hash(path) % len(images)])  # noqa: E731
    with (
        EmbeddedBroker() as broker,
        LocalServer(route, latency=args.latency) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        db_path = str(Path(tmp) / "cron.db")
        empty_cron_db(db_path)
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            namespace = f"thumbbench{concurrency}"
            settings = Settings(bootstrap=broker.bootstrap, namespace=namespace)
            videos = [
                {"video_id": f"t{i:010d}", "thumbnail_url": f"{server.base_url}/vi/t{i:010d}/mqdefault.jpg"}
                for i in range(args.videos)
            ]
            assert background_processing(videos, [], db_path, settings).ok
            asked = len(server.requests)
            run = timed_consumer(
                "thumbnails",
                db_path,
                broker.bootstrap,
                namespace,
                VVV_THUMBNAIL_HOSTS=urlsplit(server.base_url).netloc,
                VVV_THUMBNAIL_CONCURRENCY=str(concurrency),
            )
            verdicts = (
                sqlite3.connect(db_path)
                .execute("SELECT status, count(*) FROM thumbnail_checks GROUP BY status")
                .fetchall()
            )
            print(
                f"thumbnails: {run.processed:,} checks in {run.busy:.2f} s = {run.rate:,.0f} thumbnails/s "
                f"(one consumer process, {concurrency} at once, server latency {args.latency * 1e3:.0f} ms); "
                f"CPU {run.cpu / run.processed * 1e3:.2f} s per 1,000 checks; peak RSS {run.peak_rss_mb:.0f} MB; "
                f"verdicts {dict(verdicts)}; server saw {len(server.requests) - asked:,} asks"
            )
            name = f"thumbnails, {concurrency} at once, server {args.latency * 1e3:.0f} ms"
            figure(name, run.rate, "/s", 500)
            figure(
                f"thumbnails CPU per 1,000 checks, {concurrency} at once",
                run.cpu / run.processed * 1e3,
                "s",
                0.4,
                False,
            )
        figure("thumbnails consumer peak RSS", run.peak_rss_mb, "MB", 200, higher_is_better=False)
        one, two = (by_processes(n, args, broker.bootstrap, server, db_path) for n in (1, 2))
        print(
            f"thumbnails, --processes 2 / one process: {two.rate:,.0f} / {one.rate:,.0f} checks/s = "
            f"{two.rate / one.rate:.2f}x ({args.videos:,} checks each, 64 at once per process, the same server)"
        )
        figure("thumbnails, --processes 2 / one process", two.rate / one.rate, "x", 1.8)


def by_processes(processes: int, args: argparse.Namespace, bootstrap: str, server: LocalServer, db_path: str) -> Timed:
    """`vvv consume thumbnails --processes N` on the same videos as every other run, in a namespace of its own."""
    namespace = f"thumbprocesses{processes}"
    videos = [
        {"video_id": f"t{i:010d}", "thumbnail_url": f"{server.base_url}/vi/t{i:010d}/mqdefault.jpg"}
        for i in range(args.videos)
    ]
    assert background_processing(videos, [], db_path, Settings(bootstrap=bootstrap, namespace=namespace)).ok
    serving = time.process_time()  # this process's: the stand-in server's threads, on the same cores
    run = timed_consumer(
        "thumbnails", db_path, bootstrap, namespace, processes, VVV_THUMBNAIL_HOSTS=urlsplit(server.base_url).netloc
    )
    serving = time.process_time() - serving
    print(
        f"thumbnails, --processes {processes}: {run.processed:,} checks in {run.busy:.2f} s = {run.rate:,.0f}/s; "
        f"CPU {run.cpu / run.processed * 1e3:.2f} s per 1,000 checks (the server: {serving / run.processed * 1e3:.2f})"
    )
    return run


if __name__ == "__main__":
    main()
