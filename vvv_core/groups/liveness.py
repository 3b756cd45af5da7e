"""Liveness group: which stale videos were deleted or went private, under a group-wide rate limit."""

from __future__ import annotations

from urllib.parse import urlsplit

from vvv_core import events
from vvv_core.domain.liveness import LivenessVerdict, failed, invalid_id, judge, oembed_url
from vvv_core.errors import Transient
from vvv_core.events import StaleCheckEvent
from vvv_core.groups.urlcheck import UrlCheckGroup
from vvv_core.runtime.ratelimit import RateLimiter
from vvv_core.safe_http import Fetcher, Refused, UrlPolicy

DDL = """
CREATE TABLE IF NOT EXISTS video_liveness (
    video_id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('alive', 'deleted', 'private', 'unknown')),
    http_status INTEGER,
    reason TEXT,
    checked_at TEXT NOT NULL,
    dead_since TEXT,  -- when it was first seen deleted or private; cleared when it comes back
    event_at INTEGER,  -- the checked event's created_at (ms): an older check never replaces a newer one
    event_id TEXT  -- and its id: a repeated result of the same event changes nothing
)"""
# An `unknown` answer (the network failed, or the id was impossible) never replaces what was
# known: a video is never marked dead, nor alive, because a request failed.
UPSERT = """
INSERT INTO video_liveness (video_id, status, http_status, reason, checked_at, dead_since, event_at, event_id)
VALUES (:video_id, :status, :http_status, :reason, :checked_at,
        CASE WHEN :status IN ('deleted', 'private') THEN :checked_at END, :event_at, :event_id)
ON CONFLICT (video_id) DO UPDATE SET
    status = excluded.status, http_status = excluded.http_status, reason = excluded.reason,
    checked_at = excluded.checked_at, event_at = excluded.event_at, event_id = excluded.event_id,
    dead_since = CASE WHEN excluded.status = 'alive' THEN NULL
                      ELSE coalesce(video_liveness.dead_since, excluded.dead_since) END
WHERE (excluded.status != 'unknown' OR video_liveness.status = 'unknown')
  AND (excluded.event_at > coalesce(video_liveness.event_at, 0)
       OR excluded.event_at = video_liveness.event_at AND excluded.event_id IS NOT video_liveness.event_id)"""


class LivenessGroup(UrlCheckGroup):
    name = "liveness"
    reads = "stale"
    table = "video_liveness"
    event_schema = "StaleCheckEvent"
    detail_schema = "LivenessDetail"
    parse_events = staticmethod(events.stale_check_events)
    ddl, upsert, settings_prefix = DDL, UPSERT, "liveness"
    gave_up = staticmethod(failed)

    def prepare(self) -> None:
        super().prepare()
        self.limiter = RateLimiter(self.settings.liveness_rate)
        # The endpoint is the operator's (so it may be internal); redirects may not leave its host and port.
        endpoint = urlsplit(self.settings.oembed_url)
        host = [endpoint.netloc.lower()]  # host or host:port, as the allow-list names one
        policy = UrlPolicy(host, operator_hosts=host)
        self.fetcher = Fetcher(policy, timeout=self.settings.liveness_timeout, max_bytes=0)

    def max_in_flight(self) -> int:
        return 4 * self.settings.liveness_concurrency  # at 20 requests a minute, fetch only a little ahead

    def on_assignment(self, owned: list[int], total: int) -> None:
        self.limiter.set_partitions(owned, total)

    def target(self, event: StaleCheckEvent) -> str:
        return event.video_id

    def limited(self, event: StaleCheckEvent) -> bool:
        return invalid_id(event.video_id) is None  # an impossible id is answered without a request

    def verdict(self, video_id: str) -> LivenessVerdict:
        """HEAD the oEmbed endpoint; an impossible id is answered without a request (or a rate-limit slot)."""
        if (rejected := invalid_id(video_id)) is not None:
            return rejected
        try:
            return judge(self.fetcher.get(oembed_url(self.settings.oembed_url, video_id), method="HEAD").status)
        except Refused as exc:
            return LivenessVerdict("unknown", reason=f"refused: {exc}")
        except Transient as exc:
            return failed(str(exc))
