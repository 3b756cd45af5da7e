"""Thumbnails group: is each video's thumbnail reachable, a real image, and not a placeholder?

IO-bound: many checks run at once on a thread pool; a transient failure is retried later
without holding up other videos, and offsets never pass an unfinished check. Bodies being read
and images being decoded hold at most ``VVV_THUMBNAIL_MEMORY`` at once, half each.
"""

from __future__ import annotations

import time

from vvv_core import events
from vvv_core.config import DEFAULT_THUMBNAIL_HOSTS
from vvv_core.domain.thumbnail import ThumbnailVerdict, failed, judge, refused
from vvv_core.errors import Transient
from vvv_core.events import VideoEvent
from vvv_core.groups.urlcheck import UrlCheckGroup
from vvv_core.memory import MemoryBudget, return_large_frees_to_the_os
from vvv_core.safe_http import Fetcher, Refused, UrlPolicy

DDL = """
CREATE TABLE IF NOT EXISTS thumbnail_checks (
    video_id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('valid', 'placeholder', 'broken', 'error')),
    width INTEGER,
    height INTEGER,
    http_status INTEGER,
    reason TEXT,
    attempts INTEGER NOT NULL,
    checked_at TEXT NOT NULL,
    event_at INTEGER,  -- the checked event's created_at (ms): an older check never replaces a newer one
    event_id TEXT  -- and its id: a repeated result of the same event changes nothing
)"""
UPSERT = """
INSERT INTO thumbnail_checks
    (video_id, status, width, height, http_status, reason, attempts, checked_at, event_at, event_id)
VALUES (:video_id, :status, :width, :height, :http_status, :reason, :attempts, :checked_at, :event_at, :event_id)
ON CONFLICT (video_id) DO UPDATE SET
    status = excluded.status, width = excluded.width, height = excluded.height,
    http_status = excluded.http_status, reason = excluded.reason,
    attempts = excluded.attempts, checked_at = excluded.checked_at, event_at = excluded.event_at,
    event_id = excluded.event_id
WHERE excluded.event_at > coalesce(thumbnail_checks.event_at, 0)
   OR excluded.event_at = thumbnail_checks.event_at AND excluded.event_id IS NOT thumbnail_checks.event_id"""


class ThumbnailGroup(UrlCheckGroup):
    name = "thumbnails"
    reads = "videos"
    table = "thumbnail_checks"
    event_schema = "VideoEvent"
    detail_schema = "ThumbnailDetail"
    parse_events = staticmethod(events.video_events)
    ddl, upsert, settings_prefix = DDL, UPSERT, "thumbnail"
    gave_up = staticmethod(failed)

    def prepare(self) -> None:
        super().prepare()
        s = self.settings
        policy = UrlPolicy(s.thumbnail_hosts, operator_hosts=set(s.thumbnail_host_names) - set(DEFAULT_THUMBNAIL_HOSTS))
        # half for bodies, half for decoding: a check holding its body never waits on another's body
        self.bodies = MemoryBudget(s.thumbnail_memory // 2)
        self.pixels = MemoryBudget(s.thumbnail_memory // 2)
        return_large_frees_to_the_os()
        self.fetcher = Fetcher(policy, timeout=s.thumbnail_timeout, max_bytes=s.thumbnail_max_bytes, budget=self.bodies)

    def close(self) -> None:
        super().close()
        self.bodies.close()
        self.pixels.close()

    def target(self, event: VideoEvent) -> str | None:
        return event.thumbnail_url

    def verdict(self, url: str | None) -> ThumbnailVerdict:
        if not url:
            return ThumbnailVerdict("broken", reason="no thumbnail_url")
        try:
            fetched = self.fetcher.get(url)
        except Refused as exc:
            return refused(str(exc))
        except Transient as exc:
            return failed(str(exc))
        try:
            deadline = time.monotonic() + self.settings.thumbnail_timeout  # for a place in the decode budget
            return judge(
                fetched.status, fetched.body, over_limit=fetched.over_limit, budget=self.pixels, deadline=deadline
            )
        finally:
            self.bodies.release(fetched.reservation)
