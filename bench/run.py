"""`make bench`: every benchmark in one run, then one table: figure, goal, and how far from it.

Each script prints its own lines as it goes (the scoring profile: where the time goes, by step),
and its figures as ``figure<TAB>...`` lines (``common.figure``), collected here. "vs goal" is
measured / goal where higher is better and goal / measured where lower is: 1.00 or more meets
the goal. Scoring, its scaling, the sink and the outbox run on Apache Kafka when Java and its jars
are there (`make kafka`), else on the embedded broker.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date
from math import inf
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUIX_VERSION = "3.28.1"


def peer_python() -> str:
    """Quix Streams in a venv of its own (it pins confluent-kafka below the version this project needs)."""
    venv = HERE.parent / ".venv-peer"
    if not (venv / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([venv / "bin" / "pip", "install", "--quiet", f"quixstreams=={QUIX_VERSION}"], check=True)
        (venv / ".installed").touch()
    return str(venv / "bin" / "python")


def store_candidates() -> None:
    """RocksDB (rocksdict) beside lmdb, the project's store, for bench/store.py's comparison (a wheel; bench only)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "rocksdict"], check=True)


def main() -> int:
    broker = "kafka" if shutil.which("java") and (HERE.parent / "kafka" / "lib" / ".fetched").exists() else "embedded"
    runs = [
        ["scoring.py", "--broker", broker, "--peer", peer_python()],
        ["scoring.py", "--broker", broker, "--profile", "--events", "50000"],
        ["scoring.py", "--broker", broker, "--tracing", "--events", "50000"],
        ["scaling.py", "--broker", broker],
        ["sink.py", "--broker", broker],
        ["store.py", "--broker", broker],
        ["outbox.py", "--broker", broker],
        ["thumbnails.py", "--videos", "5000", "--concurrency", "64,128,256"],
        ["liveness.py"],
        ["console.py"],  # on the embedded broker: the console's views on a year's data, the CPU of ten tabs
    ]
    store_candidates()
    figures: list[tuple[str, str, float, str, float | None, bool]] = []
    for args in runs:
        print(f"== bench/{' '.join(args)}", flush=True)
        process = subprocess.Popen([sys.executable, HERE / args[0], *args[1:]], stdout=subprocess.PIPE, text=True)
        for line in process.stdout:
            if line.startswith("figure\t"):
                _, name, value, unit, goal, higher = line.rstrip("\n").split("\t")
                figures.append((args[0], name, float(value), unit, float(goal) if goal else None, higher == "1"))
            else:
                print(line, end="", flush=True)
        if process.wait() != 0:
            print(f"bench/{args[0]} failed (exit {process.returncode})", file=sys.stderr)
            return 1
    print(f"\nbenchmarks, {date.today().isoformat()}, scoring, sink and outbox on {broker}:")
    print(f"{'figure':<60}{'measured':>18}{'goal':>10}{'vs goal':>9}")
    for _script, name, value, unit, goal, higher in figures:
        ratio = "" if goal is None else f"{(value / goal if higher else goal / value if value else inf):.2f}"
        shown_goal = "" if goal is None else f"{goal:,g}"
        shown = f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"
        print(f"{name:<60}{f'{shown} {unit}':>18}{shown_goal:>10}{ratio:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
