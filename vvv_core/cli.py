"""``vvv``: the command line. Every command reads the same Settings; errors are one clear line."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException

from vvv_core import db, kafka, logs
from vvv_core.broker import EmbeddedBroker
from vvv_core.config import DEFAULT_BOOTSTRAP, ConfigError, Settings
from vvv_core.errors import Fatal
from vvv_core.groups import GROUPS
from vvv_core.runtime import GroupRunner

log = logging.getLogger("vvv")


def seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of seconds above 0")
    return value


def port(text: str) -> int:
    """An argparse type: a TCP port."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a port from 1 to 65535")
    return int(text)


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    changes: dict = {}
    if args.bootstrap:
        changes["bootstrap"] = args.bootstrap
    if args.kafka_config:
        extra = {}
        for item in args.kafka_config:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"-X {item!r}: expected key=value, e.g. -X security.protocol=SSL")
            extra[key] = value
        changes["kafka"] = {**settings.kafka, **extra}
    return replace(settings, **changes) if changes else settings


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
        broker = EmbeddedBroker(args.port).start()
        what = (
            f"embedded Kafka-compatible broker (tansu) on {broker.bootstrap}; memory only: data is lost when it stops"
        )
    try:
        settings = replace(settings, bootstrap=broker.bootstrap)
        topics = kafka.ensure_project_topics(kafka.check_broker(settings), settings, GROUPS)
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
    names = kafka.ensure_project_topics(kafka.check_broker(settings), settings, GROUPS)
    print(f"topics ready on {settings.bootstrap}: {', '.join(names)}")
    return 0


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    from vvv_core.hook import publish_new

    report = publish_new(args.db, settings)
    print(f"publish: {report}")
    return 0 if report.error is None else 1


def cmd_outbox_flush(args: argparse.Namespace, settings: Settings) -> int:
    from vvv_core.hook import flush_outbox

    report = flush_outbox(args.db, settings)
    print(f"outbox flush: {report}")
    return 0 if report.error is None else 1


def cmd_consume(args: argparse.Namespace, settings: Settings) -> int:
    if args.metrics_port is not None:
        settings = replace(settings, metrics_port=args.metrics_port)
    conn = db.connect(args.db)
    runner = GroupRunner(GROUPS[args.group](settings, conn), settings, until_idle=args.until_idle)

    on_stop_signals(runner.stop)
    try:
        runner.run()
    finally:
        conn.close()
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
            f"{why.get('error.message', '')[:120]}"
        )
    return 0


def cmd_dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    from vvv_core.dlq import replay

    kafka.check_broker(settings)
    print(f"replayed {replay(settings, args.group)} dead letters of {args.group} to their source topics")
    return 0


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from vvv_core import status

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
    Path(args.out).write_text(build_report(args.db, lag, why), encoding="utf-8")
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


def cmd_sample(args: argparse.Namespace, settings: Settings) -> int:
    from vvv_core.sample import build_sample_db

    target = Path(args.db)
    if target.is_dir() or not target.parent.is_dir():
        raise db.DatabaseError(f"cannot create {target}: {'it is a folder' if target.is_dir() else 'no such folder'}")
    print(f"sample database {args.db}: {build_sample_db(args.db)} videos")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from vvv_core.demo import run_demo

    return run_demo(settings, GROUPS, db_path=args.db, until_idle=args.until_idle)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--bootstrap", help=f"Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS or {DEFAULT_BOOTSTRAP})"
    )
    common.add_argument(
        "-X",
        dest="kafka_config",
        action="append",
        metavar="KEY=VALUE",
        help="a librdkafka setting, e.g. -X security.protocol=SASL_SSL (repeatable)",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    common.add_argument("--log-json", action="store_true", help="log one JSON object per line (for collectors)")

    parser = argparse.ArgumentParser(prog="vvv", description="ViralVidVault stream processing on Kafka")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def sub_parser(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, parents=[common])

    p = sub_parser("broker", help="run a broker in the foreground: the embedded one, or Apache Kafka")
    p.add_argument("--port", type=port, default=9092, help="the port to listen on, on 127.0.0.1 (default 9092)")
    p.add_argument(
        "--kafka", action="store_true", help="run Apache Kafka (jars fetched by `make kafka`, Java 17+) instead"
    )
    p.add_argument("--data", default=".vvv-kafka", help="with --kafka: where it keeps its data (default .vvv-kafka)")
    p.set_defaults(func=cmd_broker)

    p = sub_parser("topics", help="create the project's topics where missing (idempotent)")
    p.set_defaults(func=cmd_topics)

    p = sub_parser("publish", help="publish new and stale videos from the cron database (the hook's CLI)")

    p.add_argument("--db", required=True)
    p.set_defaults(func=cmd_publish)

    p = sub_parser("outbox", help="events kept while the broker was unreachable")
    outbox = p.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    q = outbox.add_parser("flush", help="deliver the outbox now", parents=[common])
    q.add_argument("--db", required=True)
    q.set_defaults(func=cmd_outbox_flush)

    p = sub_parser("consume", help="run one member of a consumer group")
    p.add_argument("group", choices=sorted(GROUPS))
    p.add_argument("--db", required=True)
    p.add_argument(
        "--until-idle",
        type=seconds,
        metavar="SECONDS",
        help="exit 0 once everything is consumed and nothing new arrived for SECONDS",
    )
    p.add_argument(
        "--metrics-port",
        type=port,
        metavar="PORT",
        help="serve /metrics, /healthz and /readyz on PORT (default $VVV_METRICS_PORT, else off)",
    )
    p.set_defaults(func=cmd_consume)

    p = sub_parser("dlq", help="dead letters: events a group could not process")
    dlq = p.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    q = dlq.add_parser("list", help="show a group's dead letters and why", parents=[common])
    q.add_argument("group", choices=sorted(GROUPS))
    q.add_argument("--json", action="store_true", help="one JSON object per line")
    q.set_defaults(func=cmd_dlq_list)
    q = dlq.add_parser("replay", help="send dead letters back to their topic for another try", parents=[common])
    q.add_argument("group", choices=sorted(GROUPS))
    q.set_defaults(func=cmd_dlq_replay)

    p = sub_parser("status", help="lag, dead letters and results of every consumer group")
    p.add_argument("--db", help="also summarise the results in this cron database")
    p.add_argument("--json", action="store_true", help="for scripts")
    p.set_defaults(func=cmd_status)

    p = sub_parser("report", help="an HTML page of viral videos, scores, thumbnails, dead videos and lag")
    p.add_argument("--db", required=True)
    p.add_argument("--out", default="report.html")
    p.set_defaults(func=cmd_report)

    p = sub_parser("replay", help="process a stopped group's history again, from a time or the beginning")
    p.add_argument("group", choices=sorted(GROUPS))
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--from", dest="since", metavar="TIMESTAMP", help="ISO time, e.g. 2026-11-29T06:00:00Z")
    when.add_argument("--from-beginning", action="store_true")
    p.set_defaults(func=cmd_replay)

    p = sub_parser("sample", help="build a sample cron database from real trending data")
    p.add_argument("--db", required=True)
    p.set_defaults(func=cmd_sample)

    p = sub_parser("demo", help="the whole pipeline on the embedded broker and sample data, offline")
    p.add_argument("--db", help="use this cron database instead of a fresh sample one")
    p.add_argument("--until-idle", type=seconds, default=2.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.verbose, args.log_json)
    try:
        return args.func(args, _settings(args))
    except ConfigError as exc:  # nothing was connected to: correct the setting
        print(f"vvv: error: {exc}", file=sys.stderr)
        return 2
    except (Fatal, FileNotFoundError) as exc:
        print(f"vvv: error: {exc}", file=sys.stderr)
        return 1
    except KafkaException as exc:
        err: KafkaError = exc.args[0]
        print(f"vvv: error: Kafka client: {err.str()}", file=sys.stderr)
        return 2 if err.code() == KafkaError._INVALID_ARG else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
