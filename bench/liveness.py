"""Benchmark of the liveness group's rate limit. Run by hand:

    .venv/bin/python bench/liveness.py [--rate 600] [--members 3] [--seconds 60]

Queues more stale videos than the limit allows in the run, starts MEMBERS `vvv consume liveness`
processes against a local oEmbed stand-in, and prints the group's achieved request rate (from the
server's own timestamps) against the configured limit, the busiest 60-second window, and the CPU
the members used while mostly waiting for their slots.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from common import FAST_GROUPS, empty_cron_db, figure

from vvv_core.broker import EmbeddedBroker
from vvv_core.config import Settings
from vvv_core.hook import background_processing
from vvv_core.standins import LocalServer, Reply


def busiest(times: list[float], width: float) -> int:
    worst, j = 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + width:
            j += 1
        worst = max(worst, j - i)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=600, help="group limit, requests per minute")
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=70)
    args = parser.parse_args()
    with (
        EmbeddedBroker() as broker,
        LocalServer(lambda _m, _p: Reply(200), latency=0.03) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        db_path = str(Path(tmp) / "cron.db")
        empty_cron_db(db_path)
        settings = Settings(bootstrap=broker.bootstrap, namespace="livebench")
        queued = int(args.rate / 60 * args.seconds * 1.5)
        background_processing([], [f"L{i:010d}" for i in range(queued)], db_path, settings)
        env = {
            **os.environ,
            **FAST_GROUPS,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "VVV_NAMESPACE": "livebench",
            "VVV_OEMBED_URL": f"{server.base_url}/oembed",
            "VVV_LIVENESS_RATE": str(args.rate),
        }
        members = [
            subprocess.Popen(
                [sys.executable, "-m", "vvv_core.cli", "consume", "liveness", "--db", db_path],
                env=env,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(args.members)
        ]
        handles = [psutil.Process(m.pid) for m in members]
        time.sleep(5)  # joins and the first rebalances
        cpu_before = sum(h.cpu_times().user + h.cpu_times().system for h in handles)
        started, seen_before = time.monotonic(), len(server.requests)
        time.sleep(args.seconds)
        cpu = sum(h.cpu_times().user + h.cpu_times().system for h in handles) - cpu_before
        elapsed = time.monotonic() - started
        times = [r.at for r in server.requests if started <= r.at <= started + elapsed]
        for m in members:
            m.send_signal(signal.SIGTERM)
        for m in members:
            m.wait(30)
        achieved = len(times) / elapsed * 60
        print(
            f"liveness: {args.members} members, limit {args.rate:g}/min: achieved {achieved:.0f}/min "
            f"({achieved / args.rate:.0%} of the limit) over {elapsed:.0f} s; busiest 60 s window "
            f"{busiest(sorted(times), 60.0)} requests, busiest 1 s window {busiest(sorted(times), 1.0)} "
            f"(limit {args.rate / 60:g}); members' CPU {cpu:.2f} s in {elapsed:.0f} s "
            f"= {cpu / elapsed / args.members:.1%} of a core each; {seen_before} requests during the joins"
        )
        figure("liveness, share of the group-wide limit used", achieved / args.rate, "", 0.9)
        figure("liveness, busiest 60 s window / limit", busiest(sorted(times), 60.0) / args.rate, "", 1.0, False)


if __name__ == "__main__":
    main()
