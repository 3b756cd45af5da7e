"""Thumbnail checks against a real local HTTP server, then end to end through the broker."""

from __future__ import annotations

import functools
import io
import random
import sqlite3
import time
from collections import Counter
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
from conftest import results, run_group
from PIL import Image

from vvv_core import db
from vvv_core.groups.thumbnails import ThumbnailGroup
from vvv_core.hook import background_processing
from vvv_core.safe_http import Refused, UrlPolicy
from vvv_core.standins import LocalServer, Reply, image_bytes

CAP = 200_000


def bomb_png(side: int) -> bytes:
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, "PNG")  # 144 megapixels in ~17 KB at 12,000
    return out.getvalue()


@functools.cache
def fixed_replies() -> dict[str, Reply]:
    """Every kind of answer a thumbnail host can give (built once: the bombs take a moment)."""
    jpeg = image_bytes(320, 180)
    return {
        "/valid.jpg": Reply(200, jpeg),
        "/valid.png": Reply(200, image_bytes(640, 480, "PNG")),
        "/valid.webp": Reply(200, image_bytes(480, 360, "WEBP")),
        "/placeholder.jpg": Reply(200, image_bytes(120, 90)),
        "/exact.jpg": Reply(200, image_bytes(200, 150)),
        "/narrow.jpg": Reply(200, image_bytes(199, 150)),
        "/short.jpg": Reply(200, image_bytes(200, 149)),
        "/truncated.jpg": Reply(200, image_bytes(1280, 720)[:-2000]),
        "/corrupt.jpg": Reply(200, b"\xff\xd8\xff\xe0" + random.Random(3).randbytes(5000)),
        "/page.html": Reply(200, b"<!doctype html><html><body>nope</body></html>", {"Content-Type": "text/html"}),
        "/bomb.png": Reply(200, bomb_png(12_000)),
        "/giant-bomb.png": Reply(200, bomb_png(20_000)),
        "/huge.jpg": Reply(200, b"\xff\xd8" + b"\0" * (CAP + 1)),
        "/missing.jpg": Reply(404, b"gone"),
        "/busy.jpg": Reply(429),
        "/slow.jpg": Reply(200, jpeg, delay=1.5),
        "/redirect-out": Reply(302, headers={"Location": "http://evil.example.com/x.jpg"}),
        "/redirect-in": Reply(301, headers={"Location": "/valid.jpg"}),
        "/redirect-loop": Reply(302, headers={"Location": "/redirect-loop"}),
    }


class Routes:
    def __init__(self) -> None:
        self.served: Counter[str] = Counter()
        self.fixed = fixed_replies()
        self.jpeg = self.fixed["/valid.jpg"].body

    def __call__(self, method: str, path: str) -> Reply:
        self.served[path] += 1
        if path.startswith("/flaky"):  # 500 first, then a real image
            return Reply(500) if self.served[path] == 1 else Reply(200, self.jpeg)
        return self.fixed.get(path, Reply(404))


@pytest.fixture
def server():
    routes = Routes()
    with LocalServer(routes) as srv:
        srv.routes = routes
        yield srv


@pytest.fixture
def thumb_settings(settings, server):
    return replace(
        settings,
        thumbnail_hosts=(urlsplit(server.base_url).netloc,),
        thumbnail_timeout=0.5,
        thumbnail_retry_delay=0.2,
        thumbnail_max_bytes=CAP,
    )


@pytest.fixture
def group(thumb_settings, cron_db):
    conn = db.connect(cron_db)
    g = ThumbnailGroup(thumb_settings, conn)
    g.prepare()
    yield g
    conn.close()


@pytest.mark.parametrize(
    ("path", "status", "size", "reason"),
    [
        ("/valid.jpg", "valid", (320, 180), "320x180"),
        ("/valid.png", "valid", (640, 480), "640x480"),
        ("/valid.webp", "valid", (480, 360), "480x360"),
        ("/placeholder.jpg", "placeholder", (120, 90), "120x90"),
        ("/exact.jpg", "valid", (200, 150), "200x150"),
        ("/narrow.jpg", "placeholder", (199, 150), "199x150"),
        ("/short.jpg", "placeholder", (200, 149), "200x149"),
        ("/truncated.jpg", "broken", (None, None), "damaged image: image file is truncated"),
        ("/corrupt.jpg", "broken", (None, None), "damaged image: Truncated File Read"),
        ("/page.html", "broken", (None, None), "not an image"),
        ("/bomb.png", "broken", (12_000, 12_000), "decompression bomb: 12000x12000 pixels declared"),
        ("/giant-bomb.png", "broken", (None, None), "decompression bomb: Image size (400000000 pixels) exceeds"),
        ("/huge.jpg", "broken", (None, None), f"body larger than {CAP:,} bytes"),
        ("/missing.jpg", "broken", (None, None), "HTTP 404"),
        ("/redirect-in", "valid", (320, 180), "320x180"),
        ("/redirect-out", "broken", (None, None), "refused: host evil.example.com is not in the allow-list"),
        ("/redirect-loop", "broken", (None, None), "refused: more than 5 redirects"),
    ],
)
def test_verdicts_against_a_real_server(group, server, path, status, size, reason):
    verdict = group.verdict(server.base_url + path)
    assert (verdict.status, (verdict.width, verdict.height)) == (status, size)
    assert verdict.reason.startswith(reason)
    assert not verdict.transient


@pytest.mark.parametrize(
    ("path", "reason"), [("/busy.jpg", "HTTP 429"), ("/flaky-a.jpg", "HTTP 500"), ("/slow.jpg", "timeout after 0.5 s")]
)
def test_transient_failures_are_errors_never_broken(group, server, path, reason):
    verdict = group.verdict(server.base_url + path)
    assert (verdict.status, verdict.reason, verdict.transient) == ("error", reason, True)


def test_server_down_is_transient(thumb_settings, cron_db):
    from vvv_core.broker import free_port

    port = free_port()
    group = ThumbnailGroup(replace(thumb_settings, thumbnail_hosts=(f"127.0.0.1:{port}",)), None)
    group.prepare()
    verdict = group.verdict(f"http://127.0.0.1:{port}/x.jpg")
    assert verdict.status == "error" and verdict.transient and verdict.reason.startswith("connection error")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "refused: scheme 'file' is not http or https"),
        ("ftp://127.0.0.1/x.jpg", "refused: scheme 'ftp'"),
        ("http://10.0.0.5/x.jpg", "refused: host 10.0.0.5 is not in the allow-list"),
        ("http://[::1]/x.jpg", "refused: host ::1 is not in the allow-list"),
        ("http:///x.jpg", "refused: no host"),
    ],
)
def test_refused_urls_fetch_nothing(group, server, url, reason):
    verdict = group.verdict(url)
    assert (verdict.status, verdict.reason) == ("broken", reason) or verdict.reason.startswith(reason)
    assert server.requests == []


def test_builtin_hosts_never_reach_internal_addresses():
    """A poisoned DNS answer for a YouTube host is refused; a host the operator named may be internal."""
    policy = UrlPolicy(
        ["i.ytimg.com", "thumbs.internal"], operator_hosts=["thumbs.internal"], resolver=lambda host, port: ["10.1.2.3"]
    )
    with pytest.raises(Refused, match=r"i\.ytimg\.com resolves to internal address 10\.1\.2\.3"):
        policy.check("https://i.ytimg.com/vi/x/default.jpg")
    policy.check("http://thumbs.internal/x.jpg")
    UrlPolicy(["i.ytimg.com"], resolver=lambda host, port: ["142.250.74.46"]).check("https://i.ytimg.com/vi/x/0.jpg")


def test_end_to_end_rows_and_results(thumb_settings, schemas, cron_db, server):
    cases = {
        "valid000001": "/valid.jpg",
        "placehold01": "/placeholder.jpg",
        "truncated01": "/truncated.jpg",
        "missing0001": "/missing.jpg",
        "flaky000001": "/flaky-e2e.jpg",
        "slow0000001": "/slow.jpg",
        "outside0001": "/redirect-out",
        "fileurl0001": None,
    }
    videos = [
        {"video_id": v, "thumbnail_url": server.base_url + p if p else "file:///etc/passwd"} for v, p in cases.items()
    ]
    background_processing(videos, [], cron_db, thumb_settings)
    runner = run_group("thumbnails", thumb_settings, cron_db, until_idle=0.5)
    assert runner.processed == len(cases)

    conn = sqlite3.connect(cron_db)
    rows = {
        r[0]: r[1:]
        for r in conn.execute("SELECT video_id, status, width, height, http_status, attempts FROM thumbnail_checks")
    }
    assert rows == {
        "valid000001": ("valid", 320, 180, 200, 1),
        "placehold01": ("placeholder", 120, 90, 200, 1),
        "truncated01": ("broken", None, None, 200, 1),
        "missing0001": ("broken", None, None, 404, 1),
        "flaky000001": ("valid", 320, 180, 200, 2),  # 500, retried, then valid
        "slow0000001": ("error", None, None, None, 3),  # timed out on every attempt
        "outside0001": ("broken", None, None, None, 1),
        "fileurl0001": ("broken", None, None, None, 1),
    }
    assert server.routes.served["/slow.jpg"] == 3 and server.routes.served["/flaky-e2e.jpg"] == 2
    assert server.routes.served["/redirect-out"] == 1  # and evil.example.com was never asked
    details = {r["video_id"]: r["detail"] for r in results(thumb_settings, schemas)}
    assert len(details) == len(cases) and {r for r in details} == set(cases)
    assert details["flaky000001"] == {
        "status": "valid",
        "width": 320,
        "height": 180,
        "http_status": 200,
        "reason": "320x180",
        "attempts": 2,
    }
    assert details["slow0000001"]["reason"] == "timeout after 0.5 s"


def test_rechecks_replace_the_row(thumb_settings, cron_db, server):
    url = server.base_url + "/flaky-recheck.jpg"
    background_processing([{"video_id": "recheck0001", "thumbnail_url": url}], [], cron_db, thumb_settings)
    run_group("thumbnails", replace(thumb_settings, thumbnail_attempts=1), cron_db, until_idle=0.5)
    background_processing([{"video_id": "recheck0001", "thumbnail_url": url}], [], cron_db, thumb_settings)
    run_group("thumbnails", thumb_settings, cron_db, until_idle=0.5)
    conn = sqlite3.connect(cron_db)
    assert conn.execute("SELECT status, attempts FROM thumbnail_checks").fetchall() == [("valid", 1)]


def test_decoding_stays_within_the_memory_budget():
    """8 images of 9 MB decoded at once with room for 20 MB: never more held; one over the whole budget is broken."""
    from concurrent.futures import ThreadPoolExecutor

    from vvv_core.domain.thumbnail import judge
    from vvv_core.memory import MemoryBudget

    budget = MemoryBudget(20_000_000)
    png = image_bytes(1500, 1500, "PNG")
    deadline = time.monotonic() + 30
    with ThreadPoolExecutor(8) as pool:
        verdicts = list(pool.map(lambda _i: judge(200, png, budget=budget, deadline=deadline), range(8)))
    assert {v.status for v in verdicts} == {"valid"}
    assert 9_000_000 <= budget.peak <= 20_000_000 and budget.used == 0
    too_big = judge(200, image_bytes(2500, 2500, "PNG"), budget=budget, deadline=deadline)
    assert (too_big.status, too_big.transient) == ("broken", False)
    assert too_big.reason == "2500x2500 needs 25,000,000 bytes to decode, over the budget"


def test_a_canvas_over_the_per_image_cap_is_never_decoded():
    """6320x6320 (40 megapixels in 170 KB): refused from its header, before a byte is decoded."""
    from vvv_core.domain.thumbnail import judge
    from vvv_core.memory import MemoryBudget

    budget = MemoryBudget(96_000_000)
    verdict = judge(200, bomb_png(6320), budget=budget, deadline=time.monotonic() + 5)
    assert verdict.reason == "decompression bomb: 6320x6320 pixels declared" and budget.peak == 0
