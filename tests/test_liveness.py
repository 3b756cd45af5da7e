"""Liveness checks against a real local oEmbed server, the group-wide rate limit, end to end."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections import Counter
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import BROKER_KIND, Member, join_all, results, run_group, stop_one_by_one, vvv, wait_for

from vvv_core import db
from vvv_core.broker import free_port
from vvv_core.groups.liveness import LivenessGroup
from vvv_core.hook import background_processing
from vvv_core.standins import LocalServer, Reply

# video id -> what the oEmbed stand-in answers (ids are 11 characters, as YouTube's)
ANSWERS = {
    "alive000001": Reply(200),
    "deleted0001": Reply(404),
    "private0401": Reply(401),
    "private0403": Reply(403),
    "throttled01": Reply(429),
    "broken00500": Reply(500),
    "badrequest1": Reply(400),
    "slow0000001": Reply(200, delay=1.5),
    "moved000001": Reply(302, headers={"Location": "/oembed-final?v=alive000001"}),
    "movedgone01": Reply(301, headers={"Location": "/oembed-final?v=deleted0001"}),
    "loop0000001": Reply(
        302, headers={"Location": "/oembed?url=https://youtube.com/watch?v%3Dloop0000001&format=json"}
    ),
}


class OEmbed:
    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.overrides: dict[str, list[Reply]] = {}  # id -> replies to give first, in order

    def __call__(self, method: str, path: str) -> Reply:
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        if parts.path == "/oembed-final":
            return ANSWERS[query["v"][0]]
        assert method == "HEAD" and query["format"] == ["json"]
        video_id = parse_qs(urlsplit(query["url"][0]).query)["v"][0]
        self.seen[video_id] += 1
        if self.overrides.get(video_id):
            return self.overrides[video_id].pop(0)
        return ANSWERS.get(video_id, Reply(200))


@pytest.fixture
def oembed():
    routes = OEmbed()
    with LocalServer(routes) as server:
        server.routes = routes
        yield server


@pytest.fixture
def live_settings(settings, oembed):
    return replace(
        settings,
        oembed_url=f"{oembed.base_url}/oembed",
        liveness_timeout=0.5,
        liveness_retry_delay=0.2,
        liveness_rate=6000,
    )


@pytest.fixture
def group(live_settings, cron_db):
    conn = db.connect(cron_db)
    g = LivenessGroup(live_settings, conn)
    g.prepare()
    yield g
    conn.close()


@pytest.mark.parametrize(
    ("video_id", "status", "http_status", "transient"),
    [
        ("alive000001", "alive", 200, False),
        ("deleted0001", "deleted", 404, False),
        ("private0401", "private", 401, False),
        ("private0403", "private", 403, False),
        ("throttled01", "unknown", 429, True),
        ("broken00500", "unknown", 500, True),
        ("badrequest1", "unknown", 400, False),
        ("slow0000001", "unknown", None, True),
        ("moved000001", "alive", 200, False),
        ("movedgone01", "deleted", 404, False),
        ("loop0000001", "unknown", None, False),
    ],
)
def test_verdicts_against_a_real_server(group, oembed, video_id, status, http_status, transient):
    verdict = group.verdict(video_id)
    assert (verdict.status, verdict.http_status, verdict.transient) == (status, http_status, transient)


def test_timeouts_and_a_server_that_is_down_never_mean_dead(group, cron_db):
    assert group.verdict("slow0000001").reason == "timeout after 0.5 s"
    group.settings = replace(group.settings, oembed_url=f"http://127.0.0.1:{free_port()}/oembed")
    group.prepare()  # its fetcher allows the endpoint's host and port only
    verdict = group.verdict("alive000001")
    assert (verdict.status, verdict.transient) == ("unknown", True)
    assert verdict.reason.startswith("connection error")


@pytest.mark.parametrize("video_id", ["short", "twelve_chars", "has space!!", "../../etc/p"])
def test_invalid_ids_are_rejected_without_a_request(group, oembed, video_id):
    verdict = group.verdict(video_id)
    assert verdict.status == "unknown" and verdict.reason.startswith("rejected: not a YouTube video id")
    assert oembed.requests == []


def liveness_rows(path: str) -> dict[str, tuple]:
    conn = sqlite3.connect(path)
    try:
        return {
            r[0]: r[1:] for r in conn.execute("SELECT video_id, status, http_status, dead_since FROM video_liveness")
        }
    finally:
        conn.close()


def test_end_to_end_statuses_retries_and_a_video_that_comes_back(live_settings, schemas, cron_db, oembed):
    oembed.routes.overrides["flaky000001"] = [Reply(503)]  # then 200
    oembed.routes.overrides["comesback01"] = [Reply(404)]  # deleted now, alive on the next check
    stale = ["alive000001", "deleted0001", "private0403", "broken00500", "flaky000001", "comesback01", "short"]
    background_processing([], stale, cron_db, live_settings)
    runner = run_group("liveness", live_settings, cron_db, until_idle=0.5)
    assert runner.processed == len(stale)

    rows = liveness_rows(cron_db)
    assert {v: r[:2] for v, r in rows.items()} == {
        "alive000001": ("alive", 200),
        "deleted0001": ("deleted", 404),
        "private0403": ("private", 403),
        "broken00500": ("unknown", 500),  # 3 attempts, never called dead
        "flaky000001": ("alive", 200),
        "comesback01": ("deleted", 404),
        "short": ("unknown", None),
    }
    assert rows["deleted0001"][2] and rows["comesback01"][2] and rows["alive000001"][2] is None
    assert oembed.routes.seen["broken00500"] == 3 and oembed.routes.seen["flaky000001"] == 2
    assert "short" not in oembed.routes.seen
    details = {r["video_id"]: r["detail"] for r in results(live_settings, schemas)}
    assert details["flaky000001"] == {"status": "alive", "http_status": 200, "reason": None, "attempts": 2}
    assert details["broken00500"]["attempts"] == 3 and details["broken00500"]["status"] == "unknown"
    assert details["short"]["reason"].startswith("rejected")

    # later: one comes back, one is still deleted, and a network failure changes nothing
    oembed.routes.overrides["deleted0001"] = [Reply(500)] * 3
    dead_since = rows["deleted0001"][2]
    background_processing([], ["comesback01", "deleted0001"], cron_db, live_settings)
    run_group("liveness", live_settings, cron_db, until_idle=0.5)
    rows = liveness_rows(cron_db)
    assert rows["comesback01"] == ("alive", 200, None)
    assert rows["deleted0001"] == ("deleted", 404, dead_since)
    conn = sqlite3.connect(cron_db)
    assert conn.execute("SELECT count(*) FROM videos").fetchone() == (0,)  # never touches videos


def windows_within(times: list[float], per_second: float, width: float) -> int:
    """The largest number of requests in any [t, t + width) window, over all t at a request."""
    worst, j = 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + width:
            j += 1
        worst = max(worst, j - i)
    return worst


@pytest.mark.parametrize("members", [1, 2, 3])
def test_rate_limit_is_for_the_whole_group(live_settings, cron_db, oembed, members):
    limit = 1200  # per minute: 20 a second, raised for the test
    s = replace(live_settings, liveness_rate=limit)
    running = [Member("liveness", s, cron_db, until_idle=None).start() for _ in range(members)]
    join_all(running, s.partitions)
    background_processing([], [f"rate{i:07d}" for i in range(120)], cron_db, s)
    wait_for(lambda: sum(m.runner.processed for m in running) == 120, 60, "the 120 checks")
    stop_one_by_one(running, s.partitions)

    assert sorted(oembed.routes.seen.elements()) == [f"rate{i:07d}" for i in range(120)]  # each checked once
    times = sorted(r.at for r in oembed.requests)
    per_second = limit / 60
    for width in (1.0, 2.0, 5.0):
        assert windows_within(times, per_second, width) <= per_second * width, f"{width} s window over the limit"
    # while every partition still has work queued (the first 60% of the checks), the group runs at its limit
    queued = times[: int(len(times) * 0.6)]
    achieved = (len(queued) - 1) / (queued[-1] - queued[0])
    assert achieved >= 0.9 * per_second, f"{achieved:.1f}/s is under 90% of {per_second}/s"
    assert all(m.runner.processed > 0 for m in running)


def test_adding_members_midway_never_raises_the_total(live_settings, cron_db, oembed):
    limit = 1200
    s = replace(live_settings, liveness_rate=limit)
    first = Member("liveness", s, cron_db, until_idle=None).start()
    join_all([first], s.partitions)
    background_processing([], [f"join{i:07d}" for i in range(200)], cron_db, s)
    time.sleep(2)
    everyone = [first, *(Member("liveness", s, cron_db, until_idle=None).start() for _ in range(2))]
    join_all(everyone, s.partitions)
    # every video checked; some twice, as work in flight moves to its partition's new owner
    wait_for(lambda: len(liveness_rows(cron_db)) == 200, 60, "every video checked")
    stop_one_by_one(everyone, s.partitions)
    times = sorted(r.at for r in oembed.requests)
    assert len(set(oembed.routes.seen)) == 200
    for width in (1.0, 2.0, 5.0):
        assert windows_within(times, limit / 60, width) <= limit / 60 * width


def test_a_member_waiting_on_retries_says_so_and_status_counts_them(live_settings, oembed, cron_db, caplog):
    """Never silence: each transient failure once at INFO with its reason, a progress line every
    interval (waiting to retry, lag), and `vvv status` counting the retries waiting from the
    member's own /metrics (where the broker names its members: Apache Kafka)."""
    port = free_port()
    settings = replace(
        live_settings, liveness_retry_delay=30.0, liveness_attempts=3, progress_interval=0.3, metrics_port=port
    )
    stale = [f"flaky{i:06d}" for i in range(4)]
    for video_id in stale:
        oembed.routes.overrides[video_id] = [Reply(503)] * 3
    assert background_processing([], stale, cron_db, settings).delivered == 4
    with caplog.at_level(logging.INFO):
        member = Member("liveness", settings, cron_db, until_idle=None).start()
        wait_for(lambda: "4 waiting to retry" in caplog.text, 30, "a progress line with the retries waiting")
        retried = [r.getMessage() for r in caplog.records if "attempt 1 of 3 failed" in r.getMessage()]
        assert len(retried) == 4 and all("HTTP 503" in line and "again in 30 s" in line for line in retried)
        status = json.loads(vvv(settings, "status", "--json").stdout)
        liveness = next(g for g in status["groups"] if g["group"] == "liveness")
        if BROKER_KIND == "kafka":
            assert liveness["retries_waiting"] == 4 and liveness["probes"][0]["ready"] is True
        else:  # tansu names no members: nobody to ask
            assert liveness["retries_waiting"] is None
        member.runner.stop()
        member.join()
