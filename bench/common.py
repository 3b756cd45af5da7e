"""What the benchmarks share: an empty cron database, and a consumer process timed from its own log."""

from __future__ import annotations

import os
import re
import resource
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass

from vvv_core.kafka import QUICK_JOIN
from vvv_core.sample import CRON_SCHEMA

FAST_GROUPS = {f"VVV_KAFKA_{k.upper().replace('.', '_')}": v for k, v in QUICK_JOIN.items()}  # as the CLI reads them
IDLE = 1.0  # --until-idle of the timed consumer, subtracted from its busy time


def figure(name: str, value: float, unit: str, goal: float | None = None, higher_is_better: bool = True) -> None:
    """One figure for `make bench`'s table (bench/run.py reads these lines); also readable as it is."""
    print(f"figure\t{name}\t{value:.6g}\t{unit}\t{'' if goal is None else f'{goal:.6g}'}\t{int(higher_is_better)}")


def empty_cron_db(path: str) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(CRON_SCHEMA)
    conn.close()


@dataclass
class Timed:
    processed: int
    busy: float  # seconds from its first assignment to its last commit
    peak_rss_mb: float

    @property
    def rate(self) -> float:
        return self.processed / self.busy


def timed_consumer(group: str, db_path: str, bootstrap: str, namespace: str, **env: str) -> Timed:
    """Run `vvv consume GROUP --until-idle 1` in its own process until it has drained its topic."""
    environ = {**os.environ, **FAST_GROUPS, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "VVV_NAMESPACE": namespace, **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "vvv_core.cli", "consume", group, "--db", db_path, "--until-idle", str(IDLE)],
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
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
    return Timed(processed, idle - assigned - IDLE, peak_mb)
