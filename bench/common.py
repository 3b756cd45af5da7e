"""What the benchmarks share: an empty cron database, and a consumer process timed from its own log."""

from __future__ import annotations

import os
import re
import resource
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from vvv_core.kafka import QUICK_JOIN
from vvv_core.sample import CRON_SCHEMA

FAST_GROUPS = {f"VVV_KAFKA_{k.upper().replace('.', '_')}": v for k, v in QUICK_JOIN.items()}  # as the CLI reads them
IDLE = 1.0  # --until-idle of the timed consumer, subtracted from its busy time


def figure(name: str, value: float, unit: str, goal: float | None = None, higher_is_better: bool = True) -> None:
    """One figure for `make bench`'s table (bench/run.py reads these lines); also readable as it is."""
    print(f"figure\t{name}\t{value:.6g}\t{unit}\t{'' if goal is None else f'{goal:.6g}'}\t{int(higher_is_better)}")


def empty_cron_db(path: str, videos: list[str] = ()) -> None:
    """A cron database that knows ``videos`` (the sink stores results for known videos only)."""
    conn = sqlite3.connect(path)
    conn.executescript(CRON_SCHEMA)
    with conn:
        conn.executemany("INSERT INTO videos (video_id) VALUES (?)", [(v,) for v in videos])
    conn.close()


@dataclass
class Timed:
    processed: int
    busy: float  # seconds from the first member's first assignment to the last one's last commit
    peak_rss_mb: float  # of the largest process this benchmark has run so far
    cpu: float  # CPU seconds the members used, user and system

    @property
    def rate(self) -> float:
        return self.processed / self.busy


def timed_consumer(
    group: str, db_path: str | None, bootstrap: str, namespace: str, processes: int = 1, **env: str
) -> Timed:
    """Run `vvv consume GROUP --until-idle 1 [--processes N]` until it has drained its topic."""
    return timed_members(1, group, db_path, bootstrap, namespace, processes, **env)


def timed_members(
    members: int, group: str, db_path: str | None, bootstrap: str, namespace: str, processes: int = 1, **env: str
) -> Timed:
    """Run ``members`` commands `vvv consume GROUP --until-idle 1` at once until they drained the topic
    (each of ``processes`` members: their CPU is counted, the parent waiting for them)."""
    environ = {**os.environ, **FAST_GROUPS, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "VVV_NAMESPACE": namespace, **env}
    command = [sys.executable, "-m", "vvv_core.cli", "consume", group, "--until-idle", str(IDLE)]
    command += ["--db", db_path] if db_path else []
    command += ["--processes", str(processes)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    processes = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=environ) for _ in range(members)]
    marks: list[tuple[float | None, float | None, int]] = [(None, None, 0)] * members
    threads = [threading.Thread(target=_follow, args=(p, marks, i)) for i, p in enumerate(processes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    started = min(m[0] for m in marks if m[0] is not None)
    ended = max(m[1] for m in marks if m[1] is not None)
    return Timed(sum(m[2] for m in marks), ended - started - IDLE, after.ru_maxrss / 1024, cpu)


def _follow(process: subprocess.Popen[str], marks: list, index: int) -> None:
    """A command's first assignment, when its last member went idle, and its members' counts, from its log."""
    assigned = idle = None
    processed = 0
    for line in process.stderr:
        if assigned is None and "assigned" in line:
            assigned = time.perf_counter()
        if "idle for" in line:
            idle = time.perf_counter()
        if match := re.search(r"stopped after (\d+) events", line):
            processed += int(match.group(1))
    process.wait()
    marks[index] = (assigned, idle, processed)
