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

from vvv_core import db
from vvv_core.runtime import Checked, ConcurrentExecutor, EffectGroup
from vvv_core.runtime.model import Effect
from vvv_core.runtime.ratelimit import RateLimiter
from vvv_core.safe_http import Fetcher


class Verdict(Protocol):
    transient: bool

    def detail(self, attempts: int) -> dict[str, object]: ...


class UrlCheckGroup(EffectGroup):
    table: ClassVar[str]  # where its verdicts go, one row per video
    ddl: ClassVar[str]  # CREATE TABLE IF NOT EXISTS for it
    upsert: ClassVar[str]  # stores one detail, with :video_id, :checked_at, :event_at and :event_id
    settings_prefix: ClassVar[str]  # "thumbnail": thumbnail_concurrency, thumbnail_attempts, ...
    gave_up: ClassVar[Callable[[str], Verdict]]  # the verdict once every attempt failed, from the last reason
    needs_db = False  # everything a check needs is in its event: workers may run on any host
    fetcher: Fetcher
    limiter: RateLimiter | None = None  # a group-wide rate limit, if the group has one

    @classmethod
    def create_tables(cls, conn: sqlite3.Connection) -> None:
        conn.execute(cls.ddl)
        db.add_column(conn, cls.table, "event_at", "INTEGER")  # tables made before results were ordered
        db.add_column(conn, cls.table, "event_id", "TEXT")

    def prepare(self) -> None:
        if self.conn is not None:
            self.create_tables(self.conn)

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

    @classmethod
    def apply(cls, conn: sqlite3.Connection, effects: list[Effect]) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        rows = [
            {**e.detail, "video_id": e.video_id, "checked_at": now, "event_at": e.event_at, "event_id": e.event_id}
            for e in effects
        ]
        conn.executemany(cls.upsert, rows)
