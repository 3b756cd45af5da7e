"""The console in a real browser: Playwright driving Debian's headless chromium (never a downloaded one)
against `vvv console` on this run's broker and a real cron database.

``CONSOLE_SCREENSHOTS=folder`` saves the main pages as PNGs there (the README's pictures).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
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
    def __init__(self, settings, db_path: str, host: str = "127.0.0.1", **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [*VVV, "console", "--db", db_path, "--host", host, "--port", str(self.port)],
            stdout=subprocess.PIPE,
            text=True,
            env=cli_env(settings, **env),
        )
        self.announced = self.process.stdout.readline()
        assert "console: http://" in self.announced, self.announced

    def post(self, path: str, body: dict, **headers: str) -> tuple[int, dict]:
        request = urllib.request.Request(
            self.url + path,
            json.dumps(body).encode(),
            {"Content-Type": "application/json", **headers},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


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
    page = urllib.request.urlopen(console.url, timeout=10).read().decode()
    token = page.split('name="vvv-token" content="')[1].split('"')[0]
    assert len(token) >= 16  # bound to loopback: the console's own page hands it to its script

    assert console.post("/replay", {"group": "scoring"})[0] == 403  # no token
    assert console.post("/replay", {"group": "scoring"}, **{"X-VVV-Token": "guess"})[0] == 403
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


def test_bound_beyond_loopback_the_page_holds_no_token(settings, sample_db):
    dead_letter(settings, "J78aPJ3VyNs")
    running = Console(settings, sample_db, host="0.0.0.0", VVV_CONSOLE_TOKEN="operators-only-token")
    try:
        assert "(replay token: operators-only-token)" in running.announced
        page = urllib.request.urlopen(running.url, timeout=10).read().decode()
        assert 'name="vvv-token" content=""' in page
        assert running.post("/replay", {"group": "scoring"}, **{"X-VVV-Token": "wrong"})[0] == 403
        replayed = running.post("/replay", {"group": "scoring"}, **{"X-VVV-Token": "operators-only-token"})
        assert replayed == (200, {"replayed": 1})
    finally:
        running.stop()
