"""Scaling curve of the scoring group: 1, 2 and 3 member processes on this machine's cores. Run by hand:

    .venv/bin/python bench/scaling.py [--broker embedded|kafka] [--events 200000]

The same cron database as bench/scoring.py; for each member count, the events are published to a
topic of their own first, then the members start together and drain it (first assignment to last
commit, rebalances included). Every member writes the same SQLite database, one writer at a time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from common import figure, timed_members
from scoring import make_db, publish

from vvv_core.apache_kafka import ApacheKafka
from vvv_core.broker import EmbeddedBroker
from vvv_core.config import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", choices=("embedded", "kafka"), default="embedded")
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    # KIP-848 hands a partition over at the new owner's next heartbeat: 5 s by default, broker-side;
    # 0.5 s here (as in the tests), so the curve measures scoring, not waiting for a heartbeat.
    quick = {"group.consumer.heartbeat.interval.ms": "500", "group.consumer.session.timeout.ms": "2000"}
    broker = ApacheKafka(properties=quick) if args.broker == "kafka" else EmbeddedBroker()
    with broker, tempfile.TemporaryDirectory() as tmp:
        db_path = str(Path(tmp) / "cron.db")
        make_db(db_path, 100_000)
        rates = {}
        for members in (1, 2, 3):
            settings = Settings(bootstrap=broker.bootstrap, namespace=f"scale{members}")
            publish(settings, db_path, args.events)
            run = timed_members(members, "scoring", db_path, settings.bootstrap, settings.namespace)
            rates[members] = run.rate
            print(
                f"scoring, {members} member(s) on {os.cpu_count()} cores: {run.processed:,} events in {run.busy:.2f} s"
                f" = {run.rate:,.0f} events/s ({run.rate / rates[1]:.2f}x one member); "
                f"CPU {run.cpu / run.processed * 1e6:.0f} µs per event"
            )
            figure(f"scoring with {members} member(s) / one member", run.rate / rates[1], "x")


if __name__ == "__main__":
    main()
