"""Deliver messages within a time bound; keep whatever the broker did not take in a spool folder.

The outbox is a folder beside the cron database (``cron.db.outbox/``) of segment files, each
written whole, fsynced, then renamed into place. It never touches the database, whose write
lock the cron may hold for seconds at a time, and it survives the process and the machine.

Every delivery drains it first, oldest segment first, and while it is not empty new messages
join its end instead of overtaking it: each video's events stay in order. One process drains
at a time (an ``flock`` on the folder's lock file); a process that cannot get the lock before
its deadline writes its messages as a new segment, behind the others.

Events the hook could not encode (its settings or schemas broken) are kept too, as the
validated records themselves (``*.records``, JSON): the next delivery that can encode them
sends them in their place in the order.

A message can be delivered twice (its delivery report lost with a purged in-flight request,
or a crash between sending and rewriting the spool); consumers are idempotent and results
carry the event id, so a repeat is harmless. A message is never dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from confluent_kafka import KafkaError, KafkaException, Producer

from vvv_core import kafka
from vvv_core.config import KAFKA_SOURCES, Settings
from vvv_core.errors import Fatal

log = logging.getLogger(__name__)

# No idempotence for the hook: librdkafka's idempotent producer waits a fixed 500 ms for its
# producer id when it starts before its broker connection is up, and a cron job is a fresh
# process each run. One request in flight per connection keeps each video's events in order
# through retries; a retry may repeat an event, which consumers tolerate anyway.
HOOK_PRODUCER = {
    "enable.idempotence": False,
    "max.in.flight.requests.per.connection": 1,
    "delivery.report.only.error": True,  # see Failures
    **kafka.FAST_START,
}
PROGRESS_EVERY = 50_000  # a large backlog (`vvv publish` after a pause) reports as it goes
LOCK_POLL = 0.01  # seconds between attempts at the drain lock
MAGIC = b"VVVOUTBOX1\n"
RECORD = struct.Struct(">HiI")  # topic length, key length (-1: no key), value length
RECORDS = ".records"  # records kept before they could be encoded: {"new": [...], "stale": [...]}
_sequence = itertools.count()


class Message(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes


Encode = Callable[[dict[str, list[dict]]], list[Message]]  # records kept unencoded -> messages, now


@dataclass
class Delivery:
    delivered: int = 0
    queued: int = 0  # kept in the outbox for a later delivery
    error: str | None = None
    failed: list[Message] = field(default_factory=list, repr=False)


class Failures:
    """Which of a call's messages the broker did not take.

    The hook's producer reports failures only (``delivery.report.only.error``): a callback per
    message cost the hook a fifth of its time. Its queue emptying before the deadline means
    every message was answered and every failure report served, so the rest were acknowledged.
    If it did not empty, the deadline purged what was left and a purged message may never have
    its report served: then none counts as delivered, all are kept and sent again (repeats,
    never a loss).
    """

    __slots__ = ("error", "values")

    def __init__(self) -> None:
        self.values: set[bytes] = set()  # each event's value is unique: it carries the event's random id
        self.error: str | None = None

    def on_delivery(self, err, msg) -> None:  # librdkafka delivery callback, for failures only
        self.values.add(msg.value())
        self.error = self.error or err.str()


class OutboxError(Fatal):
    """The outbox folder cannot be written: events that were not delivered could not be kept."""


def outbox_dir(db_path: str | os.PathLike[str]) -> Path:
    """The outbox of a cron database: a folder beside it."""
    path = Path(db_path)
    return path.with_name(path.name + ".outbox")


class Spool:
    """Segment files in one folder, read and rewritten only under the drain lock."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def segments(self) -> list[Path]:
        """Segments and kept records, oldest first (their names start with the time they were written)."""
        if not self.folder.is_dir():
            return []
        return sorted([*self.folder.glob("*.seg"), *self.folder.glob(f"*{RECORDS}")], key=lambda p: p.name)

    @contextlib.contextmanager
    def drain_lock(self, deadline: float) -> Iterator[bool]:
        """Yields True while this process holds the drain lock, False if it could not be had by ``deadline``."""
        self.folder.mkdir(exist_ok=True)
        fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(LOCK_POLL)
            yield True
        finally:
            os.close(fd)  # releases the lock

    def read(self, segment: Path, encode: Encode) -> list[Message]:
        """A segment's messages; kept records are encoded now (which may raise)."""
        if segment.suffix == RECORDS:
            return encode(json.loads(segment.read_text(encoding="utf-8")))
        data = segment.read_bytes()
        body, crc = data[len(MAGIC) : -4], data[-4:]
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4 or zlib.crc32(body).to_bytes(4, "big") != crc:
            raise OutboxError(f"outbox segment {segment} is damaged")
        messages, at = [], 0
        while at < len(body):
            topic_len, key_len, value_len = RECORD.unpack_from(body, at)
            at += RECORD.size
            topic = body[at : at + topic_len].decode()
            at += topic_len
            key = None if key_len < 0 else body[at : at + key_len]
            at += max(key_len, 0)
            messages.append(Message(topic, key, body[at : at + value_len]))
            at += value_len
        return messages

    def write(self, messages: list[Message], replacing: Path | None = None) -> Path:
        """A new segment (or ``replacing`` one, atomically) holding ``messages``, durable on return."""
        parts = []
        for topic, key, value in messages:
            name = topic.encode()
            parts += [RECORD.pack(len(name), -1 if key is None else len(key), len(value)), name, key or b"", value]
        body = b"".join(parts)
        return self._write(MAGIC + body + zlib.crc32(body).to_bytes(4, "big"), ".seg", replacing)

    def write_records(self, records: dict[str, list[dict]]) -> Path:
        """Validated records that cannot be encoded yet, kept whole, durable on return."""
        return self._write(json.dumps(records).encode(), RECORDS)

    def _write(self, data: bytes, suffix: str, replacing: Path | None = None) -> Path:
        self.folder.mkdir(exist_ok=True)
        target = replacing or self.folder / f"{time.time_ns():020d}-{os.getpid()}-{next(_sequence)}{suffix}"
        tmp = target.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power cut
        finally:
            os.close(dir_fd)
        return target

    def set_aside(self, segment: Path) -> None:
        """A damaged segment is renamed, never deleted: an operator can still look at it."""
        segment.rename(segment.with_suffix(".damaged"))


class OutboxPublisher:
    """One producer, reused across calls in one process; rebuilt after a failure."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: Producer | None = None
        self._failures = Failures()  # the current call's: one producer serves every call
        self._seen: deque[KafkaError] = deque(maxlen=8)  # what went wrong connecting, for the one error line
        self._topics_ready = False

    def connect(self) -> None:
        """Start connecting, in librdkafka's threads, while the caller encodes its messages."""
        with contextlib.suppress(KafkaException):  # a setting it refuses: said when sending
            self._connected()

    def _connected(self) -> Producer:
        if self._producer is None:
            self._seen.clear()  # an earlier producer's errors say nothing of this one
            config = kafka.producer_config(
                self.settings,
                **HOOK_PRODUCER,
                # through the attribute: each call has its own Failures, and the producer outlives the call
                on_delivery=lambda err, msg: self._failures.on_delivery(err, msg),
                error_cb=self._seen.append,
                log_level=2,  # every failure is said once, in the report and its log line
            )
            self._producer = Producer(config)
        return self._producer

    def _ensure_ready(self, deadline: float) -> Producer:
        self._connected()
        if not self._topics_ready:
            topics = [self.settings.videos_topic, self.settings.stale_topic]
            timeout = max(0.1, deadline - time.monotonic())
            kafka.require_topics(self._producer, self.settings, topics, self._seen, timeout)
            self._topics_ready = True
        return self._producer

    def _send(self, messages: list[Message], deadline: float, meanwhile: Callable[[], None]) -> Delivery:
        """Send ``messages`` until ``deadline``; what the broker did not acknowledge is in ``failed``, in order.

        ``meanwhile`` runs once they are all handed to librdkafka, while its threads send them.
        """
        if not messages:
            return Delivery()
        try:
            producer = self._ensure_ready(deadline)
        except Fatal as exc:  # no broker, TLS or authentication failed, not authorised: said as such
            return Delivery(error=str(exc), failed=list(messages))
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() == KafkaError._INVALID_ARG:  # a librdkafka setting it does not take
                return Delivery(error=f"configuration error: {err.str()} ({KAFKA_SOURCES})", failed=list(messages))
            return Delivery(error=err.str(), failed=list(messages))
        failures = self._failures = Failures()
        for i, (topic, key, value) in enumerate(messages):
            if i and i % PROGRESS_EVERY == 0:
                log.info("produced %d of %d events", i, len(messages))
            try:
                try:
                    producer.produce(topic, value, key)
                except BufferError:  # local queue full: serve callbacks, then the queue has room again
                    producer.poll(0.05)
                    producer.produce(topic, value, key)
            except (KafkaException, BufferError) as exc:
                failures.error = failures.error or str(exc)
                failures.values.update(m.value for m in messages[i:])
                break
        meanwhile()
        producer.flush(max(0.0, deadline - time.monotonic()))
        if len(producer):  # the deadline came first: which messages the broker took is not known
            producer.purge(in_queue=True, in_flight=True)
            producer.flush(0)
            self.close()
            error = failures.error or "not every event acknowledged by the deadline"
            return Delivery(error=error, failed=list(messages))
        failed = [m for m in messages if m.value in failures.values] if failures.values else []  # in sending order
        if failed:
            self.close()
        return Delivery(delivered=len(messages) - len(failed), error=failures.error, failed=failed)

    def deliver(
        self,
        folder: Path,
        messages: list[Message],
        timeout: float,
        encode: Encode,
        meanwhile: Callable[[], None] = lambda: None,
    ) -> Delivery:
        """Deliver the outbox, then ``messages``, within ``timeout`` seconds; keep the rest in the outbox.

        ``meanwhile`` is the caller's work to do while the messages are in flight, if they are sent.
        Returns a little after ``timeout`` at the latest: the time to write one spool segment.
        """
        deadline = time.monotonic() + timeout
        spool = Spool(folder)
        try:
            with spool.drain_lock(deadline) as drainer:
                if not drainer:  # another process is draining: queue behind it
                    return self._keep(spool, Delivery(error="another process is draining the outbox"), messages)
                return self._drain(spool, messages, deadline, encode, meanwhile)
        except OSError as exc:
            raise OutboxError(f"cannot keep events in the outbox {folder}: {exc}") from exc

    def _drain(
        self, spool: Spool, messages: list[Message], deadline: float, encode: Encode, meanwhile: Callable[[], None]
    ) -> Delivery:
        backlog: list[Message] = []
        segments = []
        for segment in spool.segments():
            try:
                backlog += spool.read(segment, encode)
                segments.append(segment)
            except OutboxError as exc:
                log.error("%s: set aside as .damaged", exc)
                spool.set_aside(segment)
            except Exception as exc:  # kept records that still cannot be encoded: they, and all after them, wait
                error = f"cannot encode the events kept in {segment.name} yet ({type(exc).__name__}: {exc})"
                return self._keep(spool, Delivery(error=error), messages)
        try:
            sent = self._send(backlog + messages, deadline, meanwhile)
        except Exception as exc:  # whatever fails while sending, all of it is kept
            log.warning("sending failed (%s: %s): keeping every event", type(exc).__name__, exc)
            self.close()
            sent = Delivery(error=f"{type(exc).__name__}: {exc}", failed=backlog + messages)
        if backlog:
            log.info("outbox: delivered %d of %d waiting events", len(backlog) - len(sent.failed), len(backlog))
        result = Delivery(delivered=sent.delivered, error=sent.error)
        if sent.failed:
            self._keep(spool, result, sent.failed, replacing=segments[0] if segments else None)
        for segment in segments[1:] if sent.failed else segments:
            segment.unlink()
        return result

    def _keep(
        self, spool: Spool, delivery: Delivery, messages: list[Message], replacing: Path | None = None
    ) -> Delivery:
        if messages:
            spool.write(messages, replacing)
            delivery.queued = len(messages)
            log.warning(  # why is the error's own words: a slow broker, none at all, TLS, a setting ...
                "%d events not delivered to %s (%s): kept in the outbox %s, "
                "delivered by the next hook call, `vvv publish` or `vvv outbox flush`",
                delivery.queued,
                self.settings.bootstrap,
                delivery.error,
                spool.folder,
            )
        return delivery

    def close(self) -> None:
        self._topics_ready = False  # after a failure, check again: the broker may have restarted empty
        if self._producer is not None:
            self._producer.purge(in_queue=True, in_flight=True)
            self._producer.flush(0)
            self._producer = None
