"""``vvv console``: the operator's web page, live: groups and lag, dead letters to search and replay, results.

Starlette (ASGI, small and well kept, no build step) served by uvicorn. The page is one HTML
shell and one script (``static/console.js``) that fetches each view as an HTML fragment every
few seconds (``vvv_core.views``, the same views ``vvv report`` prints) and swaps it in.

Replays change state, so they are guarded: a POST with the replay token in ``X-VVV-Token``
(a form or a cross-site page cannot send that header without a CORS preflight, which is never
answered), an ``Origin`` that is this console's own, and, bound to loopback, a ``Host`` that is
loopback too (no DNS rebinding). Bound to loopback, the page hands its token to its own script;
bound beyond, the operator types it (printed at start, or ``VVV_CONSOLE_TOKEN``).
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import secrets
import socket
import threading
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from vvv_core import status, views
from vvv_core.config import Settings
from vvv_core.dlq import list_dead_letters, replay
from vvv_core.errors import Fatal, VvvError
from vvv_core.runtime.group import Groups
from vvv_core.status import MembersStarted

STATIC = files("vvv_core.console") / "static"
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


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
    settings: Settings, groups: Groups, db_path: str, host: str, token: str, members: MembersStarted | None = None
) -> Starlette:
    local = is_loopback(host)
    rates = Rates()

    def page(request: Request) -> HTMLResponse:
        shell = (STATIC / "console.html").read_text(encoding="utf-8")
        options = "".join(f"<option>{views.e(name)}</option>" for name in groups)
        shell = shell.replace("{{style}}", views.STYLE).replace("{{groups}}", options)
        shell = shell.replace("{{token}}", token if local else "").replace("{{db}}", views.e(db_path))
        return HTMLResponse(shell, headers=_guarded_headers(settings))

    def script(request: Request) -> Response:
        return Response((STATIC / "console.js").read_text(encoding="utf-8"), media_type="text/javascript")

    def pipeline(request: Request) -> HTMLResponse:
        try:
            found = status.as_json(status.group_status(settings, groups, members), None)["groups"]
        except VvvError as exc:  # the broker away: said on the page, the rest still shows
            return HTMLResponse(views.pipeline(None, str(exc)))
        return HTMLResponse(views.pipeline(found, rates=rates.update(found)))

    def summary(request: Request) -> HTMLResponse:
        return HTMLResponse(views.summary(views.read_results(db_path)))

    def results(request: Request) -> HTMLResponse:
        return HTMLResponse(views.results(views.read_results(db_path), settings.thumbnail_host_names))

    def dead_letters(request: Request) -> HTMLResponse:
        group = request.query_params.get("group", "")
        if group not in groups:
            return HTMLResponse("<p class='bad'>no such group</p>", status_code=404)
        try:
            letters = list_dead_letters(settings, group)
        except VvvError as exc:
            return HTMLResponse(f"<p class='muted'>{views.e(exc)}</p>")
        return HTMLResponse(views.dead_letters(group, letters, request.query_params.get("q", ""), actions=True))

    async def replay_letters(request: Request) -> JSONResponse:
        refused = _refusal(request, token)
        if refused is not None:
            return JSONResponse({"error": refused}, status_code=403)
        body = await request.json()
        group = body.get("group")
        if group not in groups:
            return JSONResponse({"error": "no such group"}, status_code=400)
        if "partition" in body and "offset" in body:  # this one
            one = (int(body["partition"]), int(body["offset"]))
            matching = lambda d: (d.partition, d.offset) == one  # noqa: E731
        else:  # all matching the search (all of them for an empty one)
            query = str(body.get("q", ""))
            matching = lambda d: views.matches(d, query)  # noqa: E731
        try:
            replayed = await run_in_threadpool(replay, settings, group, matching)  # blocking: off the event loop
        except VvvError as exc:
            return JSONResponse({"error": str(exc)}, status_code=502)
        return JSONResponse({"replayed": replayed})

    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)] if local else []
    return Starlette(
        routes=[
            Route("/", page),
            Route("/console.js", script),
            Route("/views/pipeline", pipeline),
            Route("/views/summary", summary),
            Route("/views/results", results),
            Route("/views/dead-letters", dead_letters),
            Route("/replay", replay_letters, methods=["POST"]),
        ],
        middleware=middleware,
    )


def _refusal(request: Request, token: str) -> str | None:
    """Why a state-changing request is refused, or None: the token, and a request from this console's own page."""
    if not hmac.compare_digest(request.headers.get("x-vvv-token", ""), token):
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
    members: MembersStarted | None = None,
) -> None:
    """Serve until interrupted (Ctrl-C); ``members``: those the caller started (see ``status.group_status``)."""
    import uvicorn

    token = settings.console_token or secrets.token_urlsafe(16)
    app = create_app(settings, groups, str(Path(db_path)), host, token, members)
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))  # bound before the address is announced: it answers once printed
    except OSError as exc:
        listening.close()
        raise Fatal(f"cannot serve the console on {host}:{port}: {exc.strerror}") from None
    listening.listen(128)
    where = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
    announce(f"console: {where}" + ("" if is_loopback(host) else f" (replay token: {token})"))
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn stops gracefully, then raises the Ctrl-C again
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listening])
