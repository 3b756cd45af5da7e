"""Virality score of a video from its newest snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vvv_core.events import clip


@dataclass(slots=True)  # not frozen: made per snapshot read, and frozen costs 4x to make
class Snapshot:
    region: str | None
    view_count: int
    likes: int
    comments: int
    fetched_at_ms: int  # milliseconds since the epoch


@dataclass(frozen=True, slots=True)
class Baseline:
    velocity: float  # views per hour that count as 100
    engagement: float  # engagement percentage that counts as 100


BASELINES = {
    "PL": Baseline(10_000, 6.0),
    "NL": Baseline(8_000, 5.5),
    "SE": Baseline(5_000, 5.0),
    "NO": Baseline(4_000, 5.0),
    "AT": Baseline(6_000, 5.0),
    "GB": Baseline(20_000, 4.5),
    "US": Baseline(50_000, 5.0),
}
DEFAULT_BASELINE = BASELINES["GB"]
VELOCITY_WEIGHT, ENGAGEMENT_WEIGHT = 0.55, 0.45
HISTORY_DEPTH = 2  # the formula reads the two newest snapshots only
LONG_MAX = 2**63 - 1  # what SQLite's INTEGER and Avro's long hold


@dataclass(slots=True)  # not frozen: made per event, and frozen costs 4x to make
class Score:
    score: float
    label: str  # VIRAL, TRENDING or NORMAL
    velocity: int  # views per hour, rounded
    engagement: float  # percent, 2 decimals
    region: str | None
    reason: str | None = None  # set when no score could be computed: keep the stored one

    def detail(self) -> dict[str, object]:
        """As the ``ScoreDetail`` result record (``dataclasses.asdict`` is 20x slower: it deep-copies)."""
        return {
            "score": self.score,
            "label": self.label,
            "velocity": self.velocity,
            "engagement": self.engagement,
            "region": clip(self.region),  # as the cron wrote it: cut to what a result's reader takes
            "reason": self.reason,
        }


def remember(kept: Sequence[Snapshot], new: Snapshot) -> list[Snapshot] | None:
    """The newest two of ``kept`` (newest first) and ``new``, or None when ``new`` changes nothing.

    The same two the database's lookup gives, whatever the order snapshots arrive in: a snapshot
    already kept (a repeated event) changes nothing; one older than both kept is dropped; between
    equal times the one that came later counts as newer, as the later-inserted row does in the
    database (so two snapshots of the same instant score ``no time delta`` in both modes).
    """
    if new in kept:
        return None
    merged = sorted([*kept, new], key=lambda s: s.fetched_at_ms, reverse=True)  # stable: the newcomer after its equals
    at = next(i for i, s in enumerate(merged) if s is new)
    while at and merged[at - 1].fetched_at_ms == new.fetched_at_ms:  # it came later: newer among its equals
        merged[at - 1], merged[at] = merged[at], merged[at - 1]
        at -= 1
    newest = merged[:HISTORY_DEPTH]
    return None if new not in newest else newest


def label(score: float) -> str:
    return "VIRAL" if score >= 85 else "TRENDING" if score >= 60 else "NORMAL"


def score(history: Sequence[Snapshot]) -> Score:
    """Score from ``history``, newest first (only the two newest snapshots count)."""
    if len(history) < 2:
        return Score(0.0, "NORMAL", 0, 0.0, history[0].region if history else None, "insufficient data")
    latest, previous = history[0], history[1]
    engagement = (latest.likes + latest.comments * 2) / max(latest.view_count, 1) * 100
    time_delta = (latest.fetched_at_ms - previous.fetched_at_ms) / 1000
    if time_delta <= 0:
        return Score(0.0, "NORMAL", 0, round(engagement, 2), latest.region, "no time delta")
    baseline = BASELINES.get(latest.region or "", DEFAULT_BASELINE)
    view_velocity = (latest.view_count - previous.view_count) / time_delta * 3600
    velocity_norm = max(0.0, min(100.0, view_velocity / baseline.velocity * 100))
    engagement_norm = max(0.0, min(100.0, engagement / baseline.engagement * 100))
    value = round(velocity_norm * VELOCITY_WEIGHT + engagement_norm * ENGAGEMENT_WEIGHT, 1)
    velocity = max(-LONG_MAX, min(LONG_MAX, round(view_velocity)))  # 10^13 views in a millisecond is not a crash
    return Score(value, label(value), velocity, round(engagement, 2), latest.region)
