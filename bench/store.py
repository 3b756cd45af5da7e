"""Which local store for scoring's state, by measurement, and how fast stream mode is. Run by hand:

    .venv/bin/python bench/store.py [--broker embedded|kafka] [--videos 100000] [--stores-only]

1. The candidate stores (SQLite, built in; lmdb and rocksdict from PyPI, measured where installed: `make bench`
   installs them), on scoring's own access pattern: batches of 2,000 keys read, then written in one transaction
   with the changelog position, for 100,000 videos of about 90 bytes each; and a restore's writes alone.
2. Restore time per 100,000 videos: a changelog of 100,000 states read back into a fresh store by a member.
3. Scoring throughput in stream mode beside database mode, each from its own copy of the same 100,000 events
   (one consumer process, first assignment to last commit).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from common import figure, timed_consumer
from scoring import make_db, snapshot_items

from vvv_core import db
from vvv_core.apache_kafka import ApacheKafka
from vvv_core.broker import EmbeddedBroker
from vvv_core.config import Settings
from vvv_core.groups.scoring import ScoringGroup, seed_changelog
from vvv_core.hook import background_processing
from vvv_core.kafka import QUICK_JOIN
from vvv_core.runtime.loop import GroupRunner
from vvv_core.runtime.state.store import PartitionStore

BATCH = 2000


def values(videos: int) -> list[tuple[str, bytes]]:
    rng = random.Random(3)
    return [
        (
            f"v{i:010d}",
            json.dumps([[1796500000000 + h, rng.randint(1, 10**7), 5000, 300, "PL"] for h in (1, 0)]).encode(),
        )
        for i in range(videos)
    ]


class Sqlite:
    """The same store on SQLite: a WITHOUT ROWID table, the position in a second, one transaction a batch."""

    name = "SQLite (WAL, synchronous=NORMAL)"

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path / "store.sqlite", isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("CREATE TABLE state (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
        self.conn.execute("CREATE TABLE position (one INTEGER PRIMARY KEY, next_offset INTEGER NOT NULL)")

    def get(self, keys):
        found = {}
        for start in range(0, len(keys), 500):  # within SQLite's limit on parameters
            chunk = keys[start : start + 500]
            query = f"SELECT key, value FROM state WHERE key IN ({','.join('?' * len(chunk))})"
            found.update(self.conn.execute(query, chunk))
        return found

    def write(self, rows, position):
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany("INSERT OR REPLACE INTO state VALUES (?, ?)", rows)
        self.conn.execute("INSERT OR REPLACE INTO position VALUES (1, ?)", (position,))
        self.conn.execute("COMMIT")

    def close(self):
        self.conn.close()


class Lmdb:
    """The project's own store (``runtime/state/store.py``)."""

    name = "lmdb (metasync off: an fsync per transaction)"

    def __init__(self, path: Path) -> None:
        self.store = PartitionStore(path / "store.lmdb")

    def get(self, keys):
        return self.store.get(keys)

    def write(self, rows, position):
        self.store.write(rows, position)

    def close(self):
        self.store.close()


class Rocks:
    name = "rocksdict (RocksDB)"

    def __init__(self, path: Path) -> None:
        from rocksdict import Options, Rdict, WriteBatch

        self.batch_type = WriteBatch
        self.db = Rdict(str(path / "rocks"), Options(raw_mode=True))

    def get(self, keys):
        encoded = [k.encode() for k in keys]
        return {k: v for k, v in zip(keys, self.db.get(encoded), strict=True) if v is not None}

    def write(self, rows, position):
        batch = self.batch_type(raw_mode=True)
        for k, v in rows:
            batch.put(k.encode(), v)
        batch.put(b"\x00position", str(position).encode())
        self.db.write(batch)

    def close(self):
        self.db.close()


def bench_stores(videos: int) -> None:
    data = values(videos)
    for kind in (Sqlite, Lmdb, Rocks):
        try:
            with tempfile.TemporaryDirectory() as tmp:
                store = kind(Path(tmp))
                started = time.perf_counter()  # a restore's writes alone
                for start in range(0, videos, BATCH):
                    store.write(data[start : start + BATCH], start + BATCH)
                restore = time.perf_counter() - started
                order = list(range(0, videos, BATCH))
                random.Random(5).shuffle(order)
                started = time.perf_counter()  # a batch: read its keys, then write them with the position
                for start in order:
                    chunk = data[start : start + BATCH]
                    assert len(store.get([k for k, _v in chunk])) == len(chunk)
                    store.write(chunk, start + BATCH)
                batches = time.perf_counter() - started
                store.close()
        except ImportError as exc:
            print(f"store {kind.name}: not installed ({exc.name})")
            continue
        per_key = batches / videos * 1e6
        print(
            f"store {kind.name}: {videos:,} videos: restore writes {restore:.2f} s; "
            f"read + write a batch of {BATCH:,}: {per_key:.2f} µs per key"
        )
        figure(f"state store {kind.name}: read + write, per key", per_key, "µs", higher_is_better=False)


def restore_seconds(settings: Settings, state_dir: Path, seeded: int) -> float:
    """A member with no store, from its first assignment until every partition is restored."""
    settings = settings.replace(state_dir=str(state_dir))  # a folder of its own: nothing there yet
    runner = GroupRunner(ScoringGroup(settings, None), settings)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    while not runner.owned:
        time.sleep(0.001)
    started = time.perf_counter()
    while runner.state.restoring or len(runner.owned) < settings.partitions:
        time.sleep(0.001)
    took = time.perf_counter() - started
    restored = sum(len(store) for store in runner.state.stores.values())
    runner.stop()
    thread.join()
    assert restored == seeded, f"restored {restored} of {seeded} videos"
    return took


def bench_stream(broker_bootstrap: str, db_path: str, videos: int, tmp: Path) -> None:
    fast = dict(QUICK_JOIN)
    # Restore: the changelog of `videos` states (as `vvv state seed` writes it), read back by a fresh member
    seeding = Settings(bootstrap=broker_bootstrap, kafka=fast, namespace="restore")
    conn = db.connect(db_path)
    seeded = seed_changelog(conn, seeding)
    conn.close()
    took = restore_seconds(seeding, tmp / "restore", seeded)
    per_100k = took * 100_000 / seeded
    print(
        f"restore: {seeded:,} videos' states from the changelog into a fresh store in {took:.2f} s"
        f" ({per_100k:.2f} s per 100,000 videos)"
    )
    figure("restore time per 100,000 videos", per_100k, "s", higher_is_better=False)
    # Throughput: the same events (each a snapshot, with its counts and time), in database and stream mode
    rates = {}
    for mode in ("database", "stream"):
        s = Settings(bootstrap=broker_bootstrap, kafka=fast, namespace=f"tput-{mode}")
        for start in range(0, videos, 10_000):
            items = snapshot_items(start, min(10_000, videos - start), videos, 1)
            assert background_processing(items, [], db_path, s).delivered == len(items)
        state = {"VVV_STATE_DIR": str(tmp / mode)}
        run = timed_consumer("scoring", db_path if mode == "database" else None, s.bootstrap, s.namespace, **state)
        rates[mode] = run.rate
        print(
            f"scoring, {mode} mode: {run.processed:,} events in {run.busy:.2f} s = {run.rate:,.0f} events/s; "
            f"peak RSS {run.peak_rss_mb:.0f} MB"
        )
        figure(f"scoring, {mode} mode, events/s", run.rate, "events/s")
    figure("scoring, stream / database mode", rates["stream"] / rates["database"], "x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--broker", choices=("embedded", "kafka"), default="embedded")
    parser.add_argument("--stores-only", action="store_true")
    args = parser.parse_args()
    bench_stores(args.videos)
    if args.stores_only:
        return
    broker = ApacheKafka() if args.broker == "kafka" else EmbeddedBroker()
    with broker, tempfile.TemporaryDirectory() as tmp:
        db_path = str(Path(tmp) / "cron.db")
        make_db(db_path, args.videos)
        sqlite3.connect(db_path).close()
        bench_stream(broker.bootstrap, db_path, args.videos, Path(tmp))
        shutil.rmtree(Path(tmp) / "restore", ignore_errors=True)


if __name__ == "__main__":
    main()
