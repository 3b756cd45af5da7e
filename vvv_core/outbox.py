"""Deliver messages in bounded pieces within a time bound; keep whatever the broker did not take in the outbox.

The outbox is a folder beside the cron database (``cron.db.outbox/``; its files: ``vvv_core.spool``).
It never touches the database, whose write lock the cron may hold for seconds at a time, and it
survives the process and the machine. Every delivery drains it first, oldest first, and while it is
not empty new messages join its end instead of overtaking it: each video's events stay in order.
One process drains at a time (an ``flock``); a process that cannot get the lock before its deadline
writes its messages as a new segment, behind the others.

**Pieces.** The hook's producer sends one request at a time per connection, without idempotence
(a retry never reorders), and reports failures only (a callback per message cost the hook a fifth
of its time). So its queue emptying is the one sign that all it was handed was answered, and every
message without a failure report acknowledged. A drain therefore hands the producer one piece at a
time and waits for its queue to empty before the next: that is a piece's boundary, where the whole
piece is known delivered and is removed from the outbox (its progress recorded and fsynced) before
the next piece is sent, so a video's events in two pieces never overtake each other. A deadline
passing mid-piece purges it; which of its messages the broker took is then not known, so that piece
alone stays and is sent again: at most one piece of repeats per interrupted call, and every call
that reached the broker leaves the outbox smaller by the pieces it finished. Pieces are sized from
the broker's measured pace to take at most a quarter of the call's time and half a second (``Pace``);
a call that finds a backlog starts with a small piece and doubles from there, so whatever happened to
the broker since its pace was measured, its first piece is acknowledged if anything can be.

A message the broker refuses while the rest of its piece is acknowledged (too large for its topic) is
kept, ahead of everything not yet sent, and the later events of its video in this call are kept behind
it instead of being sent: each video's events stay in order. A piece refused whole (the broker, not
the messages) ends the call and stays where it is.

A message can be delivered twice (a piece sent again after a deadline cut it off, or librdkafka's own
retry of a request whose answer was lost); consumers drop repeats by event id. A message is never dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException, Producer

from vvv_core import kafka
from vvv_core.config import KAFKA_SOURCES, Settings
from vvv_core.errors import Fatal
from vvv_core.spool import Damaged, Encode, Message, Spool, open_shared

log = logging.getLogger(__name__)

# No idempotence for the hook: librdkafka's idempotent producer waits a fixed 500 ms for its
# producer id when it starts before its broker connection is up, and a cron job is a fresh
# process each run. One request in flight per connection keeps each video's events in order
# through retries; a retry may repeat an event, which consumers tolerate anyway.
HOOK_PRODUCER = {
    "enable.idempotence": False,
    "max.in.flight.requests.per.connection": 1,
    "delivery.report.only.error": True,  # see the module's docstring
    **kafka.FAST_START,
}
# `vvv publish` and `vvv outbox flush` (--timeout): a million events at 2,000/s, and done before the next hourly run
DRAIN_TIMEOUT = 600.0
PIECE_SECONDS = 0.5  # the longest a piece should take: what an interruption can cost in repeats
MAX_PIECE = 50_000  # messages: within librdkafka's default queue (100,000), 6 % of an 800,000-event backlog
DEFAULT_RATE = 20_000.0  # messages/s before any was measured: the hook's usual 10,000 in one piece
MIN_RATE = 2.0  # a piece of one message in half a second
FIRST_PIECE = 100  # of a call that finds a backlog; each next piece at most twice the last one acknowledged
PROGRESS_SECONDS = 5.0  # between progress lines of a long drain
CONNECT_TIMEOUT = 10.0  # seconds a drain waits for a broker that does not answer at all
WAIT_SLICE = 0.5  # seconds per flush while waiting, so a stop or a progress line is never far off


@dataclass
class Delivery:
    delivered: int = 0  # acknowledged by the broker in this call
    queued: int = 0  # waiting in the outbox when the call returned
    unconfirmed: int = 0  # sent, but cut off before the broker answered: kept, so possibly repeated
    error: str | None = None


class OutboxError(Fatal):
    """The outbox folder cannot be written: events that were not delivered could not be kept."""


def outbox_dir(db_path: str | os.PathLike[str]) -> Path:
    """The outbox of a cron database: a folder beside it."""
    path = Path(db_path)
    return path.with_name(path.name + ".outbox")


class Pace:
    """How many messages a second the broker acknowledges, remembered beside the outbox between calls
    (each cron run is a new process).

    A piece that took up to twice the time a piece may take shows only that the broker is at least that
    fast (a small one's time is mostly the round trip, which a fresh connection or a broker just back
    makes long): the pace never drops on it, and grows at most twofold (a quick answer can be luck). One
    that took longer measures it. A deadline cutting off a call that had no piece acknowledged halves
    it; one cutting off a call whose pieces were acknowledged says nothing new (a broker that froze).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.saved = max(MIN_RATE, float(path.read_text()))
        except (OSError, ValueError):  # none yet, or torn: the default
            self.saved = DEFAULT_RATE
        self.rate = self.saved

    @staticmethod
    def seconds(budget: float) -> float:
        """The time a piece may take: a quarter of the call's, half a second at most."""
        return min(PIECE_SECONDS, budget / 4)

    def piece(self, budget: float, remaining: float) -> int:
        """Messages for the next piece: what the broker acknowledges in a piece's time, or half of what is left."""
        return max(1, min(MAX_PIECE, int(self.rate * min(self.seconds(budget), remaining / 2))))

    def acknowledged(self, count: int, seconds: float, budget: float) -> None:
        measured = count / max(seconds, 1e-6)
        slow = seconds > 2 * self.seconds(budget)
        self.rate = max(MIN_RATE, measured) if slow else min(max(self.rate, measured), 2 * self.rate)

    def missed(self) -> None:
        self.rate = max(MIN_RATE, self.rate / 2)

    def save(self) -> None:
        """Written when it moved by a fifth: a hint, never fsynced (lost or torn, the default serves)."""
        if abs(self.rate - self.saved) > self.saved / 5:
            fd = open_shared(self.path, os.O_WRONLY | os.O_TRUNC)
            try:
                os.write(fd, f"{self.rate:.0f}\n".encode())
            finally:
                os.close(fd)


@dataclass
class Run:
    """Consecutive messages of one source: a segment file, or the caller's (``segment`` None)."""

    segment: Path | None
    messages: list[Message]
    taken: int  # messages handed to pieces; a segment's run starts at what earlier calls delivered
    done: int  # messages delivered or kept ahead; for the caller's: where what is left starts


Span = tuple[Run, int, int]  # a run's messages [start, end) in one piece


class Backlog:
    """The outbox's messages oldest first, then the caller's: read a file at a time, cut into pieces.

    Files written meanwhile by a process that could not get the drain lock are read too, before the
    caller's messages. A file that cannot be read is set aside as ``*.damaged`` and the rest goes on;
    kept records that cannot be encoded yet stop the backlog there (they, and all after them, wait).
    """

    def __init__(self, spool: Spool, encode: Encode, messages: list[Message]) -> None:
        self.spool, self.encode = spool, encode
        self.unread = deque(spool.segments())
        self.done = spool.delivered() if self.unread else {}
        self.last_listed = self.unread[-1].name if self.unread else ""
        self.runs: deque[Run] = deque()
        self.caller = Run(None, messages, 0, 0)
        self.caller_reached = False
        self.blocked: str | None = None  # why the rest cannot be read yet
        self._ahead: int | None = None  # the order of what a piece leaves behind: below every file there was
        self._place_ahead()
        self.touched = bool(self.unread)  # the spool has files to count and tidy afterwards

    def _place_ahead(self) -> None:
        if self._ahead is None and self.unread and self.unread[0].name[:20].isdigit():
            self._ahead = max(0, int(self.unread[0].name[:20]) - 1_000_000)

    def take(self, count: int) -> list[Span]:
        """The next ``count`` messages (fewer at the end), as spans of runs."""
        spans: list[Span] = []
        while count > 0 and (run := self._current()) is not None:
            end = min(len(run.messages), run.taken + count)
            spans.append((run, run.taken, end))
            count -= end - run.taken
            run.taken = end
        return spans

    def read_ahead(self, count: int) -> None:
        """Read files until ``count`` messages are ready (while a piece is in flight, not between pieces)."""
        ready = sum(len(r.messages) - r.taken for r in self.runs)
        while ready < count and self._load():
            ready += len(self.runs[-1].messages) - self.runs[-1].taken

    def _current(self) -> Run | None:
        while self.runs and self.runs[0].taken == len(self.runs[0].messages):
            if self.runs[0].segment is None:
                return None
            self.runs.popleft()
        if self.runs or self._load():
            return self.runs[0]
        return None

    def _load(self) -> bool:
        """One more run: the next readable file, else (once) the caller's messages. False: nothing more."""
        if self.blocked is not None or self.caller_reached:
            return False
        while True:
            if not self.unread:
                self.unread.extend(s for s in self.spool.segments() if s.name > self.last_listed)
                if self.unread:  # written meanwhile by a process that could not get the lock
                    self.last_listed, self.touched = self.unread[-1].name, True
                    self.done = self.spool.delivered()
                    self._place_ahead()
            if not self.unread:
                self.caller_reached = True
                self.runs.append(self.caller)
                return True
            segment = self.unread.popleft()
            try:
                messages = self.spool.read(segment, self.encode)
            except Damaged as exc:
                log.error("%s: set aside as %s", exc, self.spool.set_aside(segment).name)
                continue
            except Exception as exc:  # kept records that still cannot be encoded
                self.blocked = f"cannot encode the events kept in {segment.name} yet ({type(exc).__name__}: {exc})"
                return False
            start = self.done.get(segment.name, 0)
            if start >= len(messages):  # delivered whole by a call that stopped before removing it
                self.spool.remove(segment)
                continue
            self.runs.append(Run(segment, messages, start, start))
            return True

    def delivered(self, spans: list[Span], kept: list[Message]) -> None:
        """A piece is acknowledged but for ``kept`` (in order): they go ahead of the rest, then it is removed."""
        if kept:
            written = self.spool.write(kept, self._ahead)
            if self._ahead is not None:
                self._ahead += len(written)
            self.touched = True
        for run, _start, end in spans:
            run.done = end
            if run.segment is None:
                continue
            if end == len(run.messages):
                self.spool.remove(run.segment)
            else:
                self.spool.record_delivered(run.segment, end)

    def keep_rest(self) -> int:
        """The caller's messages not delivered (all, if never reached) written at the end; how many."""
        rest = self.caller.messages[self.caller.done :]
        if rest:
            self.spool.write(rest)
            self.touched = True
        return len(rest)

    def waiting(self) -> int:
        """Messages in the outbox now, without opening it when it never had any."""
        return self.spool.waiting() if self.touched else 0


class Failures:
    """Which messages of a piece the broker (or librdkafka at once) refused, and the first reason."""

    __slots__ = ("error", "values")

    def __init__(self) -> None:
        self.values: set[bytes] = set()  # each event's value is unique: it carries the event's random id
        self.error: str | None = None

    def on_delivery(self, err, msg) -> None:  # librdkafka delivery callback, for failures only
        self.values.add(msg.value())
        self.error = self.error or err.str()


@dataclass
class Sent:
    """How one piece went."""

    produced: int = 0
    started: float = 0.0
    seconds: float = 0.0
    cut_off: bool = False  # the deadline (or a stop) came before every message was answered
    failures: Failures = field(default_factory=Failures)
    error: str | None = None  # the first refusal's reason


class OutboxPublisher:
    """One producer, reused across calls in one process; rebuilt after a failure."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: Producer | None = None
        self._failures = Failures()  # the current piece's: one producer serves every piece of every call
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
                # through the attribute: each piece has its own Failures, and the producer outlives them
                on_delivery=lambda err, msg: self._failures.on_delivery(err, msg),
                error_cb=self._seen.append,
                log_level=2,  # every failure is said once, in the report and its log line
            )
            self._producer = Producer(config)
        return self._producer

    def deliver(
        self,
        folder: Path,
        messages: list[Message],
        timeout: float,
        encode: Encode,
        meanwhile: Callable[[], None] = lambda: None,
        stop: threading.Event | None = None,
    ) -> Delivery:
        """Deliver the outbox, then ``messages``, within ``timeout`` seconds; keep the rest in the outbox.

        ``meanwhile`` is the caller's work to do while the first piece is in flight; ``stop`` ends the
        drain early, as the deadline does. Returns a little after ``timeout`` at the latest: the time to
        write what is kept.
        """
        deadline = time.monotonic() + timeout
        spool = Spool(folder)
        try:
            with spool.drain_lock(deadline) as drainer:
                if not drainer:  # another process is draining: queue behind it
                    if messages:
                        spool.write(messages)
                    delivery = Delivery(queued=spool.waiting(), error="another process is draining the outbox")
                    return self._said(spool, delivery, len(messages))
                return self._drain(spool, Backlog(spool, encode, messages), deadline, timeout, meanwhile, stop)
        except OSError as exc:
            raise OutboxError(f"cannot keep events in the outbox {folder}: {exc}") from exc

    def _drain(
        self,
        spool: Spool,
        backlog: Backlog,
        deadline: float,
        budget: float,
        meanwhile: Callable[[], None],
        stop: threading.Event | None,
    ) -> Delivery:
        result = Delivery()
        pace = Pace(spool.folder / "pace")
        progress = Progress(backlog)
        held: set[tuple[str, bytes | None]] = set()  # videos with an event kept ahead: their later ones wait too
        ramp = FIRST_PIECE if backlog.touched else MAX_PIECE  # see the module's docstring
        try:
            while (remaining := deadline - time.monotonic()) > 0 and not (stop and stop.is_set()):
                size = min(pace.piece(budget, remaining), ramp)
                spans = backlog.take(size)
                if not spans:
                    break
                piece: list[Message] = []
                for run, start, end in spans:
                    piece += run.messages[start:end]  # slices: no Python loop per message
                send = [m for m in piece if (m.topic, m.key) not in held] if held else piece
                sent = Sent()
                if send:
                    producer = self._ensure_ready(deadline)
                    sent = self._produce(producer, send, deadline, stop)
                    meanwhile()  # while the piece is in flight
                    meanwhile = _nothing
                    backlog.read_ahead(size)
                    self._wait(producer, sent, deadline, stop)
                failed = sent.failures.values
                if sent.cut_off or (send and len(failed) == len(send)):  # not known delivered: the piece stays
                    result.error = sent.error or "not every event acknowledged by the deadline"
                    if sent.cut_off:
                        result.unconfirmed = sent.produced
                        if not result.delivered:
                            pace.missed()
                    break
                kept = [m for m in piece if m.value in failed or (m.topic, m.key) in held] if failed or held else []
                backlog.delivered(spans, kept)
                result.delivered += len(piece) - len(kept)
                ramp = min(MAX_PIECE, 2 * len(piece))  # a cut-off piece is never more than twice what came before
                if failed:
                    held.update((m.topic, m.key) for m in kept)
                    result.error = result.error or sent.error
                    log.warning("%d events refused (%s): kept ahead of the rest", len(failed), sent.error)
                if send:
                    pace.acknowledged(len(send), sent.seconds, budget)
                    log.debug("outbox: %d acknowledged in %.3f s, pace %.0f/s", len(send), sent.seconds, pace.rate)
                progress.line(result.delivered)
        except Fatal as exc:  # no broker, TLS or authentication failed, not authorised: said as such
            result.error = str(exc)
        except KafkaException as exc:
            err = exc.args[0]
            bad_setting = err.code() == KafkaError._INVALID_ARG  # a librdkafka setting it does not take
            result.error = f"configuration error: {err.str()} ({KAFKA_SOURCES})" if bad_setting else err.str()
        except Exception as exc:  # whatever fails while sending: the piece in hand stays, the rest is kept
            log.warning("sending failed (%s: %s): keeping every event not delivered", type(exc).__name__, exc)
            self.close()
            result.error = f"{type(exc).__name__}: {exc}"
        if result.error is None and backlog.blocked is not None:
            result.error = backlog.blocked
        kept = backlog.keep_rest()
        result.queued = backlog.waiting()
        if result.queued and result.error is None:  # ended between two pieces
            stopped = stop is not None and stop.is_set()
            result.error = "stopped before the outbox was empty" if stopped else "the deadline came before the end"
        if backlog.touched:
            spool.tidy()
        pace.save()
        if backlog.touched and result.delivered:
            log.info("outbox: delivered %d events, %d waiting", result.delivered, result.queued)
        return self._said(spool, result, kept)

    def _ensure_ready(self, deadline: float) -> Producer:
        """The producer, its topics checked once (again after a failure); a broker that is down is said
        within CONNECT_TIMEOUT, however long the call may take."""
        producer = self._connected()
        if not self._topics_ready:
            topics = [self.settings.videos_topic, self.settings.stale_topic]
            timeout = max(0.1, min(CONNECT_TIMEOUT, deadline - time.monotonic()))
            kafka.require_topics(producer, self.settings, topics, self._seen, timeout)
            self._topics_ready = True
        return producer

    def _produce(self, producer: Producer, piece: list[Message], deadline: float, stop: threading.Event | None) -> Sent:
        """Hand ``piece`` to the producer, waiting for room in its queue when it is full (within the deadline)."""
        failures = self._failures = Failures()
        sent = Sent(failures=failures, started=time.monotonic())
        for message in piece:
            topic, key, value, headers = message
            try:
                if headers:
                    producer.produce(topic, value, key, headers=headers)
                else:
                    producer.produce(topic, value, key)
            except BufferError:  # the queue is full: serve delivery reports until it takes this one
                if not self._produce_when_room(producer, message, deadline, stop):
                    sent.cut_off = True
                    break
            except KafkaException as exc:  # refused at once, e.g. larger than message.max.bytes
                failures.values.add(value)
                failures.error = failures.error or exc.args[0].str()
            sent.produced += 1
        return sent

    @staticmethod
    def _produce_when_room(producer: Producer, message: Message, deadline: float, stop: threading.Event | None) -> bool:
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            producer.poll(0.05)
            try:
                producer.produce(message.topic, message.value, message.key, headers=message.headers)
                return True
            except BufferError:
                continue
        return False

    def _wait(self, producer: Producer, sent: Sent, deadline: float, stop: threading.Event | None) -> None:
        """Until every message of the piece is answered (its queue empty), the deadline or a stop."""
        said = sent.started
        while len(producer) and not sent.cut_off:
            now = time.monotonic()
            if now >= deadline or (stop and stop.is_set()):
                sent.cut_off = True
                break
            if now - said >= PROGRESS_SECONDS:  # a broker frozen or crawling: never silent
                said = now
                log.info(
                    "outbox: waiting %.0f s for the broker to acknowledge %d events", now - sent.started, len(producer)
                )
            producer.flush(min(WAIT_SLICE, deadline - now))
        sent.seconds = time.monotonic() - sent.started
        sent.error = sent.failures.error  # before a purge adds its own ("Purged in queue"), which says nothing
        if sent.cut_off or sent.failures.values:  # which of it the broker took is not known, or some refused:
            self.close()  # a new producer, which checks the topics again (the broker may have restarted empty)

    def _said(self, spool: Spool, delivery: Delivery, kept: int) -> Delivery:
        if delivery.queued and delivery.error:
            log.warning(  # why is the error's own words: a slow broker, none at all, TLS, a setting ...
                "%d events waiting in the outbox %s, %d of them from this call: not delivered to %s (%s); "
                "delivered by the next hook call, `vvv publish` or `vvv outbox flush`",
                delivery.queued,
                spool.folder,
                kept,
                self.settings.bootstrap,
                delivery.error,
            )
        return delivery

    def close(self) -> None:
        self._topics_ready = False  # after a failure, check again: the broker may have restarted empty
        if self._producer is not None:
            self._producer.purge(in_queue=True, in_flight=True)
            self._producer.flush(0)
            self._producer = None


def _nothing() -> None:
    pass


class Progress:
    """A line every PROGRESS_SECONDS while a long drain runs (a hook call ends long before the first)."""

    def __init__(self, backlog: Backlog) -> None:
        self.backlog = backlog
        self.started = time.monotonic()
        self.next = self.started + PROGRESS_SECONDS
        self.total: int | None = None

    def line(self, delivered: int) -> None:
        now = time.monotonic()
        if now < self.next:
            return
        self.next = now + PROGRESS_SECONDS
        if self.total is None:  # counted once, when the first line is due
            caller = self.backlog.caller
            self.total = delivered + self.backlog.waiting() + len(caller.messages) - caller.done
        rate = delivered / (now - self.started)
        log.info("outbox: %d of %d events delivered (%.0f/s)", delivered, self.total, rate)
