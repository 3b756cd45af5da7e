"""The virality formula against hand-computed cases (pure: no broker, no database)."""

from __future__ import annotations

import pytest
from result_detail import published

from vvv_core.domain.scoring import Score, Snapshot, label, remember, score

HOUR_MS = 3_600_000


def snap(views: int, likes: int = 0, comments: int = 0, hour: float = 0, region: str | None = "PL") -> Snapshot:
    return Snapshot(region, views, likes, comments, int(hour * HOUR_MS))


# previous 1,000,000 views; two hours later 1,024,000 views, 30,000 likes, 2,000 comments:
# velocity = 24,000 / 7,200 s * 3,600 = 12,000 views/h; engagement = 34,000 / 1,024,000 = 3.3203125 %
@pytest.mark.parametrize(
    ("region", "expected", "expected_label"),
    [
        ("PL", 79.9, "TRENDING"),  # v 100 (120 capped) * .55 + e 3.3203125/6.0 = 55.34 * .45
        ("NL", 82.2, "TRENDING"),  # 55 + 60.37 * .45
        ("SE", 84.9, "TRENDING"),  # 55 + 66.41 * .45 = 84.88
        ("NO", 84.9, "TRENDING"),
        ("AT", 84.9, "TRENDING"),
        ("GB", 66.2, "TRENDING"),  # v 12,000/20,000 = 60 * .55 = 33 + 73.78 * .45 = 33.20
        ("US", 43.1, "NORMAL"),  # v 24 * .55 = 13.2 + 66.41 * .45 = 29.88
        ("XX", 66.2, "TRENDING"),  # unknown region: GB's baseline
        (None, 66.2, "TRENDING"),  # no region at all: GB's baseline
    ],
)
def test_each_region_uses_its_baseline(region, expected, expected_label):
    history = [snap(1_024_000, 30_000, 2_000, hour=2, region=region), snap(1_000_000, hour=0, region=region)]
    result = score(history)
    assert (result.score, result.label) == (expected, expected_label)
    assert result.velocity == 12_000
    assert result.engagement == 3.32
    assert result.region == region
    assert result.reason is None


def test_viral_when_both_parts_saturate():
    # PL: 11,000 views/h > 10,000; engagement (7,000 + 2 * 500) / 111,000 = 7.21 % > 6.0
    result = score([snap(111_000, 7_000, 500, hour=1), snap(100_000, hour=0)])
    assert (result.score, result.label, result.velocity, result.engagement) == (100.0, "VIRAL", 11_000, 7.21)


def test_fewer_than_two_snapshots_is_insufficient_data():
    assert score([]) == Score(0.0, "NORMAL", 0, 0.0, None, "insufficient data")
    assert score([snap(5_000, 40, region="SE")]) == Score(0.0, "NORMAL", 0, 0.0, "SE", "insufficient data")


def test_equal_timestamps_give_no_time_delta_but_the_engagement():
    # engagement (1 + 2 * 0) / 3 views = 33.333 %, to 2 decimals
    result = score([snap(3, 1, hour=5, region="NO"), snap(1, hour=5, region="NO")])
    assert result == Score(0.0, "NORMAL", 0, 33.33, "NO", "no time delta")


def test_snapshots_a_second_apart_are_scored():
    # 10 views in 1 s = 36,000 views/h: PL's velocity part saturates, 100 * .55; no likes: nothing more
    result = score([snap(1_010, hour=1 / 3600), snap(1_000, hour=0)])
    assert result == Score(55.0, "NORMAL", 36_000, 0.0, "PL", None)


def test_no_engagement_adds_nothing_to_the_velocity():
    # 5,000 views in an hour: half of PL's 10,000 = 50 * .55 = 27.5; no likes, no comments: + 0
    assert score([snap(105_000, hour=1), snap(100_000, hour=0)]).score == 27.5


def test_older_latest_snapshot_gives_no_time_delta():
    result = score([snap(2_000, hour=4), snap(1_000, hour=5)])
    assert result.reason == "no time delta"


def test_views_going_down_clamp_velocity_at_zero():
    # -100 views in an hour: velocity part 0; engagement (9 + 0) / 900 = 1 % of PL's 6.0 = 16.67 * .45 = 7.5
    result = score([snap(900, 9, hour=1), snap(1_000, hour=0)])
    assert (result.score, result.velocity, result.engagement, result.label) == (7.5, -100, 1.0, "NORMAL")


def test_zero_views_do_not_divide_by_zero():
    # engagement = (3 + 2*1) / max(0, 1) * 100 = 500 %, capped at 100
    result = score([snap(0, 3, 1, hour=1), snap(0, hour=0)])
    assert (result.score, result.engagement) == (45.0, 500.0)


def test_only_the_two_newest_snapshots_count():
    newest_two = [snap(111_000, 7_000, 500, hour=3), snap(100_000, hour=2)]
    assert score([*newest_two, snap(0, hour=1), snap(50, hour=0)]) == score(newest_two)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(100, "VIRAL"), (85.0, "VIRAL"), (84.9, "TRENDING"), (60.0, "TRENDING"), (59.9, "NORMAL"), (0, "NORMAL")],
)
def test_label_thresholds(value, expected):
    assert label(value) == expected


def test_the_detail_is_the_published_score_detail():
    scored = score([snap(1_024_000, 30_000, 2_000, hour=2, region="GB"), snap(1_000_000, hour=0, region="GB")])
    assert published("ScoreDetail", scored.detail()) == {
        "score": 66.2,
        "label": "TRENDING",
        "velocity": 12_000,
        "engagement": 3.32,
        "region": "GB",
        "reason": None,
    }
    unscored = score([snap(5_000, region="US")])
    assert published("ScoreDetail", unscored.detail()) == {
        "score": 0.0,
        "label": "NORMAL",
        "velocity": 0,
        "engagement": 0.0,
        "region": "US",
        "reason": "insufficient data",
    }


def test_the_two_snapshots_kept_are_the_databases_whatever_order_they_arrive_in():
    """``remember`` keeps what the database's lookup gives: the newest two by time, the later arrival the newer of
    two with the same time (the later-inserted row); a repeat, or one older than both kept, changes nothing."""
    old, mid, new = snap(1, hour=0), snap(2, hour=1), snap(3, hour=2)
    assert remember([], mid) == [mid]
    assert (remember([mid], old), remember([mid], new)) == ([mid, old], [new, mid])
    assert (remember([mid, old], new), remember([new, old], mid)) == ([new, mid], [new, mid])
    assert remember([new, mid], old) is None
    assert remember([new, mid], mid) is None and remember([new, mid], snap(3, hour=2)) is None  # repeats
    a, b, c = snap(10, hour=1), snap(20, hour=1), snap(30, hour=1)  # one instant
    assert (remember([a], b), remember([b, a], c)) == ([b, a], [c, b])
    assert (remember([new, a], b), remember([a, old], b)) == ([new, b], [b, a])
