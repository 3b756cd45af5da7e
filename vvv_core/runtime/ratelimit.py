"""A rate limit for a whole consumer group, kept by each member without talking to the others."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable

# Slots are a little wider than the exact limit, so that a request leaving a few milliseconds
# after its slot (scheduling, network) can never push a window over the limit.
SAFETY = 0.97
# A caller waking later than this share of a slot skips it rather than send late; and never later than half
# what the wider slots leave free in a minute (60 / SAFETY - 60 = 1.86 s; the other half is for the request's
# way out): at a few requests a minute a fifth of a slot is seconds, enough to put one too many in a minute.
LATE, MOST_LATE = 0.2, (60 / SAFETY - 60) / 2


class RateLimiter:
    """A group-wide limit of ``per_minute`` requests, split between members by partition.

    Time is cut into one grid of slots, ``60 / per_minute`` seconds apart, the same for every
    member (wall-clock time: members on other hosts agree within their clock skew). Slot ``k``
    belongs to partition ``k % total``; a member may send only in the slots of partitions it
    owns. A partition has one owner at a time, so the members' slots never coincide and any
    window of ``T`` seconds holds at most ``per_minute * T / 60`` requests, however many members
    there are; each member's share follows its partitions and changes with every rebalance.
    Callers wait in their own (worker) threads, never in the poll thread.
    """

    def __init__(self, per_minute: float) -> None:
        self.interval = 60 / (per_minute * SAFETY)
        self.late = min(LATE * self.interval, MOST_LATE)  # seconds after its slot a caller may still send
        self._assignment: tuple[frozenset[int], int] = (frozenset(), 1)  # (owned partitions, total), swapped whole
        self._last_slot = -1  # the last slot handed out by this member
        self._cond = threading.Condition()
        self.waited = 0.0  # seconds callers spent waiting, for metrics
        self.waiting = 0  # callers waiting for a slot now

    def set_partitions(self, owned: Iterable[int], total: int) -> None:
        with self._cond:
            self._assignment = (frozenset(owned), max(1, total))
            self._cond.notify_all()

    def _reserve(self, cancelled: threading.Event) -> int | None:
        with self._cond:
            while not self._assignment[0]:  # no partitions, no slots: wait for the next assignment
                if cancelled.is_set():
                    return None
                self._cond.wait(0.2)
            owned, total = self._assignment
            slot = max(self._last_slot + 1, math.ceil(time.time() / self.interval))
            while slot % total not in owned:
                slot += 1
            self._last_slot = slot
            return slot

    def acquire(self, cancelled: threading.Event) -> bool:
        """Wait for this member's next slot; False if ``cancelled`` was set first."""
        started = time.monotonic()
        with self._cond:
            self.waiting += 1
        try:
            while (slot := self._reserve(cancelled)) is not None:
                at = slot * self.interval
                if cancelled.wait(max(0.0, at - time.time())):
                    return False
                owned, total = self._assignment  # still ours? (a rebalance may have moved it)
                if time.time() - at <= self.late and slot % total in owned:
                    return True
            return False
        finally:
            with self._cond:
                self.waited += time.monotonic() - started
                self.waiting -= 1
