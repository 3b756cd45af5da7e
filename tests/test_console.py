"""The console in a real browser: Playwright driving Debian's headless chromium (never a downloaded one)
against `vvv console` on this run's broker and a real cron database.

``CONSOLE_SCREENSHOTS=folder`` saves the main pages as PNGs there (the README's pictures).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from conftest import VVV, cli_env, run_group, wait_for

from vvv_core import kafka
from vvv_core.avro import SchemaStore
from vvv_core.broker import free_port
from vvv_core.dlq import list_dead_letters
from vvv_core.events import new_event_ids, now_ms, video_record
from vvv_core.hook import background_processing, publish_new
from vvv_core.runtime.deadletter import dead_letter_headers
from vvv_core.runtime.model import Failure, Inbound

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="needs Debian's chromium (.ci/run installs it)"
)
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class Console:
    """`vvv console` in its own process, as an operator starts it (its log in ``log``)."""

    def __init__(self, settings, db_path: str, host: str = "127.0.0.1", *flags: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(db_path).with_suffix(f".console-{self.port}.log")
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [*VVV, "console", "--db", db_path, "--host", host, "--port", str(self.port), *flags],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=cli_env(settings, **env),
            )
        self.announced = self.process.stdout.readline()
        assert "console: http://" in self.announced, self.announced

    def get(self, path: str, **headers: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(urllib.request.Request(self.url + path, headers=headers), timeout=30) as got:
                return got.status, got.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def post(self, path: str, body: dict | bytes, **headers: str) -> tuple[int, dict]:
        request = urllib.request.Request(
            self.url + path,
            body if isinstance(body, bytes) else json.dumps(body).encode(),
            {"Content-Type": "application/json", **headers},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def token(self) -> str:
        """Bound to loopback: the token its page hands its own script."""
        return self.get("/")[1].split('name="vvv-token" content="')[1].split('"')[0]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


class InProcessConsole:
    """The console's app served from this process, so a test can count what it does (its answers, and the
    requests its long-lived clients send)."""

    def __init__(self, settings, db_path: str) -> None:
        import uvicorn

        from vvv_core.cli import GROUPS
        from vvv_core.console.app import create_app

        self.app = create_app(settings, GROUPS, db_path, "127.0.0.1", "in-process-token-1234")
        listening = socket.socket()
        listening.bind(("127.0.0.1", 0))
        listening.listen(16)
        self.url = f"http://127.0.0.1:{listening.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [listening]}, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, 30, "the console to start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def console(settings, sample_db) -> Iterator[Console]:
    publish_new(sample_db, settings)
    run_group("scoring", settings, sample_db)
    running = Console(settings, sample_db)
    yield running
    running.stop()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


def shoot(page, name: str) -> None:
    if folder := os.environ.get("CONSOLE_SCREENSHOTS"):
        page.screenshot(path=str(Path(folder) / f"console-{name}.png"))


def dead_letter(settings, video_id: str) -> None:
    """A valid event in the scoring group's dead-letter topic, with the headers the runtime writes
    (as after a failure since fixed): replaying it must get it scored."""
    value = SchemaStore().encoder("VideoEvent")(video_record({"video_id": video_id}, next(new_event_ids()), now_ms()))
    failure = Failure("transient", "OperationalError", "database is locked", attempts=3)
    source = Inbound(settings.videos_topic, 0, 7, video_id.encode(), value, [])
    headers = dead_letter_headers("scoring", source, failure)
    kafka.ensure_project_topics(kafka.admin(settings), settings, ["scoring"])
    producer = Producer(kafka.producer_config(settings))
    producer.produce(settings.dead_letter_topic("scoring"), value, video_id.encode(), headers=headers)
    assert producer.flush(10) == 0


def test_the_console_shows_the_pipeline_live_and_replays_a_dead_letter(settings, sample_db, console, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(console.url)
    assert page.title() == "ViralVidVault console"
    page.wait_for_selector("#groups tr[data-group=scoring]")
    page.wait_for_selector("text=viral")  # the summary's cards
    assert page.locator("[data-view=results] svg").count() == 7  # a histogram per region
    assert page.locator("[data-view=results] a[href^='https://www.youtube.com/watch?v=']").count() > 0

    # lag updates while the page stays open: events published with no scoring member running
    lag = page.locator("#groups tr[data-group=scoring] td.lag")
    before = int(lag.inner_text())
    videos = [{"video_id": f"fresh{i:06d}", "region": "PL"} for i in range(20)]
    assert background_processing(videos, [], sample_db, settings).delivered == 20
    wait_for(lambda: int(lag.inner_text()) >= before + 20, 30, "the page to show the new lag")  # no reload

    # a dead letter appears, a click replays it, and the event is then processed
    conn = sqlite3.connect(sample_db)
    video_id = conn.execute("SELECT video_id FROM videos WHERE virality_score IS NOT NULL LIMIT 1").fetchone()[0]
    conn.execute("UPDATE videos SET virality_score = NULL WHERE video_id = ?", (video_id,))
    conn.commit()
    dead_letter(settings, video_id)
    page.fill("#dlq-query", video_id)
    row = page.locator("[data-view=dead-letters] tr", has_text=video_id)
    row.wait_for(timeout=30_000)
    assert "database is locked" in row.inner_text()
    page.evaluate("window.scrollTo(0, document.getElementById('dead-letters').offsetTop - 10)")
    shoot(page, "dead-letters")
    row.locator("button.replay").click()
    page.wait_for_selector("#message:has-text('replayed 1 dead letter')", timeout=30_000)
    page.locator("[data-view=dead-letters] td.muted", has_text="replayed").first.wait_for(timeout=30_000)
    dead = page.locator("#groups tr[data-group=scoring] td.dead")
    wait_for(lambda: dead.inner_text() == "0 +1 replayed", 30, "the pipeline to count the replayed letter apart")
    run_group("scoring", settings, sample_db)
    assert conn.execute("SELECT virality_score FROM videos WHERE video_id = ?", (video_id,)).fetchone()[0] is not None
    conn.close()


def test_a_replay_without_the_token_or_from_another_site_is_refused(settings, sample_db, console):
    dead_letter(settings, "J78aPJ3VyNs")
    token = console.token()
    assert len(token) >= 16  # bound to loopback: the console's own page hands it to its script

    assert console.post("/replay", {"group": "scoring"})[0] == 403  # no token
    assert console.post("/replay", {"group": "scoring"}, **{"X-VVV-Token": "guess"})[0] == 403
    assert console.post("/replay", {"group": "scoring"}, **{"X-VVV-Token": "gu\u00e9ss"})[0] == 403  # not ASCII
    cross_site = {"X-VVV-Token": token, "Origin": "https://evil.example"}
    assert console.post("/replay", {"group": "scoring"}, **cross_site) == (
        403,
        {"error": "cross-site request from https://evil.example refused"},
    )
    rebound = urllib.request.Request(console.url + "/views/pipeline", headers={"Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:  # a DNS-rebinding page names its own host
        urllib.request.urlopen(rebound, timeout=10)
    assert refused.value.code == 400
    assert [line for line in kafka.read_topic(settings, settings.videos_topic) if line.headers()] == []  # none sent

    assert console.post("/replay", {"group": "scoring"}, **{"X-VVV-Token": token}) == (200, {"replayed": 1})


def test_the_page_allows_scripts_from_the_console_only_images_from_the_thumbnail_hosts_and_no_framing(
    settings, sample_db
):
    running = InProcessConsole(settings, sample_db)
    try:
        with urllib.request.urlopen(running.url + "/", timeout=30) as page:
            said = page.headers["Content-Security-Policy"]
            framing = page.headers["X-Frame-Options"]
    finally:
        running.stop()
    policy = dict(part.strip().split(" ", 1) for part in said.split(";"))
    assert policy["default-src"] == policy["script-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    hosts = [f"{scheme}://{host}:*" for host in settings.thumbnail_host_names for scheme in ("http", "https")]
    assert policy["img-src"].split() == ["'self'", *hosts] and framing == "DENY"


def test_a_malformed_request_is_answered_400_with_its_reason(settings, sample_db, console):
    """Issue 21, case 8: whatever a request body or query holds, the answer is a 400 that says why, never a 500,
    and nothing is replayed."""
    dead_letter(settings, "J78aPJ3VyNs")
    token = {"X-VVV-Token": console.token()}
    bodies = [
        (b"{not json", "the body is not JSON"),
        (b"\xff\xfe", "the body is not JSON"),
        (b"[1, 2]", "the body is not a JSON object"),
        (b"{}", "group: expected one of scoring"),
        ({"group": ["scoring"]}, "group: expected one of"),
        ({"group": "nope"}, "group: expected one of"),
        ({"group": "scoring", "partition": "abc", "offset": 0}, "partition: expected a whole number from 0, got str"),
        ({"group": "scoring", "partition": 0}, "offset: expected a whole number from 0, got nothing"),
        ({"group": "scoring", "partition": True, "offset": 0}, "partition: expected a whole number from 0, got bool"),
        ({"group": "scoring", "partition": -1, "offset": 0}, "partition: expected a whole number from 0, got int"),
        ({"group": "scoring", "partition": 0, "offset": 1.5}, "offset: expected a whole number from 0, got float"),
        ({"group": "scoring", "partition": 0, "offset": 0, "q": ""}, "not both"),
        ({"group": "scoring", "q": {"$ne": ""}}, "q: expected text, got dict"),
        ({"group": "scoring", "everything": True}, "unknown fields: 'everything'"),
    ]
    for body, reason in bodies:
        status, answer = console.post("/replay", body, **token)
        assert status == 400 and reason in answer["error"], (body, status, answer)
    letters = [d for d in list_dead_letters(settings, "scoring") if not d.replayed]
    assert len(letters) == 1  # nothing replayed

    queries = [
        ("/views/results?PL=views", "PL: expected column.direction.page"),
        ("/views/results?PL=rank.desc.1", "the column one of score, views"),
        ("/views/results?PL=views.up.1", "the direction asc or desc"),
        ("/views/results?PL=views.desc.0", "the page is a number from 1 to 20"),
        ("/views/results?PL=views.desc.%C2%B2", "the page is a number from 1 to 20"),  # a superscript two
        ("/views/dead-letters?group=nope", "no such group"),
        ("/views/dead-letters?group=scoring&q=" + "x" * 501, "at most 500"),
        ("/views/timeline?id=bad%20id", "is not a video id"),
        ("/views/timeline", "is not a video id"),
        ("/views/timeline?id=J78aPJ3VyNs&days=0", "expected a number of days above 0, 366 at most"),
        ("/views/timeline?id=J78aPJ3VyNs&days=367", "expected a number of days above 0, 366 at most"),
        ("/views/timeline?id=J78aPJ3VyNs&days=nan", "expected a number of days"),
    ]
    for path, reason in queries:
        status, text = console.get(path)
        assert status == 400 and reason in text, (path, status, text)


def test_bound_beyond_loopback_the_token_guards_every_view(settings, sample_db, browser, tmp_path):
    """Issue 21, case 8: bound beyond loopback, every view needs the token (the page asks the operator for it
    once per tab), unless the operator serves read-only public views on purpose: then views answer anyone,
    replays still need it, and the console says so in its log at start."""
    dead_letter(settings, "J78aPJ3VyNs")
    views = [
        "/views/summary",
        "/views/pipeline",
        "/views/results",
        "/views/dead-letters?group=scoring",
        "/views/timeline?id=J78aPJ3VyNs",
    ]
    running = Console(settings, sample_db, "0.0.0.0", VVV_CONSOLE_TOKEN="operators-only-token")
    try:
        assert "(token: operators-only-token)" in running.announced
        status, page = running.get("/")
        assert status == 200 and 'name="vvv-token" content=""' in page and sample_db not in page  # markup only
        for view in views:
            for headers in ({}, {"X-VVV-Token": "operators-only-toke"}, {"X-VVV-Token": "operators-only-t\u00f6ken"}):
                status, text = running.get(view, **headers)
                assert status == 401 and "J78aPJ3VyNs" not in text and sample_db not in text, (view, headers)
            assert running.get(view, **{"X-VVV-Token": "operators-only-token"})[0] == 200, view
        assert running.get("/views/dead-letters?group=scoring", **{"X-VVV-Token": "operators-only-token"})[1].count(
            "J78aPJ3VyNs"
        )
        assert running.post("/replay", {"group": "scoring"}, **{"X-VVV-Token": "wrong"})[0] == 403

        tab = browser.new_page()
        asked = []
        tab.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept("operators-only-token")))
        tab.goto(running.url)
        tab.wait_for_selector("#groups tr[data-group=scoring]")  # once the operator gave the token
        tab.locator("[data-view=dead-letters] tr", has_text="J78aPJ3VyNs").wait_for()
        assert len(asked) == 1 and "views need its token" in asked[0]  # asked once for the whole page

        replayed = running.post("/replay", {"group": "scoring"}, **{"X-VVV-Token": "operators-only-token"})
        assert replayed == (200, {"replayed": 1})
    finally:
        running.stop()
    assert "--public-views" not in running.log.read_text()

    public = Console(settings, sample_db, "0.0.0.0", "--public-views", VVV_CONSOLE_TOKEN="operators-only-token")
    try:
        for view in views:
            assert public.get(view)[0] == 200, view
        assert public.post("/replay", {"group": "scoring"})[0] == 403
        assert public.post("/replay", {"group": "scoring"}, **{"X-VVV-Token": "operators-only-tokens"})[0] == 403
    finally:
        public.stop()
    said = [line for line in public.log.read_text().splitlines() if "--public-views" in line]
    assert len(said) == 1 and "WARNING" in said[0] and "without the token" in said[0]


def test_two_tabs_share_one_pipeline_answer(settings, sample_db, browser):
    """Two tabs open on one console: each view's answer is made once per its interval, and the broker is asked
    once per answer. Counted at the client layer the console owns: its long-lived ``kafka.Readers`` count the
    requests they send by kind, and only a pipeline look asks for the groups' members. A search typed into the
    dead letters reads the topic no more often."""
    background_processing([{"video_id": f"fresh{i:06d}"} for i in range(30)], [], sample_db, settings)
    running = InProcessConsole(settings, sample_db)
    try:
        answers, readers = running.app.state.answers, running.app.state.readers[0]
        asked: list[str] = []
        tabs = [browser.new_page() for _ in range(2)]
        for tab in tabs:
            tab.on("request", lambda request: asked.append(request.url) if "/views/pipeline" in request.url else None)
            tab.goto(running.url)
        for tab in tabs:
            tab.wait_for_selector("#groups tr[data-group=scoring]")

        def counts() -> tuple[int, int, int]:
            """Answers made and their requests to the broker, between two looks (none being made)."""
            while True:
                idle = answers.making == 0
                members, made = readers.asked["members"], answers.computed["pipeline"]
                if idle and answers.making == 0:
                    return made, members, len(asked)
                tabs[0].wait_for_timeout(10)  # the browser keeps both tabs refreshing meanwhile

        made, members, requested = counts()
        started = time.monotonic()
        tabs[0].wait_for_timeout(8000)
        made, members, requested = (now - then for now, then in zip(counts(), (made, members, requested), strict=True))
        elapsed = time.monotonic() - started
        every = 2.0  # the pipeline's interval
        assert requested >= 2 * (elapsed // every) - 2  # both tabs kept asking, once per interval each
        assert 0 < made <= elapsed // every + 1  # one answer per interval for both
        assert members == made  # and one set of requests to the broker for each
        lag = [tab.locator("#groups tr[data-group=scoring] td.lag").inner_text() for tab in tabs]
        assert lag[0] == lag[1] != "?"  # the same answer in both

        reads = answers.computed["dead-letters"]
        tabs[0].type("#dlq-query", "database is locked", delay=20)  # the page asks again at each keystroke
        tabs[0].wait_for_timeout(300)
        assert answers.computed["dead-letters"] - reads <= 1  # searched in what one read of the topic found
    finally:
        running.stop()
    assert readers.closed  # closed with the console


def test_the_listings_are_sorted_and_paged_by_the_database(settings, sample_db, console, browser):
    """Clicking a heading sorts a region's whole listing on the server (not just the rows shown), again turns
    it, and the pager walks it; the scores written after the console started are in it (its running counts
    followed them)."""
    conn = sqlite3.connect(sample_db)
    with conn:
        conn.execute(
            "UPDATE videos SET virality_score = 60 + rowid % 41, virality_velocity = (rowid * 7919) % 100000 "
            "WHERE region = 'PL'"
        )
    velocities = sorted(row[0] for row in conn.execute("SELECT virality_velocity FROM videos WHERE region = 'PL'"))
    best = conn.execute("SELECT max(virality_score) FROM videos WHERE region = 'GB'").fetchone()[0]
    conn.close()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(console.url)
    listing = page.locator("table.listing[data-region=PL]")
    pager = page.locator(".pager[data-region=PL]")
    wait_for(lambda: "of 44 viral or trending" in pager.inner_text(), 30, "every PL video in its listing")

    def shown() -> list[int]:
        return [int(cell.replace(",", "")) for cell in listing.locator("tr td:nth-child(3)").all_inner_texts()]

    listing.locator("th[data-sort=views]").click()  # a new column: highest first
    wait_for(lambda: shown() == velocities[::-1][:25], 30, "the 25 highest views/h of all 44")
    assert listing.locator("th[data-sort=views]").get_attribute("aria-sort") == "descending"
    listing.locator("th[data-sort=views]").click()  # again: lowest first
    wait_for(lambda: shown() == velocities[:25], 30, "the 25 lowest views/h")
    pager.locator("button", has_text="next").click()
    wait_for(lambda: shown() == velocities[25:], 30, "the next page")
    assert "page 2 of 2" in pager.inner_text() and pager.locator("button", has_text="next").is_disabled()
    first_gb = page.locator("table.listing[data-region=GB] tr td:nth-child(1)").first.inner_text()
    assert float(first_gb) == best  # the other regions stay best first


@pytest.mark.one_clock
def test_a_videos_timeline_is_a_click_away_from_its_listing_and_its_dead_letter(settings, sample_db, console, browser):
    """Every video in the results and every dead letter links to the video's page: its events, results, dead
    letters and what the database holds now, in time order, and how each topic was read."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(console.url)
    assert "Tracing: off" in page.inner_text("body")  # no OTEL_* variable in this console's environment
    link = page.locator("table.listing[data-region=PL] a.timeline").first
    link.wait_for(timeout=30_000)
    video_id = link.inner_text()
    link.click()
    page.wait_for_url(f"**/video?id={video_id}")
    page.locator("#timeline tr[data-kind=result]", has_text="scoring: score").first.wait_for(timeout=30_000)
    assert page.locator("#timeline tr[data-kind=event]").count() >= 1
    assert page.locator("#timeline tr[data-kind=snapshot]").count() >= 1
    conn = sqlite3.connect(sample_db)
    score = conn.execute("SELECT virality_score FROM videos WHERE video_id = ?", (video_id,)).fetchone()[0]
    conn.close()
    assert f"Now in the cron database: score {score:g}" in page.inner_text(".now")
    assert page.input_value("#video-id") == video_id
    shoot(page, "timeline")

    dead_letter(settings, "J78aPJ3VyNs")
    page.goto(console.url)
    page.fill("#dlq-query", "J78aPJ3VyNs")
    letter = page.locator("[data-view=dead-letters] tr", has_text="database is locked")
    letter.wait_for(timeout=30_000)
    letter.locator("a.timeline").click()
    page.locator("#timeline tr[data-kind='dead letter']", has_text="database is locked").wait_for(timeout=30_000)
    page.fill("#video-days", "0.5")
    page.click("form button")
    page.wait_for_url("**/video?id=J78aPJ3VyNs&days=0.5")
    page.locator("p.window", has_text="since").wait_for()
