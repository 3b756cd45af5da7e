"""One answer per view per interval, shared by every tab and client that asks for it.

An answer is computed at most once per its view's interval, in a worker thread (the computations wait on
SQLite and the broker); a request that comes while it is computed waits for that one computation, and one
that comes later in the interval gets it as it is. So ten open tabs cost what one does. A computation that
failed is not kept: the next request computes again.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

MOST = 256  # answers kept at once (distinct sorts and pages); the expired ones are dropped first
T = TypeVar("T")


@dataclass
class _Answer:
    asked_at: float
    every: float
    task: asyncio.Future[Any]

    def fresh(self, now: float) -> bool:
        if self.task.done() and (self.task.cancelled() or self.task.exception() is not None):
            return False
        return now - self.asked_at < self.every


class Answers:
    """The answers of the views (or what they are made from), by what was asked (``key``: the view's name
    first)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._kept: dict[tuple[str, Hashable], _Answer] = {}
        self.computed: Counter[str] = Counter()  # computations per view (what a test counts)

    def __len__(self) -> int:
        return len(self._kept)

    @property
    def making(self) -> int:
        """Answers being made now."""
        return sum(not a.task.done() for a in self._kept.values())

    async def get(self, key: tuple[str, Hashable], every: float, compute: Callable[[], T]) -> tuple[T, float]:
        """The answer for ``key`` (computed by ``compute`` if it has none from the last ``every`` seconds), and
        the seconds it stays the answer."""
        now = self._clock()
        answer = self._kept.get(key)
        if answer is None or not answer.fresh(now):
            self._make_room(now)
            task = asyncio.ensure_future(run_in_threadpool(compute))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # a failure is each waiter's to raise
            answer = self._kept[key] = _Answer(now, every, task)
            self.computed[key[0]] += 1
        found = await asyncio.shield(answer.task)  # a client that leaves does not cancel it for the others
        return found, max(0.0, answer.asked_at + answer.every - self._clock())

    def forget(self, view: str) -> None:
        """Drop a view's answers: something this console did (a replay) made them wrong before their time."""
        for key in [k for k in self._kept if k[0] == view]:
            del self._kept[key]

    def _make_room(self, now: float) -> None:
        if len(self._kept) < MOST:
            return
        for key in [k for k, a in self._kept.items() if a.task.done() and not a.fresh(now)]:
            del self._kept[key]
        while len(self._kept) >= MOST:  # still full of fresh ones: the oldest go
            del self._kept[min(self._kept, key=lambda k: self._kept[k].asked_at)]
