"""``vvv demo``: the whole pipeline on the embedded broker and a sample cron database, then its console.

It never mixes: every check goes to local stand-ins for YouTube (the default: nothing leaves the
machine, and a database given with ``--db`` is copied, so their made-up verdicts never reach it) or
every check goes to YouTube's real endpoints (``--real``: a ``--db`` file is then used in place). Its
folder (the database it built or copied) is kept when it stops; the embedded broker keeps its topics
in memory, so those go with it. Ctrl-C stops the groups first, then the console, then the broker.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import replace
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from confluent_kafka import Producer

from vvv_core import db, kafka
from vvv_core.avro import SchemaStore
from vvv_core.broker import EmbeddedBroker, free_port
from vvv_core.config import Settings
from vvv_core.dlq import list_dead_letters
from vvv_core.domain.regions import in_order
from vvv_core.domain.scoring import label
from vvv_core.errors import Fatal
from vvv_core.hook import publish_new
from vvv_core.runtime import Groups
from vvv_core.runtime.group import client_id
from vvv_core.runtime.loop import GroupRunner
from vvv_core.sample import build_sample_db, demo_poison
from vvv_core.standins import LocalServer, demo_oembed, demo_thumbnails

log = logging.getLogger(__name__)

DEMO_LIVENESS_RATE = 1200  # per minute, against the local stand-in; YouTube's real endpoint gets VVV_LIVENESS_RATE


def _run_groups(settings: Settings, groups: Groups, db_path: str, until_idle: float) -> dict[str, BaseException | None]:
    """One member of every group, each in its own thread, until all are idle."""
    errors: dict[str, BaseException | None] = {}

    def member(name: str) -> None:
        conn = db.connect(db_path)
        try:
            GroupRunner(groups[name](settings, conn), settings, until_idle=until_idle).run()
            errors[name] = None
        except BaseException as exc:
            errors[name] = exc
            log.exception("group %s failed", name)
        finally:
            conn.close()

    threads = [threading.Thread(target=member, args=(name,), name=name) for name in groups]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def _table_counts(conn: sqlite3.Connection, table: str) -> list[tuple[str, int]]:
    if not db.columns(conn, table):
        return []
    return conn.execute(f"SELECT status, count(*) FROM {table} GROUP BY status ORDER BY count(*) DESC").fetchall()


def _summary(db_path: str, settings: Settings, groups: Groups) -> str:
    conn = sqlite3.connect(db_path)
    try:
        # equal scores (100 is common: the score saturates) ranked by the velocity and engagement behind them
        rows = conn.execute(
            "SELECT region, video_id, title, virality_score, virality_velocity, virality_engagement FROM videos "
            "ORDER BY virality_score DESC, virality_velocity DESC, virality_engagement DESC"
        ).fetchall()
        thumbs = _table_counts(conn, "thumbnail_checks")
        liveness = _table_counts(conn, "video_liveness")
    finally:
        conn.close()
    results = Counter()
    schemas = SchemaStore()
    for msg in kafka.read_topic(settings, settings.results_topic):
        results[schemas.decode(msg.value(), "Result")["group"]] += 1
    lines = [
        f"result messages on {settings.results_topic}: "
        + (", ".join(f"{g} {n}" for g, n in sorted(results.items())) or "none")
    ]
    letters = {name: len(list_dead_letters(settings, name)) for name in groups}
    lines.append(
        "dead letters (the console shows why, and replays them): "
        + ", ".join(f"{name} {n}" for name, n in letters.items())
    )
    lines.append("")
    lines.append(f"{'region':<7}{'videos':>7}{'scored':>8}{'VIRAL':>7}{'TRENDING':>10}{'NORMAL':>8}")
    for region in in_order({r[0] for r in rows}):
        scored = [r[3] for r in rows if r[0] == region and r[3] is not None]
        labels = Counter(label(s) for s in scored)
        lines.append(
            f"{region:<7}{sum(r[0] == region for r in rows):>7}{len(scored):>8}"
            f"{labels['VIRAL']:>7}{labels['TRENDING']:>10}{labels['NORMAL']:>8}"
        )
    lines.append("")
    lines.append("thumbnails: " + (", ".join(f"{status} {n}" for status, n in thumbs) or "none checked"))
    lines.append("stale videos checked: " + (", ".join(f"{status} {n}" for status, n in liveness) or "none"))
    lines.append("")
    lines.append("top videos (equal scores ranked by views per hour, then engagement):")
    for region, video_id, title, score, velocity, engagement in [r for r in rows if r[3] is not None][:10]:
        lines.append(
            f"  {score:5.1f} {label(score):<8} {velocity:>10,} views/h {engagement:6.2f} % {region} {video_id}  "
            f"{(title or '')[:50]}"
        )
    return "\n".join(lines)


def _copy_for_standins(source: str, target: Path, thumbnail_base: str) -> int:
    """A consistent copy of the user's database (SQLite's backup, safe while the cron writes) whose thumbnail
    URLs name the stand-in (the same paths): the stand-ins' verdicts go into the copy only."""
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as original, sqlite3.connect(target) as copy:
        original.backup(copy)
        rows = copy.execute("SELECT video_id, thumbnail_url FROM videos WHERE thumbnail_url IS NOT NULL").fetchall()
        base = thumbnail_base.rstrip("/")
        copy.executemany(
            "UPDATE videos SET thumbnail_url = ? WHERE video_id = ?",
            [(base + urlsplit(url).path, video_id) for video_id, url in rows],
        )
        return copy.execute("SELECT count(*) FROM videos").fetchone()[0]


def _publish_poison(settings: Settings) -> int:
    """A couple of messages no group can process: dead letters for the console to show and replay."""
    producer = Producer(kafka.producer_config(settings))
    poison = demo_poison()
    for topic, key, value in poison:
        producer.produce(settings.topic(topic), value, key)
    if producer.flush(10):
        raise Fatal(f"the embedded broker on {settings.bootstrap} did not take the demo's poison events")
    return len(poison)


def _kept_folder() -> str:
    """Where the demo's own database goes: a new folder, kept when the demo stops (it says where)."""
    return str(Path(tempfile.mkdtemp(prefix="vvv-demo-")) / "cron.db")


def _reach_line(settings: Settings) -> str:
    """The shell line that points `vvv status` (and every other command) at the demo's broker and topics."""
    line = f"export KAFKA_BOOTSTRAP_SERVERS={settings.bootstrap}"
    return line + (f" VVV_NAMESPACE={settings.namespace}" if settings.namespace != "vvv" else "")


def _keep_up(settings: Settings, groups: Groups, db_path: str, host: str, port: int) -> None:
    """Every group keeps running, its metrics and probes on a port of its own, and the console serves
    until Ctrl-C; then the groups stop (each drains within the stop timeout) before anything else."""
    from vvv_core.console.app import serve

    connections = [db.connect(db_path) for _ in groups]
    runners = [
        GroupRunner(groups[name](member, conn), member)
        for name, conn in zip(groups, connections, strict=True)
        for member in [replace(settings, metrics_port=free_port())]
    ]
    threads = [threading.Thread(target=r.run, name=r.group.name, daemon=True) for r in runners]
    for t in threads:
        t.start()

    def members() -> dict[str, dict[str, list[int]]]:
        """The members the demo started, as the console names members the broker reports (the embedded
        broker reports none): each serves its probes on its own port, named in its client id."""
        return {
            settings.group_id(r.group.name): {f"{client_id(r.group)}@127.0.0.1": sorted(p for _t, p in r.owned)}
            for r in runners
        }

    def announce(line: str) -> None:
        print(
            f"\n6. {line}\n"
            f"   the broker, the database and every group stay up until Ctrl-C. From another shell:\n"
            f"   {_reach_line(settings)}\n"
            f"   vvv status --db {db_path}    (or any command with --bootstrap {settings.bootstrap})\n"
            f"   vvv publish --db {db_path}",
            flush=True,
        )

    try:
        serve(settings, groups, db_path, host, port, announce=announce, members=members)
    finally:
        for r in runners:
            r.stop()
        for t in threads:
            t.join(settings.stop_timeout + 2)
        for conn in connections:
            conn.close()


def run_demo(
    settings: Settings,
    groups: Groups,
    *,
    db_path: str | None = None,
    real: bool = False,
    until_idle: float = 2.0,
    console: tuple[str, int] | None = None,
) -> int:
    started = time.monotonic()
    if db_path is not None and not Path(db_path).is_file():
        raise Fatal(
            f"vvv demo --db {db_path}: no such database; build a sample one with `vvv sample --db {db_path}`, "
            "or leave out --db for a fresh one"
        )
    announce = partial(print, flush=True)
    with ExitStack() as stack:
        broker = stack.enter_context(EmbeddedBroker())
        settings = replace(settings, bootstrap=broker.bootstrap)
        if real:
            endpoints = (
                f"YouTube's real endpoints for every check: thumbnails from {', '.join(settings.thumbnail_hosts)}, "
                f"oEmbed {settings.oembed_url} at {settings.liveness_rate:g} requests/min"
            )
            thumbnail_base = None
        else:
            thumbnails = stack.enter_context(LocalServer(demo_thumbnails(), latency=0.02))
            oembed = stack.enter_context(LocalServer(demo_oembed(), latency=0.02))
            settings = replace(
                settings,
                thumbnail_hosts=(urlsplit(thumbnails.base_url).netloc,),  # the stand-in alone: none reaches YouTube
                oembed_url=f"{oembed.base_url}/oembed",
                liveness_rate=DEMO_LIVENESS_RATE,
                thumbnail_retry_delay=1.0,  # a demo should not wait 30 s for a retry
                liveness_retry_delay=1.0,
            )
            endpoints = (
                f"stand-ins for YouTube for every check (nothing leaves this machine): thumbnails "
                f"{thumbnails.base_url}, oEmbed {oembed.base_url}, liveness limit {DEMO_LIVENESS_RATE}/min"
            )
            thumbnail_base = thumbnails.base_url
        announce(f"1. embedded broker on {broker.bootstrap}; {endpoints} (--real: the other way)")
        if db_path is None:
            db_path = _kept_folder()
            videos = build_sample_db(db_path, thumbnail_base=thumbnail_base)
            announce(f"2. sample cron database {db_path}: {videos} videos in 7 regions (kept after the demo)")
        elif real:
            announce(f"2. cron database {db_path}: the checks' real verdicts are stored in it")
        else:
            copy = Path(_kept_folder())
            videos = _copy_for_standins(db_path, copy, thumbnail_base)
            announce(
                f"2. cron database {db_path} copied to {copy} ({videos} videos): the stand-ins' made-up verdicts go "
                "into the copy, never into your file (kept after the demo)"
            )
            db_path = str(copy)
        report = publish_new(db_path, settings)
        announce(f"3. hook published: {report}; and {_publish_poison(settings)} poison events, for dead letters")
        announce(f"4. consumer groups {', '.join(groups)} running until idle...")
        errors = _run_groups(settings, groups, db_path, until_idle)
        announce(f"5. done in {time.monotonic() - started:.1f} s\n")
        announce(_summary(db_path, settings, groups))
        failed = {name: exc for name, exc in errors.items() if exc is not None}
        for name, exc in failed.items():
            announce(f"group {name} failed: {exc}")
        if console is not None and not failed:
            _keep_up(settings, groups, db_path, *console)
    kept = f"the database is kept: {db_path} (e.g. vvv report --db {db_path})"
    announce(f"stopped: groups, console and broker (its topics were in memory and are gone); {kept}")
    return 1 if failed or report.error else 0
