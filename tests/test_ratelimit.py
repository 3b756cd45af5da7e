"""The group-wide rate limit (``runtime/ratelimit.py``) on a virtual clock: which slot each member and each of
its workers gets, and when; a minute never holds more than the limit; a stop ends any wait.

The limiter reads the wall clock (the slot grid) and the monotonic clock (its metrics) through its module's
``time``, which the ``clock`` fixture replaces; it sleeps on the caller's cancellation event
(``cancelled.wait(seconds)``), for which a ``Caller`` stands in: its wait moves the virtual clock instead of
sleeping. No test here waits for a real slot.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import threading
from collections.abc import Callable

import pytest
from conftest import wait_for

from vvv_core.runtime import ratelimit
from vvv_core.runtime.ratelimit import RateLimiter

pytestmark = pytest.mark.timeout(30)  # a limiter that never hands out a slot fails here, not at the suite's 120 s


def interval(limit: float) -> float:
    """Seconds between slots: ``60 / limit``, 3 % wider (the README)."""
    return 60 / (limit * 0.97)


SLOT = interval(20)  # the default limit's
FIRST = math.ceil(1.0e9 / SLOT)  # the slot the tests start before (any wall-clock time would do)
START = FIRST * SLOT - 0.3  # the virtual clock starts 0.3 s before it


class Clock:
    """``time.time`` and ``time.monotonic`` as the limiter reads them, in virtual seconds."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock(START)
    monkeypatch.setattr(ratelimit, "time", clock)
    return clock


class Caller:
    """A worker waiting for slots, in virtual time: its cancellation event as the limiter uses it.

    ``wait(seconds)`` moves the clock to when the worker wakes: ``wakes(due)``, by default on time (a
    busy machine wakes it later). With ``frozen``, the clock stays put and the wait returns at once (workers
    in threads, sharing the clock): every wait's due time is kept in ``due``. ``cancel_at``: when its
    member is stopped.
    """

    def __init__(
        self,
        clock: Clock,
        wakes: Callable[[float], float] = lambda due: due,
        cancel_at: float | None = None,
        frozen: bool = False,
    ) -> None:
        self.clock, self.wakes, self.cancel_at, self.frozen = clock, wakes, cancel_at, frozen
        self.due: list[float] = []

    def is_set(self) -> bool:
        return self.cancel_at is not None and self.clock.now >= self.cancel_at

    def wait(self, timeout: float) -> bool:
        due = self.clock.now + timeout
        self.due.append(due)
        if self.frozen:
            return False
        if self.cancel_at is not None and due >= self.cancel_at:
            self.clock.now = max(self.clock.now, self.cancel_at)
            return True
        self.clock.now = self.wakes(due)
        assert self.clock.now < START + 86_400, "no slot within a day"
        return False


def late(*seconds: float) -> Callable[[float], float]:
    """Wakes so many seconds after its due time, one figure per wait in turn; on time after those."""
    more = iter(seconds)
    return lambda due: due + next(more, 0.0)


def sends(limiter: RateLimiter, caller: Caller, n: int) -> list[float]:
    """When each of ``n`` requests in a row goes out."""
    times = []
    for _ in range(n):
        assert limiter.acquire(caller)
        times.append(caller.clock.now)
    return times


def slots(first: int, n: int, owned: set[int], total: int) -> list[float]:
    """The times of the first ``n`` slots from ``first`` whose partition is owned."""
    return [k * SLOT for k in itertools.islice((k for k in itertools.count(first) if k % total in owned), n)]


@pytest.mark.parametrize(("owned", "total"), [([0], 1), ([0, 1, 2], 3)])
def test_a_member_owning_every_partition_sends_in_every_slot_from_the_next_one(clock, owned, total):
    limiter = RateLimiter(20)
    limiter.set_partitions(owned, total)
    assert sends(limiter, Caller(clock), 4) == pytest.approx([(FIRST + k) * SLOT for k in range(4)], abs=1e-6)


def test_members_send_only_in_their_partitions_slots_never_in_the_same_one_and_use_them_all(clock):
    """Three members of a group reading six partitions, owning 3, 2 and 1 of them (each member's limiter on
    its own, as in its own process, reading the same wall clock)."""
    owners = {"a": {0, 2, 4}, "b": {1, 5}, "c": {3}}
    sent = []
    for member, owned in owners.items():
        clock.now = START
        limiter = RateLimiter(20)
        limiter.set_partitions(owned, 6)
        times = sends(limiter, Caller(clock), 2 * len(owned))  # two rounds of the six partitions
        assert times == pytest.approx(slots(FIRST, len(times), owned, 6), abs=1e-6)
        sent += [(round(t / SLOT), member) for t in times]
    assert sorted(slot for slot, _member in sent) == list(range(FIRST, FIRST + 12))  # each slot once: all used


@pytest.mark.parametrize("limit", [1, 6, 20, 300])
def test_a_minute_never_holds_more_than_the_limit_however_late_workers_wake(clock, limit):
    """Three members, each worker waking up to half a slot late (a busy machine): a worker too late for its
    slot skips it, so no 60 seconds ever hold more than ``limit`` requests of the group."""
    rng = random.Random(limit)
    times = []
    for owned in ({0, 3}, {1, 4}, {2, 5}):
        clock.now = START
        limiter = RateLimiter(limit)
        limiter.set_partitions(owned, 6)
        caller = Caller(clock, wakes=lambda due: due + rng.uniform(0, interval(limit) / 2))
        while clock.now < START + 900:
            assert limiter.acquire(caller)
            assert math.floor(clock.now / interval(limit)) % 6 in owned  # sent within a slot of its own
            times.append(clock.now)
    times.sort()
    busiest = max(bisect.bisect_right(times, t + 60) - i for i, t in enumerate(times))
    assert busiest <= limit


def test_a_worker_waking_late_sends_up_to_a_fifth_of_a_slot_after_it_and_otherwise_in_its_next_slot(clock):
    limiter = RateLimiter(20)  # slots 3.09 s apart: a fifth is 0.62 s
    limiter.set_partitions([0], 1)
    assert sends(limiter, Caller(clock, late(0.6)), 1) == pytest.approx([FIRST * SLOT + 0.6], abs=1e-6)
    limiter, clock.now = RateLimiter(20), START
    limiter.set_partitions([0], 1)
    assert sends(limiter, Caller(clock, late(0.65)), 1) == pytest.approx([(FIRST + 1) * SLOT], abs=1e-6)


def test_at_a_few_requests_a_minute_a_worker_late_by_a_second_waits_for_its_next_slot(clock):
    """A fifth of a slot is 12 s at 1 a minute: late by that, two requests could fall in one minute. A worker
    may be late by at most half of what the 3 % wider slots leave free in a minute (0.93 s)."""
    for wake_late, sent_in in ((0.9, 0), (1.0, 1)):
        limiter = RateLimiter(1)
        limiter.set_partitions([0], 1)
        clock.now = START
        first = math.ceil(START / interval(1))
        expected = (first + sent_in) * interval(1) + (wake_late if sent_in == 0 else 0)
        assert sends(limiter, Caller(clock, late(wake_late)), 1) == pytest.approx([expected], abs=1e-6)


def test_a_slot_whose_partition_moved_away_during_the_wait_is_not_used(clock):
    limiter = RateLimiter(20)
    limiter.set_partitions([0, 1], 2)
    kept = (FIRST + 1) % 2  # the first slot's partition goes to another member while this one waits for it

    def rebalanced(due: float) -> float:
        limiter.set_partitions([kept], 2)
        return due

    assert sends(limiter, Caller(clock, rebalanced), 1) == pytest.approx([(FIRST + 1) * SLOT], abs=1e-6)


def test_a_stop_during_the_wait_for_a_slot_returns_false_then(clock):
    limiter = RateLimiter(20)
    limiter.set_partitions([0], 1)
    assert limiter.acquire(Caller(clock, cancel_at=START + 0.1)) is False
    assert clock.now == START + 0.1  # not at its slot, 0.2 s later


def test_workers_of_one_member_get_a_slot_each_and_none_is_skipped(clock):
    """8 workers in threads, 5 requests each, on a frozen clock: 40 slots of the member's partitions, the 40
    first from now, each told to exactly one request."""
    limiter = RateLimiter(20)
    limiter.set_partitions([1, 3], 4)
    callers = [Caller(clock, frozen=True) for _ in range(8)]
    workers = [threading.Thread(target=sends, args=(limiter, c, 5)) for c in callers]
    for w in workers:
        w.start()
    for w in workers:
        w.join(10)
    due = sorted(t for c in callers for t in c.due)
    assert due == pytest.approx(slots(FIRST, 40, {1, 3}, 4), abs=1e-6)


def test_callers_without_partitions_wait_for_an_assignment_and_are_counted_while_they_wait(clock):
    limiter = RateLimiter(20)
    callers = [Caller(clock, frozen=True) for _ in range(3)]
    results: list[bool] = []
    workers = [threading.Thread(target=lambda c=c: results.append(limiter.acquire(c))) for c in callers]
    for w in workers:
        w.start()
    wait_for(lambda: limiter.waiting == 3, 10, "three callers waiting")
    assert not results and not any(c.due for c in callers)  # no slot without a partition
    limiter.set_partitions([2], 3)
    for w in workers:
        w.join(10)
    assert results == [True] * 3 and limiter.waiting == 0
    assert sorted(t for c in callers for t in c.due) == pytest.approx(slots(FIRST, 3, {2}, 3), abs=1e-6)


def test_a_stop_ends_the_wait_for_an_assignment(clock):
    limiter = RateLimiter(20)
    stop = threading.Event()
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(limiter.acquire(stop)), daemon=True)
    waiter.start()
    wait_for(lambda: limiter.waiting == 1, 10, "the caller waiting")
    stop.set()
    waiter.join(1.0)  # it looks every 0.2 s
    assert results == [False] and limiter.waiting == 0


def test_the_seconds_spent_waiting_add_up(clock):
    """``vvv_rate_limit_wait_seconds_total``: 0.3 s to the first slot, then one slot each."""
    limiter = RateLimiter(20)
    limiter.set_partitions([0], 1)
    assert (limiter.waited, limiter.waiting) == (0.0, 0)
    sends(limiter, Caller(clock), 3)
    assert limiter.waited == pytest.approx(0.3 + 2 * SLOT, abs=1e-6)
