"""How a group's work runs: a whole batch at once, or each event concurrently with retries.

Both are driven from the poll thread: ``submit`` hands over new events, ``take_completed``
collects finished outcomes, ``forget`` drops the work of revoked partitions. Nothing here
blocks the poll thread, so heartbeats and commits go on whatever the work is doing.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from vvv_core.errors import Fatal, Transient
from vvv_core.runtime.model import Checked, Failure, Inbound, Outcome, Partition
from vvv_core.runtime.ratelimit import RateLimiter
from vvv_core.tracing import MemberSpans, verdict

log = logging.getLogger(__name__)


class TimeLimitExceeded(Transient):
    """An attempt ran past the time limit and was abandoned; its thread's late answer is ignored."""


class Executor(Protocol):
    retries: int  # attempts scheduled again, ever (read by the metrics at scrape time)
    rate_limit_waited: float  # seconds workers waited for a rate-limit slot, ever
    spans: MemberSpans | None  # with tracing on: a span per attempt at each sampled event (set by the loop)

    def waiting(self) -> tuple[int, int]:
        """Events waiting now: for their next attempt, and for a rate-limit slot."""
        ...

    def submit(self, items: list[Inbound]) -> None: ...
    def take_completed(self) -> list[Outcome]: ...
    def in_flight(self) -> int: ...
    def running(self) -> int: ...
    def forget(self, partitions: set[Partition]) -> None: ...
    def close(self) -> None: ...


class BatchExecutor:
    """Runs ``process`` on each polled batch in the poll thread (for work that is one SQL round trip)."""

    retries = 0
    rate_limit_waited = 0.0
    spans: MemberSpans | None = None

    def __init__(self, process: Callable[[list[Inbound]], list[Outcome]]) -> None:
        self._process = process
        self._completed: list[Outcome] = []

    def waiting(self) -> tuple[int, int]:
        return 0, 0

    def submit(self, items: list[Inbound]) -> None:
        if not items:
            return
        if self.spans is None or not self.spans.sampled:  # nothing sampled in flight: nothing per event
            self._completed.extend(self._process(items))
            return
        started = [(item, span) for item in items if (span := self.spans.attempt(item, 1)) is not None]
        outcomes = self._process(items)
        if started:  # a batch's outcomes are its items', in order
            detail = {id(o.inbound): o.detail for o in outcomes}
            for item, span in started:
                self.spans.concluded(item, span, {**verdict(detail.get(id(item))), "vvv.next": "result"})
        self._completed.extend(outcomes)

    def take_completed(self) -> list[Outcome]:
        completed, self._completed = self._completed, []
        return completed

    def in_flight(self) -> int:
        return 0

    def running(self) -> int:
        return 0

    def forget(self, partitions: set[Partition]) -> None:
        self._completed = [o for o in self._completed if (o.inbound.topic, o.inbound.partition) not in partitions]

    def close(self) -> None:
        pass


class Workers:
    """Up to ``size`` threads running the calls submitted, started as needed. Daemon threads, unlike a
    ThreadPoolExecutor's, which the interpreter joins at exit: a check stuck where no deadline reaches it
    (a name lookup) must not hold a stopped member's process past its stop timeout."""

    def __init__(self, size: int, name: str) -> None:
        self._size, self._name = size, name
        self._calls: queue.SimpleQueue[tuple[Callable[..., None], tuple] | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads = 0

    def submit(self, call: Callable[..., None], *args: Any) -> None:
        self._calls.put((call, args))
        if not self._idle.acquire(blocking=False) and self._threads < self._size:
            threading.Thread(target=self._work, name=f"{self._name}_{self._threads}", daemon=True).start()
            self._threads += 1

    def _work(self) -> None:
        while (task := self._calls.get()) is not None:
            task[0](*task[1])
            self._idle.release()

    def shutdown(self) -> None:
        """Each thread ends after the calls queued before this (which find their executor closed)."""
        for _ in range(self._threads):
            self._calls.put(None)


class ConcurrentExecutor:
    """Runs ``check(event, attempt)`` for many events at once on a thread pool (IO-bound work).

    One video's events take effect in offset order: an event starts only when the one before it
    with the same key has finished, retries included; other videos keep flowing meanwhile.
    A transient verdict (``Checked.transient``, or a ``Transient`` raised) is retried after
    ``retry_delay`` seconds, up to ``attempts`` in all, waiting in a timer heap, not a thread.
    ``InvalidInput`` and any unexpected exception dead-letter the event; ``Fatal`` stops the member.
    With a ``limiter``, every attempt at an event that is ``limited`` first waits for a slot, in
    the worker. An attempt running past ``time_limit`` seconds (waiting for a slot does not count)
    is abandoned as transient.
    """

    def __init__(
        self,
        check: Callable[[Any, int], Checked],
        *,
        concurrency: int,
        attempts: int,
        retry_delay: float,
        time_limit: float,
        on_give_up: Callable[[Any, str, int], dict[str, Any]],
        limiter: RateLimiter | None = None,
        limited: Callable[[Any], bool] = lambda _event: True,
        name: str = "worker",
    ) -> None:
        self._check = check
        self._attempts = attempts
        self._retry_delay = retry_delay
        self._time_limit = time_limit
        self._on_give_up = on_give_up
        self._limiter = limiter
        self._limited = limited
        self._pool = Workers(concurrency, name)
        self._tickets = itertools.count()
        self._live: dict[int, tuple[Inbound, int]] = {}  # ticket -> (item, attempt): queued, waiting or running
        self._started: dict[int, float] = {}  # ticket -> when its check began (written by workers)
        self._waiting: list[tuple[float, int, Inbound, int]] = []  # retries: (due, ticket, item, attempt) heap
        self._behind: dict[bytes | None, deque[Inbound]] = {}  # key with an event live -> its later events
        self._queued = 0  # events in _behind
        self._finished: queue.SimpleQueue[tuple[int, Checked | BaseException]] = queue.SimpleQueue()
        self._closed = threading.Event()
        self._spans: dict[int, Any] = {}  # ticket -> its attempt's span (sampled events only)
        self.spans: MemberSpans | None = None
        self.retries = 0

    @property
    def rate_limit_waited(self) -> float:
        return self._limiter.waited if self._limiter is not None else 0.0

    def waiting(self) -> tuple[int, int]:
        return len(self._waiting), self._limiter.waiting if self._limiter is not None else 0

    def submit(self, items: Iterable[Inbound]) -> None:
        for item in items:
            if (later := self._behind.get(item.key)) is not None:
                later.append(item)  # an earlier event of this video is not finished: it waits its turn
                self._queued += 1
            else:
                self._behind[item.key] = deque()
                self._start(next(self._tickets), item, 1)

    def _start(self, ticket: int, item: Inbound, attempt: int) -> None:
        self._live[ticket] = (item, attempt)
        self._pool.submit(self._run, ticket, item, attempt)

    def _run(self, ticket: int, item: Inbound, attempt: int) -> None:
        event = item.event
        span = self.spans.attempt(item, attempt) if self.spans is not None else None
        waited = time.monotonic()
        if self._limiter is not None and self._limited(event) and not self._limiter.acquire(self._closed):
            return
        if self._closed.is_set() or ticket not in self._live:  # stopped, or its partition was revoked
            return
        if span is not None:
            span.set_attribute("vvv.rate_limit.waited_s", round(time.monotonic() - waited, 3))
            self._spans[ticket] = span
        self._started[ticket] = time.monotonic()
        try:
            self._finished.put((ticket, self._check(event, attempt)))
        except BaseException as exc:
            self._finished.put((ticket, exc))

    def take_completed(self) -> list[Outcome]:
        now = time.monotonic()
        completed: list[Outcome] = []
        while True:
            try:
                ticket, answer = self._finished.get_nowait()
            except queue.Empty:
                break
            self._started.pop(ticket, None)
            entry = self._live.pop(ticket, None)
            if entry is not None:  # else abandoned or forgotten: a late answer
                self._conclude(*entry, answer, completed, now, ticket)
        for ticket, started in list(self._started.items()):
            if now - started > self._time_limit and ticket in self._live:
                del self._started[ticket]
                item, attempt = self._live.pop(ticket)
                reason = f"time limit of {self._time_limit:g} s exceeded"
                log.warning("abandoned %s/%d@%d: %s", item.topic, item.partition, item.offset, reason)
                self._conclude(item, attempt, TimeLimitExceeded(reason), completed, now, ticket)
        while self._waiting and self._waiting[0][0] <= now:
            _due, ticket, item, attempt = heapq.heappop(self._waiting)
            self._start(ticket, item, attempt)
        return completed

    def _conclude(
        self, item: Inbound, attempt: int, answer: Checked | BaseException, out: list, now: float, ticket: int = -1
    ) -> None:
        if (span := self._spans.pop(ticket, None)) is not None:
            self._traced(item, attempt, answer, span)
        if isinstance(answer, Fatal):
            raise answer
        if isinstance(answer, Checked):
            if not answer.transient or attempt >= self._attempts:
                return self._final(Outcome(item, detail=answer.detail), out)
        elif not isinstance(answer, Transient):  # invalid input, or a bug: another attempt would not help
            return self._final(Outcome(item, failure=Failure.of(answer, attempt)), out)
        elif attempt >= self._attempts:
            return self._final(Outcome(item, detail=self._on_give_up(item.event, str(answer), attempt)), out)
        self.retries += 1
        reason = str(answer) if isinstance(answer, BaseException) else answer.detail.get("reason") or "transient"
        log.info(
            "%s/%d@%d (%s): attempt %d of %d failed (%s): again in %g s",
            item.topic,
            item.partition,
            item.offset,
            getattr(item.event, "video_id", "?"),
            attempt,
            self._attempts,
            reason,
            self._retry_delay,
        )
        ticket = next(self._tickets)
        self._live[ticket] = (item, attempt + 1)
        heapq.heappush(self._waiting, (now + self._retry_delay, ticket, item, attempt + 1))

    def _traced(self, item: Inbound, attempt: int, answer: Checked | BaseException, span: Any) -> None:
        """An attempt's span ended with what it concluded: the verdict, or the reason it is tried again, given
        up or dead-lettered (as ``_conclude`` decides)."""
        last = attempt >= self._attempts
        if isinstance(answer, Checked):
            again = answer.transient and not last
            step = f"retry in {self._retry_delay:g} s" if again else "result"
            self.spans.concluded(item, span, {**verdict(answer.detail), "vvv.next": step}, failed=again)
            return
        retried = isinstance(answer, Transient) and not last
        given_up = isinstance(answer, Transient) and last
        attributes = {
            "vvv.reason": str(answer)[:500],
            "vvv.error.class": type(answer).__name__,
            "vvv.next": f"retry in {self._retry_delay:g} s" if retried else "result" if given_up else "dead letter",
        }
        self.spans.concluded(item, span, attributes, failed=True)

    def _final(self, outcome: Outcome, out: list[Outcome]) -> None:
        """An event is done: release it, and start the next event of the same video."""
        out.append(outcome)
        self._next_of(outcome.inbound.key)

    def _next_of(self, key: bytes | None) -> None:
        later = self._behind[key]
        if later:
            self._queued -= 1
            self._start(next(self._tickets), later.popleft(), 1)
        else:
            del self._behind[key]

    def in_flight(self) -> int:
        """Events not finished yet: queued, waiting their turn, a retry or a rate-limit slot, or running."""
        return len(self._live) + self._queued

    def running(self) -> int:
        """Checks under way in a worker now."""
        return len(self._started)

    def forget(self, partitions: set[Partition]) -> None:
        live_keys = set()
        for ticket, (item, _attempt) in list(self._live.items()):
            if (item.topic, item.partition) in partitions:
                del self._live[ticket]
                self._started.pop(ticket, None)
                self._spans.pop(ticket, None)
            else:
                live_keys.add(item.key)
        self._waiting = [w for w in self._waiting if w[1] in self._live]
        heapq.heapify(self._waiting)
        for key, later in list(self._behind.items()):
            kept = deque(i for i in later if (i.topic, i.partition) not in partitions)
            self._queued -= len(later) - len(kept)
            self._behind[key] = kept
            if key not in live_keys:  # its live event was forgotten
                self._next_of(key)

    def close(self) -> None:
        self._closed.set()
        self._pool.shutdown()
