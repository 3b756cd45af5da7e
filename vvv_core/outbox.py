"""Deliver messages within a time bound; keep whatever the broker did not take in an outbox table.

The outbox lives in the cron database (``vvv_outbox``), so an event the broker could not take
survives the cron process. Every delivery drains the outbox first, and while it is not empty
new messages join its end instead of overtaking it: each video's events stay in order.
A message can be delivered twice (its delivery report lost with a purged in-flight request);
consumers are idempotent and results carry the event id, so a repeat is harmless.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, field
from typing import NamedTuple

from confluent_kafka import KafkaException, Producer

from vvv_core import kafka
from vvv_core.config import Settings
from vvv_core.db import transaction

log = logging.getLogger(__name__)

OUTBOX_DDL = """
CREATE TABLE IF NOT EXISTS vvv_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- delivery order
    topic TEXT NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)"""


# No idempotence for the hook: librdkafka's idempotent producer waits a fixed 500 ms for its
# producer id when it starts before its broker connection is up, and a cron job is a fresh
# process each run. One request in flight per connection keeps each video's events in order
# through retries; a retry may repeat an event, which consumers tolerate anyway.
HOOK_PRODUCER = {"enable.idempotence": False, "max.in.flight.requests.per.connection": 1}
PROGRESS_EVERY = 50_000  # a large backlog (`vvv publish` after a pause) reports as it goes


class Message(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes


@dataclass
class Delivery:
    delivered: int = 0
    queued: int = 0  # kept in the outbox for a later delivery
    error: str | None = None
    failed: list[Message] = field(default_factory=list, repr=False)

    def on_delivery(self, err, msg) -> None:  # librdkafka delivery callback
        if err is None:
            self.delivered += 1
        else:
            self.error = self.error or err.str()
            self.failed.append(Message(msg.topic(), msg.key(), msg.value()))


class OutboxPublisher:
    """One producer, reused across calls in one process; rebuilt after a failure."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: Producer | None = None
        self._topics_ready = False

    def _ensure_ready(self, deadline: float) -> Producer:
        if not self._topics_ready:
            client = kafka.check_broker(self.settings, timeout=max(0.1, deadline - time.monotonic()))
            kafka.ensure_project_topics(client, self.settings, [], timeout=max(0.1, deadline - time.monotonic()))
            self._topics_ready = True
        if self._producer is None:
            self._producer = Producer(kafka.producer_config(self.settings, **HOOK_PRODUCER))
        return self._producer

    def _send(self, messages: list[Message], deadline: float) -> Delivery:
        delivery = Delivery()
        if not messages:
            return delivery
        try:
            producer = self._ensure_ready(deadline)
        except (kafka.BrokerUnavailable, KafkaException) as exc:
            delivery.error = str(exc)
            delivery.failed = list(messages)
            return delivery
        report = delivery.on_delivery
        for i, (topic, key, value) in enumerate(messages):
            if i and i % PROGRESS_EVERY == 0:
                log.info("produced %d of %d events", i, len(messages))
            try:
                producer.produce(topic, value, key, on_delivery=report)
            except BufferError:  # local queue full: serve callbacks, then the queue has room again
                producer.poll(0.05)
                producer.produce(topic, value, key, on_delivery=report)
            except KafkaException as exc:
                delivery.error = str(exc)
                delivery.failed.extend(messages[i:])
                break
        producer.flush(max(0.0, deadline - time.monotonic()))
        if len(producer):
            # Whatever the broker has not acknowledged by the deadline goes to the outbox.
            producer.purge(in_queue=True, in_flight=True)
            producer.flush(0)
        if delivery.failed:
            self.close()
        return delivery

    def deliver(self, conn: sqlite3.Connection, messages: list[Message], timeout: float) -> Delivery:
        """Deliver the outbox, then ``messages``, within ``timeout`` seconds; keep the rest in the outbox."""
        deadline = time.monotonic() + timeout
        conn.execute(OUTBOX_DDL)
        backlog = conn.execute("SELECT id, topic, key, value FROM vvv_outbox ORDER BY id").fetchall()
        if backlog:
            sent = self._send([Message(t, k, v) for _id, t, k, v in backlog], deadline)
            undelivered = {(m.topic, m.key, m.value) for m in sent.failed}
            done = [(row[0],) for row in backlog if (row[1], row[2], row[3]) not in undelivered]
            with transaction(conn):
                conn.executemany("DELETE FROM vvv_outbox WHERE id = ?", done)
            log.info("outbox: delivered %d of %d waiting events", len(done), len(backlog))
            if sent.failed:
                result = Delivery(delivered=len(done), error=sent.error, failed=list(messages))
                self._keep(conn, result)
                return result
        result = self._send(messages, deadline)
        result.delivered += len(backlog)
        self._keep(conn, result)
        return result

    def _keep(self, conn: sqlite3.Connection, delivery: Delivery) -> None:
        if not delivery.failed:
            return
        with transaction(conn):
            conn.executemany("INSERT INTO vvv_outbox (topic, key, value) VALUES (?, ?, ?)", delivery.failed)
        delivery.queued = len(delivery.failed)
        log.warning(
            "broker %s did not take %d events in time (%s): kept in the outbox, "
            "delivered by the next hook call, `vvv publish` or `vvv outbox flush`",
            self.settings.bootstrap,
            delivery.queued,
            delivery.error,
        )

    def close(self) -> None:
        self._topics_ready = False  # after a failure, check again: the broker may have restarted empty
        if self._producer is not None:
            self._producer.purge(in_queue=True, in_flight=True)
            self._producer.flush(0)
            self._producer = None
