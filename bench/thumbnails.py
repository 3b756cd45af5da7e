"""Benchmark of the thumbnails group. Run by hand:

    .venv/bin/python bench/thumbnails.py [--videos 2000] [--latency 0.05] [--concurrency 64]

2,000 video events whose thumbnails (real 320x180 JPEGs) are served by a local HTTP server
that answers each request after 50 ms; one consumer process (`vvv consume thumbnails`).
Prints thumbnails/s from first assignment to last commit, and the consumer's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vvv_core.broker import EmbeddedBroker
from vvv_core.config import Settings
from vvv_core.hook import background_processing
from vvv_core.sample import CRON_SCHEMA
from vvv_core.standins import LocalServer, Reply, image_bytes

FAST_GROUPS = {"KAFKA_SESSION_TIMEOUT_MS": "2000", "KAFKA_HEARTBEAT_INTERVAL_MS": "500"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    images = [image_bytes(320, 180, seed=s) for s in range(8)]
    route = lambda _m, path: Reply(200, images[hash(path) % 8], {"Content-Type": "image/jpeg"})  # noqa: E731
    with (
        EmbeddedBroker() as broker,
        LocalServer(route, latency=args.latency) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        db_path = str(Path(tmp) / "cron.db")
        conn = sqlite3.connect(db_path)
        conn.executescript(CRON_SCHEMA)
        conn.close()
        settings = Settings(bootstrap=broker.bootstrap, namespace="thumbbench")
        videos = [
            {"video_id": f"t{i:010d}", "thumbnail_url": f"{server.base_url}/vi/t{i:010d}/mqdefault.jpg"}
            for i in range(args.videos)
        ]
        assert background_processing(videos, [], db_path, settings).ok
        env = {
            **os.environ,
            **FAST_GROUPS,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "VVV_NAMESPACE": "thumbbench",
            "VVV_THUMBNAIL_HOSTS": "127.0.0.1",
            "VVV_THUMBNAIL_CONCURRENCY": str(args.concurrency),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "vvv_core.cli", "consume", "thumbnails", "--db", db_path, "--until-idle", "1"],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assigned = idle = None
        processed = 0
        for line in process.stderr:
            if assigned is None and "assigned" in line:
                assigned = time.perf_counter()
            if "idle for" in line:
                idle = time.perf_counter()
            if match := re.search(r"stopped after (\d+) events", line):
                processed = int(match.group(1))
        process.wait()
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        busy = idle - assigned - 1.0
        verdicts = (
            sqlite3.connect(db_path).execute("SELECT status, count(*) FROM thumbnail_checks GROUP BY status").fetchall()
        )
        print(
            f"thumbnails: {processed:,} checks in {busy:.2f} s = {processed / busy:,.0f} thumbnails/s "
            f"(one consumer process, {args.concurrency} at once, server latency {args.latency * 1e3:.0f} ms); "
            f"peak RSS {peak_mb:.0f} MB; verdicts {dict(verdicts)}; server saw {len(server.requests):,} requests"
        )


if __name__ == "__main__":
    main()
