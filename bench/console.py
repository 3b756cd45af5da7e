"""The console on a year's data: each view's time, the report's, and the console's CPU with ten tabs open.

    .venv/bin/python bench/console.py [--videos 300000] [--seconds 60] [--tabs 10]

1. A cron database as after months of trending data (generated, seeded): 300,000 videos with 2-5
   snapshots each (about 1,050,000), every one scored by the formula from its two newest (and the
   index scoring makes on the snapshots); 60 % with
   a thumbnail verdict and 30 % with a liveness verdict, a few percent of them `error` and `unknown`
   with reasons. On the embedded broker: 5,000 video events, 6,000 results (the pipeline view reads
   the last 200 of each partition) and 200 dead letters of the scoring group.
2. ``vvv report`` on it before the console ever ran (no index nor counts: what a report reads alone).
3. ``vvv console`` on it in its own process. Each view asked once, then again once that answer has
   expired (the time of making it, and the console's CPU for it: three times, the median), then at once
   (the answer kept for the interval); the listings also sorted by title in every region. The CPU is
   what a view costs whatever else the machine runs (this VM is shared: the load average is printed).
4. ``vvv report`` again, now that the console made its counts and indexes.
5. The console's CPU (its process's user + system time) with one tab open for ``--seconds``, then
   ten: real pages in Debian's headless chromium (Playwright), so each tab asks what the page asks
   when the page asks it (each view when its answer is due), not a model of it; the requests they
   made are counted, to show the tabs were refreshing. Chromium's own CPU is not counted.
6. What the counts and the listings' index cost scoring: a scoring member (`vvv consume scoring`, its
   own process) rescoring 60,000 videos from their history, on a copy of the database without them and
   on one with them, in turns, twice: the best of each.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
from common import figure, timed_consumer
from confluent_kafka import Producer

from vvv_core import db, kafka, scoreboard
from vvv_core.avro import SchemaStore
from vvv_core.broker import EmbeddedBroker, free_port
from vvv_core.config import Settings
from vvv_core.domain.regions import REGIONS
from vvv_core.domain.scoring import BASELINES, DEFAULT_BASELINE, Snapshot, score
from vvv_core.events import new_event_ids, now_ms, video_record
from vvv_core.groups.liveness import DDL as LIVENESS_DDL
from vvv_core.groups.thumbnails import DDL as THUMBNAILS_DDL
from vvv_core.hook import background_processing
from vvv_core.runtime.deadletter import dead_letter_headers
from vvv_core.runtime.model import Failure, Inbound
from vvv_core.sample import CRON_SCHEMA, TIMESTAMP

CHROMIUM = shutil.which("chromium")
REASONS = ["connection refused", "HTTP 503", "timed out", "certificate verify failed", "HTTP 429"]
THUMBNAIL_VERDICTS = ["valid"] * 85 + ["placeholder"] * 5 + ["broken"] * 7 + ["error"] * 3
LIVENESS_VERDICTS = ["alive"] * 88 + ["deleted"] * 5 + ["private"] * 3 + ["unknown"] * 4


def make_db(path: str, videos: int) -> int:
    """The database described above; returns its number of snapshots."""
    rng = random.Random(27)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(CRON_SCHEMA)
    for column, kind in (("virality_velocity", "INTEGER"), ("virality_engagement", "REAL")):
        conn.execute(f"ALTER TABLE videos ADD COLUMN {column} {kind}")  # as scoring adds them
    conn.execute(THUMBNAILS_DDL)
    conn.execute(LIVENESS_DDL)
    snapshots, rows, thumbnails, liveness = 0, [], [], []
    checked = now.isoformat()
    for i in range(videos):
        video_id = f"v{i:010d}"
        region = "XX" if rng.random() < 0.02 else REGIONS[i % len(REGIONS)]
        baseline = BASELINES.get(region, DEFAULT_BASELINE)
        views = rng.randint(1_000, 2_000_000)
        engagement = baseline.engagement * rng.lognormvariate(-0.4, 0.5) / 100
        history = []
        for hours in range(rng.randint(2, 5), 0, -1):
            at = now - timedelta(hours=hours)
            views += int(baseline.velocity * rng.lognormvariate(-0.7, 0.8))
            history.append((video_id, region, views, int(views * engagement), int(views * engagement / 20), at))
        snapshots += len(history)
        conn.executemany(
            "INSERT INTO video_snapshots VALUES (?, ?, ?, ?, ?, ?)",
            [(*h[:5], h[5].strftime(TIMESTAMP)) for h in history],
        )
        newest = [Snapshot(h[1], h[2], h[3], h[4], int(h[5].replace(tzinfo=UTC).timestamp() * 1000)) for h in history]
        found = score(newest[::-1])
        rows.append((video_id, region, f"video {i}", f"https://i.ytimg.com/vi/{video_id}/default.jpg", found))
        if rng.random() < 0.6:
            status = rng.choice(THUMBNAIL_VERDICTS)
            reason = rng.choice(REASONS) if status in ("error", "broken") else None
            thumbnails.append((video_id, status, 320, 180, 200, reason, 1, checked, 0, f"e{i}"))
        if rng.random() < 0.3:
            status = rng.choice(LIVENESS_VERDICTS)
            reason = rng.choice(REASONS) if status == "unknown" else None
            liveness.append((video_id, status, 200, reason, checked, None, 0, f"e{i}"))
    conn.executemany(
        "INSERT INTO videos VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(v, r, t, u, s.score, s.velocity, s.engagement) for v, r, t, u, s in rows],
    )
    conn.executemany("INSERT INTO thumbnail_checks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", thumbnails)
    conn.execute(  # scoring made it when it scored them (vvv_core/groups/scoring.py)
        "CREATE INDEX vvv_snapshots_by_video_time ON video_snapshots (video_id, julianday(fetched_at))"
    )
    conn.executemany("INSERT INTO video_liveness VALUES (?, ?, ?, ?, ?, ?, ?, ?)", liveness)
    conn.commit()
    conn.close()
    return snapshots


def fill_broker(settings: Settings, db_path: str) -> None:
    """Events waiting, results to read the tail of, dead letters: what the pipeline and dead-letter views read."""
    kafka.ensure_project_topics(kafka.admin(settings), settings, ["scoring", "thumbnails", "liveness", "sink"])
    items = [{"video_id": f"v{i:010d}", "region": REGIONS[i % len(REGIONS)]} for i in range(5000)]
    assert background_processing(items, [], db_path, settings).delivered == 5000
    schemas = SchemaStore()
    producer = Producer(kafka.producer_config(settings, **{"linger.ms": 20}))
    encode = schemas.encoder("Result")
    for i in range(6000):
        detail = {"score": 50.0, "label": "NORMAL", "velocity": 1, "engagement": 1.0, "region": "PL", "reason": None}
        record = {
            "event_id": f"e{i}",
            "group": "scoring",
            "video_id": f"v{i:010d}",
            "processed_at": now_ms(),
            "event_at": now_ms(),
            "stored": True,
            "detail": ("com.viralvidvault.results.ScoreDetail", detail),
        }
        producer.produce(settings.results_topic, encode(record), f"v{i:010d}".encode())
    event = schemas.encoder("VideoEvent")
    failure = Failure("transient", "OperationalError", "database is locked", attempts=3)
    for i, event_id in zip(range(200), new_event_ids(), strict=False):
        key = f"v{i:010d}".encode()
        value = event(video_record({"video_id": key.decode()}, event_id, now_ms()))
        headers = dead_letter_headers("scoring", Inbound(settings.videos_topic, 0, i, key, value, []), failure)
        producer.produce(settings.dead_letter_topic("scoring"), value, key, headers=headers)
    assert producer.flush(30) == 0


def report_seconds(settings: Settings, db_path: str, out: str) -> float:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "vvv_core.cli", "report", "--db", db_path, "--out", out],
        capture_output=True,
        text=True,
        env=env,
    )
    taken = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    return taken


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of a process, to the nanosecond (Linux's schedstat; psutil's is to 10 ms)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def ask(url: str, console: psutil.Process) -> tuple[float, float, float]:
    """Seconds the answer took, the console's CPU seconds for it, and the seconds it stays the console's answer."""
    before, started = cpu_seconds(console.pid), time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as answer:
        answer.read()
        fresh_for = int(answer.headers["X-VVV-Fresh-For"]) / 1000
    return time.perf_counter() - started, cpu_seconds(console.pid) - before, fresh_for


def view_times(url: str, console: psutil.Process, samples: int = 3) -> tuple[float, float, float]:
    """Medians of an answer made again (its last one expired): its time, and the console's CPU for it (what
    it costs, whatever else the machine runs); and the time of an answer kept."""
    made, cpu = [], []
    fresh_for = ask(url, console)[2]
    for _ in range(samples):
        time.sleep(fresh_for + 0.05)
        taken, used, fresh_for = ask(url, console)
        made.append(taken)
        cpu.append(used)
    return statistics.median(made), statistics.median(cpu), ask(url, console)[0]


def console_cpu(process: psutil.Process, url: str, tabs: int, seconds: float) -> tuple[float, int]:
    """The console's CPU (share of one core) while ``tabs`` pages stay open, and the requests they made."""
    from playwright.sync_api import sync_playwright

    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync", "--no-first-run"]
    asked = [0]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
        pages = []
        for _ in range(tabs):
            page = browser.new_page()
            page.route("https://**", lambda route: route.abort())  # thumbnails: no network here
            page.on("request", lambda request: asked.__setitem__(0, asked[0] + ("/views/" in request.url)))
            page.goto(url)
            pages.append(page)
        for page in pages:
            page.wait_for_selector("#groups")
        time.sleep(2)  # every tab settled: its first answers in
        before, counted = process.cpu_times(), asked[0]
        started = time.perf_counter()
        pages[0].wait_for_timeout(seconds * 1000)  # the browser's loop keeps running its pages meanwhile
        after, elapsed = process.cpu_times(), time.perf_counter() - started
        browser.close()
    used = (after.user - before.user) + (after.system - before.system)
    return used / elapsed, asked[0] - counted


def scoring_rate(path: str, broker: str, namespace: str, video_ids: list[int]) -> float:
    """Events per second a scoring member (its own process) stores, rescoring ``video_ids`` from their history."""
    settings = Settings(bootstrap=broker, namespace=namespace)
    for start in range(0, len(video_ids), 10_000):
        batch = [{"video_id": f"v{i:010d}"} for i in video_ids[start : start + 10_000]]
        assert background_processing(batch, [], path, settings).delivered == len(batch)
    return timed_consumer("scoring", path, broker, namespace).rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=300_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tabs", type=int, default=10)
    args = parser.parse_args()
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        db_path = str(Path(tmp) / "cron.db")
        started = time.perf_counter()
        snapshots = make_db(db_path, args.videos)
        size = Path(db_path).stat().st_size / 1e6
        print(
            f"database: {args.videos:,} videos, {snapshots:,} snapshots, {size:.0f} MB, made in "
            f"{time.perf_counter() - started:.1f} s"
        )
        settings = Settings(bootstrap=broker.bootstrap)
        fill_broker(settings, db_path)
        bare = str(Path(tmp) / "bare.db")
        shutil.copy(db_path, bare)  # before the console: for the cost of its counts and index to scoring

        alone = report_seconds(settings, db_path, str(Path(tmp) / "report.html"))
        print(f"vvv report, no console before it: {alone:.2f} s")
        size = f"{args.videos // 1000}k videos"
        figure(f"report, {size}, alone (no counts nor indexes)", alone, "s", 3, higher_is_better=False)

        port = free_port()
        console = subprocess.Popen(
            [sys.executable, "-m", "vvv_core.cli", "console", "--db", db_path, "--port", str(port)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap},
        )
        try:
            assert "console: http://" in console.stdout.readline()
            base = f"http://127.0.0.1:{port}"
            urllib.request.urlopen(base + "/views/summary", timeout=120).read()  # after the console's first look
            paths = {
                "summary": "/views/summary",
                "pipeline": "/views/pipeline",
                "dead letters": "/views/dead-letters?group=scoring&q=",
                "results": "/views/results",
                "results by title, p. 7": "/views/results?" + "&".join(f"{r}=title.asc.7" for r in [*REGIONS, "XX"]),
            }
            process = psutil.Process(console.pid)
            for name, path in paths.items():
                made, cpu, kept = view_times(base + path, process)
                print(
                    f"{name}: made in {made * 1e3:.1f} ms ({cpu * 1e3:.1f} ms of the console's CPU), kept answer "
                    f"{kept * 1e3:.1f} ms (load average {os.getloadavg()[0]:.1f})"
                )
                figure(f"console {name}: made (median of 3)", made * 1e3, "ms", 100, higher_is_better=False)
                figure(f"console {name}: made, console CPU", cpu * 1e3, "ms")
                figure(f"console {name}: kept", kept * 1e3, "ms")

            after = report_seconds(settings, db_path, str(Path(tmp) / "report.html"))
            print(f"vvv report, after the console: {after:.2f} s")
            figure(f"report, {size}, after the console made its counts", after, "s", 3, higher_is_better=False)

            if CHROMIUM is None:
                print("no chromium: the console's CPU with open tabs not measured")
            else:
                for tabs in (1, args.tabs):
                    share, requests = console_cpu(process, base + "/", tabs, args.seconds)
                    print(
                        f"{tabs} tab(s) for {args.seconds:.0f} s: the console used {share:.1%} of a core "
                        f"({requests} view requests, {requests / args.seconds:.1f}/s; load average "
                        f"{os.getloadavg()[0]:.1f})"
                    )
                    goal = 0.10 if tabs == args.tabs else None
                    figure(
                        f"console CPU, {tabs} tab(s) open (share of a core)",
                        share * 100,
                        "%",
                        None if goal is None else goal * 100,
                        higher_is_better=False,
                    )
        finally:
            console.terminate()
            console.wait(30)

        prepared_copy = str(Path(tmp) / "prepared.db")
        shutil.copy(bare, prepared_copy)
        conn = db.connect(prepared_copy)
        started = time.perf_counter()
        scoreboard.prepare(conn)
        prepared = time.perf_counter() - started
        conn.close()
        print(f"counts and indexes made in {prepared * 1e3:.0f} ms (the write lock held, once per database)")
        figure(f"console's counts and indexes made, {size} (once)", prepared * 1e3, "ms")
        rescored = random.Random(3).sample(range(args.videos), min(60_000, args.videos))
        rates: dict[str, list[float]] = {bare: [], prepared_copy: []}
        for turn in range(2):  # in turns, the best of each: the machine's other load varies
            for path, taken in rates.items():
                taken.append(scoring_rate(path, broker.bootstrap, f"s{turn}{len(taken)}{Path(path).stem}", rescored))
        without, with_them = max(rates[bare]), max(rates[prepared_copy])
        print(
            f"scoring, {len(rescored):,} events on this database: {without:,.0f}/s without the console's counts "
            f"and index, {with_them:,.0f}/s with them (load average {os.getloadavg()[0]:.1f})"
        )
        figure("scoring with the console's counts and index / without", with_them / without, "x")


if __name__ == "__main__":
    main()
