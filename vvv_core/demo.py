"""``vvv demo``: the whole pipeline offline, on the embedded broker and a sample cron database."""

from __future__ import annotations

import logging
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from vvv_core import db, kafka
from vvv_core.avro import SchemaStore
from vvv_core.broker import EmbeddedBroker
from vvv_core.config import Settings
from vvv_core.domain.regions import in_order
from vvv_core.domain.scoring import label
from vvv_core.hook import publish_new
from vvv_core.runtime import Groups
from vvv_core.runtime.loop import GroupRunner
from vvv_core.sample import build_sample_db
from vvv_core.standins import LocalServer, demo_oembed, demo_thumbnails

log = logging.getLogger(__name__)

DEMO_LIVENESS_RATE = 1200  # per minute, against the local stand-in; YouTube's real endpoint gets 20


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


def _summary(db_path: str, settings: Settings) -> str:
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


def _keep_up(settings: Settings, groups: Groups, db_path: str, host: str, port: int) -> None:
    """Every group keeps running, and the console serves, until Ctrl-C."""
    from vvv_core.console.app import serve

    connections = [db.connect(db_path) for _ in groups]
    runners = [
        GroupRunner(groups[name](settings, conn), settings) for name, conn in zip(groups, connections, strict=True)
    ]
    threads = [threading.Thread(target=r.run, name=r.group.name, daemon=True) for r in runners]
    for t in threads:
        t.start()
    try:
        serve(
            settings,
            groups,
            db_path,
            host,
            port,
            announce=lambda line: print(
                f"\n6. {line}\n   the broker, the database and every group stay up until Ctrl-C "
                f"(publish more with: vvv publish --db {db_path} --bootstrap {settings.bootstrap})",
                flush=True,
            ),
        )
    finally:
        for r in runners:
            r.stop()
        for t in threads:
            t.join(settings.stop_timeout + 5)
        for conn in connections:
            conn.close()


def run_demo(
    settings: Settings,
    groups: Groups,
    *,
    db_path: str | None = None,
    until_idle: float = 2.0,
    console: tuple[str, int] | None = None,
) -> int:
    started = time.monotonic()
    with ExitStack() as stack:
        broker = stack.enter_context(EmbeddedBroker())
        thumbnails = stack.enter_context(LocalServer(demo_thumbnails(), latency=0.02))
        oembed = stack.enter_context(LocalServer(demo_oembed(), latency=0.02))
        settings = replace(
            settings,
            bootstrap=broker.bootstrap,
            thumbnail_hosts=(*settings.thumbnail_hosts, urlsplit(thumbnails.base_url).netloc),  # the stand-in
            oembed_url=f"{oembed.base_url}/oembed",
            liveness_rate=DEMO_LIVENESS_RATE,
            thumbnail_retry_delay=1.0,  # a demo should not wait 30 s for a retry
            liveness_retry_delay=1.0,
        )
        print(
            f"1. embedded broker on {broker.bootstrap}; stand-ins for YouTube: thumbnails {thumbnails.base_url},"
            f" oEmbed {oembed.base_url} (liveness limit raised to {DEMO_LIVENESS_RATE}/min for them)",
            flush=True,
        )
        if db_path is None:
            db_path = str(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vvv-demo-"))) / "cron.db")
            videos = build_sample_db(db_path, thumbnail_base=thumbnails.base_url)
            print(f"2. sample cron database {db_path}: {videos} videos in 7 regions", flush=True)
        else:
            print(f"2. cron database {db_path}", flush=True)
        report = publish_new(db_path, settings)
        print(f"3. hook published: {report}", flush=True)
        print(f"4. consumer groups {', '.join(groups)} running until idle...", flush=True)
        errors = _run_groups(settings, groups, db_path, until_idle)
        print(f"5. done in {time.monotonic() - started:.1f} s\n", flush=True)
        print(_summary(db_path, settings))
        failed = {name: exc for name, exc in errors.items() if exc is not None}
        for name, exc in failed.items():
            print(f"group {name} failed: {exc}")
        if console is not None and not failed:
            _keep_up(settings, groups, db_path, *console)
        return 1 if failed or report.error else 0
