"""The shared shape of the thumbnails and liveness groups: check one URL per event, with retries.

A group declares its table (``ddl``, ``upsert``), which event field it checks (``target``),
the prefix of its settings (``<prefix>_concurrency``, ``_attempts``, ``_retry_delay``) and the
verdict when every attempt failed (``gave_up``); the checks run concurrently, each video's
events in order, and the verdict's detail is stored and published.
"""

from __future__ import annotations

import sqlite3
from abc import abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from vvv_core.runtime import Checked, ConcurrentExecutor, ConsumerGroup, Outcome
from vvv_core.runtime.ratelimit import RateLimiter
from vvv_core.safe_http import Fetcher


class Verdict(Protocol):
    transient: bool

    def detail(self, attempts: int) -> dict[str, object]: ...


class UrlCheckGroup(ConsumerGroup):
    ddl: ClassVar[str]  # CREATE TABLE IF NOT EXISTS for the group's results
    upsert: ClassVar[str]  # stores one detail, with :video_id and :checked_at
    settings_prefix: ClassVar[str]  # "thumbnail": thumbnail_concurrency, thumbnail_attempts, ...
    gave_up: ClassVar[Callable[[str], Verdict]]  # the verdict once every attempt failed, from the last reason
    fetcher: Fetcher
    limiter: RateLimiter | None = None  # a group-wide rate limit, if the group has one

    def prepare(self) -> None:
        self.conn.execute(self.ddl)

    @abstractmethod
    def target(self, event: Any) -> str | None:
        """What the check is about: the event's URL, or its video id."""

    @abstractmethod
    def verdict(self, target: str | None) -> Verdict: ...

    def limited(self, event: Any) -> bool:
        """Whether checking this event takes a rate-limit slot."""
        return True

    def executor(self) -> ConcurrentExecutor:
        s, prefix = self.settings, self.settings_prefix
        return ConcurrentExecutor(
            self.check,
            concurrency=getattr(s, f"{prefix}_concurrency"),
            attempts=getattr(s, f"{prefix}_attempts"),
            retry_delay=getattr(s, f"{prefix}_retry_delay"),
            time_limit=s.time_limit,
            limiter=self.limiter,
            limited=self.limited,
            on_give_up=lambda _event, reason, attempts: type(self).gave_up(reason).detail(attempts),
            name=self.name,
        )

    def check(self, event: Any, attempt: int) -> Checked:
        verdict = self.verdict(self.target(event))
        return Checked(verdict.detail(attempt), transient=verdict.transient)

    def close(self) -> None:
        self.fetcher.close()

    def store(self, conn: sqlite3.Connection, outcomes: list[Outcome]) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        conn.executemany(
            self.upsert, [{**o.detail, "video_id": o.inbound.event.video_id, "checked_at": now} for o in outcomes]
        )
