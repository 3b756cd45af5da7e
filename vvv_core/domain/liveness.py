"""Is a video still there? The verdict from YouTube's oEmbed answer to a HEAD request.

Pure: the request happens elsewhere. A network failure is never a verdict about the video:
it is ``unknown`` and ``transient``, to be retried.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

from vvv_core.events import clip

YOUTUBE_VIDEO_ID = re.compile(r"[A-Za-z0-9_-]{11}")


@dataclass(frozen=True, slots=True)
class LivenessVerdict:
    status: str  # alive, deleted, private, unknown
    http_status: int | None = None
    reason: str | None = None
    transient: bool = False

    def detail(self, attempts: int) -> dict[str, object]:
        """As the ``LivenessDetail`` result record."""
        return {
            "status": self.status,
            "http_status": self.http_status,
            "reason": clip(self.reason),
            "attempts": attempts,
        }


def oembed_url(endpoint: str, video_id: str) -> str:
    return f"{endpoint}?{urlencode({'url': f'https://youtube.com/watch?v={video_id}', 'format': 'json'})}"


def invalid_id(video_id: str) -> LivenessVerdict | None:
    """A verdict without asking anyone, for an id YouTube cannot have; None for a plausible id."""
    if YOUTUBE_VIDEO_ID.fullmatch(video_id):
        return None
    return LivenessVerdict("unknown", reason="rejected: not a YouTube video id (11 of A-Z a-z 0-9 _ -)")


def judge(http_status: int) -> LivenessVerdict:
    if http_status == 200:
        return LivenessVerdict("alive", 200)
    if http_status == 404:
        return LivenessVerdict("deleted", 404, "oEmbed: not found")
    if http_status in (401, 403):
        return LivenessVerdict("private", http_status, "oEmbed: private or embedding disabled")
    if http_status == 429 or http_status >= 500:
        return failed(f"HTTP {http_status}", http_status)
    return LivenessVerdict("unknown", http_status, f"unexpected HTTP {http_status}")


def failed(reason: str, http_status: int | None = None) -> LivenessVerdict:
    """Timeouts, connection errors, 429, 5xx: says nothing about the video; worth retrying."""
    return LivenessVerdict("unknown", http_status, reason, transient=True)
