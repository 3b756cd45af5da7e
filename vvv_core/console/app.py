"""``vvv console``: the operator's web page, live: groups and lag, dead letters to search and replay, results.

Starlette (ASGI, small and well kept, no build step) served by uvicorn. The page is one HTML
shell and one script (``static/console.js``) that fetches each view as an HTML fragment
(``vvv_core.views``, the same views ``vvv report`` prints) and swaps it in. Each view is declared
once (``View``: how often it is refreshed, what a request may ask of it, how its answer is made) and
served at ``/views/<name>``; a new one is one more entry.

Light however many tabs are open: each view's answer is made at most once per its interval and
shared by every tab and client (``answers.py``); the broker is asked through one set of clients kept
open (``kafka.Readers``, closed at shutdown); the cron database through the indexes and running
counts the console creates at start (``vvv_core.scoreboard``).

Bound to loopback, the page hands its token to its own script, and a ``Host`` that is not loopback
is refused (no DNS rebinding). Bound beyond, every view needs the console's token in ``X-VVV-Token``
(the operator types it once per tab: printed at start, or ``VVV_CONSOLE_TOKEN``), unless the
operator serves read-only public views on purpose (``--public-views``, logged at start). Replays
change state, so they always need the token and an ``Origin`` that is this console's own (a form or
a cross-site page cannot send that header without a CORS preflight, which is never answered).
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from vvv_core import db, kafka, scoreboard, status, timeline, tracing, views
from vvv_core.config import Settings
from vvv_core.console.answers import Answers
from vvv_core.dlq import DeadLetter, list_dead_letters, replay_dead_letters
from vvv_core.errors import Fatal, VvvError
from vvv_core.events import VIDEO_ID
from vvv_core.registry import schema_store
from vvv_core.runtime.group import Groups
from vvv_core.status import MembersStarted

log = logging.getLogger(__name__)
STATIC = files("vvv_core.console") / "static"
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
MOST_ASKED = 64  # listings asked in one request at most (one per region)
LONGEST_SEARCH = 500  # characters in a dead-letter search


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class BadRequest(Exception):
    """What a request asks makes no sense: answered 400 with this reason."""


def nothing_asked(query: QueryParams) -> tuple[()]:
    """A view that takes no parameters (any given are ignored)."""
    return ()


@dataclass(frozen=True)
class View:
    """A part of the page, at ``/views/<name>``: the page refreshes it every ``every`` seconds. ``ask`` reads
    what a request asks of it (BadRequest when it makes no sense); ``answer`` gives the HTML fragment for that,
    and how many seconds it stays the answer (made at most once an interval: see ``create_app``'s ``kept``)."""

    every: float
    answer: Callable[[Any], Awaitable[tuple[str, float]]]
    ask: Callable[[QueryParams], Hashable] = nothing_asked


class Rates:
    """Events per second each group committed since the last look (the sum of its committed offsets)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def update(self, groups: list[dict]) -> dict[str, float]:
        now, rates = time.monotonic(), {}
        with self._lock:
            for g in groups:
                done = sum(p["committed"] or 0 for p in g["partitions"])
                if (last := self._last.get(g["group"])) is not None and now > last[0]:
                    rates[g["group"]] = max(0, done - last[1]) / (now - last[0])
                self._last[g["group"]] = (now, done)
        return rates


def create_app(
    settings: Settings,
    groups: Groups,
    db_path: str,
    host: str,
    token: str,
    public_views: bool = False,
    members: MembersStarted | None = None,
) -> Starlette:
    local = is_loopback(host)
    rates = Rates()
    answers = Answers()
    readers: list[kafka.Readers] = []  # the one set, opened at start (``lifespan``)
    schemas = schema_store(settings)

    def summary(_: object) -> str:
        with scoreboard.reading(db_path, prepare_first=True) as conn:
            found = scoreboard.read_summary(conn)
        return f"<p class='muted'>Cron database {views.e(db_path)}.</p>\n{views.summary(found)}"

    def results(orders: tuple[tuple[str, scoreboard.Order], ...]) -> str:
        with scoreboard.reading(db_path, prepare_first=True) as conn:
            found = scoreboard.read_results(conn, dict(orders))
        return views.results(found, settings.thumbnail_host_names, sortable=True)

    def pipeline(_: object) -> str:
        try:
            found = status.as_json(status.group_status(settings, groups, readers[0], schemas, members), None)["groups"]
        except (VvvError, KafkaException) as exc:  # the broker away: said on the page, the rest still shows
            return views.pipeline(None, str(exc))
        return views.pipeline(found, rates=rates.update(found))

    def letters_of(group: str) -> list[DeadLetter] | str:
        """A group's dead letters, or why they could not be read."""
        try:
            return list_dead_letters(settings, group, readers[0])
        except (VvvError, KafkaException) as exc:
            return str(exc)

    async def dead_letters(asked: tuple[str, str]) -> tuple[str, float]:
        """One read of a group's letters an interval, whatever is searched: a search is a look at what it read."""
        group, query = asked
        letters, fresh_for = await answers.get(("dead-letters", group), 3, functools.partial(letters_of, group))
        if isinstance(letters, str):
            return f"<p class='muted'>{views.e(letters)}</p>", fresh_for
        return await run_in_threadpool(views.dead_letters, group, letters, query, True), fresh_for

    def ask_dead_letters(query: QueryParams) -> tuple[str, str]:
        group, search = query.get("group", ""), query.get("q", "")
        if group not in groups:
            raise BadRequest(f"no such group: expected one of {', '.join(groups)}")
        if len(search) > LONGEST_SEARCH:
            raise BadRequest(f"a search of {len(search):,} characters: at most {LONGEST_SEARCH}")
        return group, search

    def video(asked: tuple[str, float]) -> str:
        """One video's timeline (``vvv_core.timeline``): its partition of each topic, within the window asked."""
        video_id, days = asked
        try:
            found = timeline.build(settings, readers[0], groups, video_id, db_path, days, schemas=schemas)
        except (VvvError, KafkaException) as exc:
            return f"<p class='bad'>timeline not available: {views.e(exc)}</p>"
        return views.timeline(found)

    def kept(name: str, every: float, make: Callable[[Any], str], ask: Callable[[QueryParams], Hashable]) -> View:
        """A view whose answer to each question is made at most once every ``every`` seconds, for everyone."""
        return View(every, lambda asked: answers.get((name, asked), every, functools.partial(make, asked)), ask)

    shown = {
        "summary": kept("summary", 5, summary, nothing_asked),
        "pipeline": kept("pipeline", 2, pipeline, nothing_asked),
        "dead-letters": View(3, dead_letters, ask_dead_letters),
        "results": kept("results", 10, results, ask_listings),
        "timeline": kept("timeline", 10, video, ask_video),
    }
    traces = tracing.active("vvv-console")
    traced = traces.describe() if traces else "off (set OTEL_EXPORTER_OTLP_ENDPOINT to turn it on: see the README)"

    def shell(name: str) -> HTMLResponse:
        """A page: markup only, the same for everyone (the data comes in the views)."""
        markup = (STATIC / name).read_text(encoding="utf-8")
        options = "".join(f"<option>{views.e(group)}</option>" for group in groups)
        markup = markup.replace("{{style}}", views.STYLE).replace("{{groups}}", options)
        markup = markup.replace("{{tracing}}", views.e(traced))
        for view_name, view in shown.items():
            markup = markup.replace(f"{{{{every:{view_name}}}}}", f"{view.every:g}")
        return HTMLResponse(markup.replace("{{token}}", token if local else ""), headers=_guarded_headers(settings))

    def page(request: Request) -> HTMLResponse:
        return shell("console.html")

    def video_page(request: Request) -> HTMLResponse:
        """A video's page: its timeline comes in the ``timeline`` view, asked with this page's own query."""
        return shell("video.html")

    def script(request: Request) -> Response:
        return Response((STATIC / "console.js").read_text(encoding="utf-8"), media_type="text/javascript")

    async def view(request: Request) -> Response:
        declared = shown.get(request.path_params["name"])
        if declared is None:
            return HTMLResponse("<p class='bad'>no such view</p>", status_code=404)
        if not (local or public_views or _has_token(request, token)):
            return HTMLResponse(
                "<p class='bad'>this console's views need its token (X-VVV-Token)</p>",
                status_code=401,
                headers={"WWW-Authenticate": "X-VVV-Token"},
            )
        try:
            asked = declared.ask(request.query_params)
        except BadRequest as exc:
            return HTMLResponse(f"<p class='bad'>bad request: {views.e(exc)}</p>", status_code=400)
        fragment, fresh_for = await declared.answer(asked)
        return HTMLResponse(fragment, headers={"X-VVV-Fresh-For": f"{fresh_for * 1000:.0f}"})  # ms

    async def replay_letters(request: Request) -> JSONResponse:
        refused = _refusal(request, token)
        if refused is not None:
            return JSONResponse({"error": refused}, status_code=403)
        try:
            group, matching = _replay_request(await request.body(), groups)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            replayed = await run_in_threadpool(
                replay_dead_letters, settings, group, matching
            )  # blocking: off the event loop
        except VvvError as exc:
            return JSONResponse({"error": str(exc)}, status_code=502)
        finally:
            for changed in ("dead-letters", "pipeline"):  # the next look shows the replay
                answers.forget(changed)
        return JSONResponse({"replayed": replayed})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        readers.append(kafka.Readers(settings))
        await run_in_threadpool(_prepare, db_path)  # before the first look
        try:
            yield
        finally:
            await run_in_threadpool(readers.pop().close)

    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)] if local else []
    app = Starlette(
        routes=[
            Route("/", page),
            Route("/video", video_page),
            Route("/console.js", script),
            Route("/views/{name}", view),
            Route("/replay", replay_letters, methods=["POST"]),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.answers, app.state.readers = answers, readers  # what tests and the bench look at
    return app


def ask_video(query: QueryParams) -> tuple[str, float]:
    """The video a timeline is asked for (``id``) and its window in days (``days``, a week by default)."""
    video_id, days = query.get("id", ""), query.get("days", f"{timeline.DAYS:g}")
    if not VIDEO_ID.fullmatch(video_id):
        raise BadRequest(f"id: {video_id[:80]!r} is not a video id (1-64 of A-Z a-z 0-9 _ -)")
    try:
        window = float(days)
    except ValueError:
        window = 0.0
    if not 0 < window <= timeline.MOST_DAYS:
        raise BadRequest(f"days: {days[:20]!r}: expected a number of days above 0, {timeline.MOST_DAYS:g} at most")
    return video_id, window


def ask_listings(query: QueryParams) -> tuple[tuple[str, scoreboard.Order], ...]:
    """Each region's listing as asked, ``REGION=column.direction.page`` (e.g. ``PL=views.asc.2``); a region not
    named shows its best first. The answer's key: only what differs from that, in one order."""
    if len(query) > MOST_ASKED:
        raise BadRequest(f"{len(query)} listings asked: at most {MOST_ASKED}")
    orders = []
    for region, asked in query.multi_items():
        parts = asked.split(".")
        if len(parts) != 3 or parts[0] not in scoreboard.SORTS or parts[1] not in ("asc", "desc"):
            raise BadRequest(
                f"{region}: expected column.direction.page, the column one of {', '.join(scoreboard.SORTS)}, "
                "the direction asc or desc"
            )
        pages = -(-scoreboard.LISTED // scoreboard.PAGE)
        if not parts[2].isdecimal() or not 1 <= int(parts[2]) <= pages:
            raise BadRequest(f"{region}: the page is a number from 1 to {pages}")
        order = scoreboard.Order(parts[0], parts[1] == "desc", int(parts[2]))
        if order != scoreboard.Order():
            orders.append((region, order))
    return tuple(sorted(dict(orders).items(), key=lambda item: item[0]))


def _replay_request(body: bytes, groups: Groups) -> tuple[str, Callable[[DeadLetter], bool]]:
    """The group and which of its dead letters a replay asks for: ``{"group", "partition", "offset"}`` (this
    one) or ``{"group", "q"}`` (all matching the search; all of them for an empty one)."""
    try:
        asked = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not JSON") from None
    if not isinstance(asked, dict):
        raise BadRequest("the body is not a JSON object")
    if unknown := sorted(set(asked) - {"group", "partition", "offset", "q"}):
        raise BadRequest(f"unknown fields: {', '.join(map(repr, unknown))[:200]}")
    group = asked.get("group")
    if not isinstance(group, str) or group not in groups:
        raise BadRequest(f"group: expected one of {', '.join(groups)}")
    if "partition" in asked or "offset" in asked:
        for name in ("partition", "offset"):
            value = asked.get(name)
            if type(value) is not int or value < 0:
                got = "nothing" if value is None else type(value).__name__
                raise BadRequest(f"{name}: expected a whole number from 0, got {got}")
        if "q" in asked:
            raise BadRequest("one dead letter (partition and offset) or a search (q), not both")
        one = (asked["partition"], asked["offset"])
        return group, lambda d: (d.partition, d.offset) == one
    query = asked.get("q", "")
    if not isinstance(query, str):
        raise BadRequest(f"q: expected text, got {type(query).__name__}")
    return group, lambda d: views.matches(d, query)


def _prepare(db_path: str) -> None:
    """What the views need in the database, made at start (a large database's first look would take seconds)."""
    with contextlib.closing(db.connect(db_path)) as conn:
        scoreboard.prepare(conn)


def _has_token(request: Request, token: str) -> bool:
    return hmac.compare_digest(request.headers.get("x-vvv-token", "").encode(), token.encode())


def _refusal(request: Request, token: str) -> str | None:
    """Why a state-changing request is refused, or None: the token, and a request from this console's own page."""
    if not _has_token(request, token):
        return "a replay needs the console's token (X-VVV-Token)"
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host')}":
        return f"cross-site request from {origin} refused"
    if request.headers.get("sec-fetch-site") not in (None, "same-origin"):
        return "cross-site request refused"
    return None


def _guarded_headers(settings: Settings) -> dict[str, str]:
    """Scripts from this console only; images from it and the allow-listed thumbnail hosts; never framed."""
    images = " ".join(f"http://{h}:* https://{h}:*" for h in settings.thumbnail_host_names)
    return {
        "Content-Security-Policy": f"default-src 'self'; img-src 'self' {images}; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }


def serve(
    settings: Settings,
    groups: Groups,
    db_path: str,
    host: str,
    port: int,
    announce: Callable[[str], None] = print,
    public_views: bool = False,
    members: MembersStarted | None = None,
) -> None:
    """Serve until interrupted (Ctrl-C); ``members``: those the caller started (see ``status.group_status``)."""
    import uvicorn

    token = settings.console_token or secrets.token_urlsafe(16)
    app = create_app(settings, groups, str(Path(db_path)), host, token, public_views, members)
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))  # bound before the address is announced: it answers once printed
    except OSError as exc:
        listening.close()
        raise Fatal(f"cannot serve the console on {host}:{port}: {exc.strerror}") from None
    listening.listen(128)
    where = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
    beyond = not is_loopback(host)
    if public_views and beyond:
        log.warning("--public-views: anyone who reaches %s reads every view without the token (replays need it)", where)
    announce(f"console: {where}" + (f" (token: {token})" if beyond else ""))
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn stops gracefully, then raises the Ctrl-C again
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listening])
