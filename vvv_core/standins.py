"""Local stand-ins for YouTube's thumbnail host and oEmbed endpoint, for the offline demo and tests.

A real HTTP/1.1 server on 127.0.0.1 with keep-alive, real image bytes and optional latency;
it records every request with its arrival time, so tests can assert on what a server saw.
"""

from __future__ import annotations

import io
import random
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from PIL import Image


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a slow server, or one that never answers in time)


Route = Callable[[str, str], Reply]  # (method, path with query) -> reply


@dataclass(frozen=True, slots=True)
class Seen:
    at: float  # time.monotonic() when the request arrived
    method: str
    path: str
    host: str = ""  # the Host header


class LocalServer:
    """``route`` answers every request; ``latency`` is added to each answer; ``host``: where it listens."""

    def __init__(self, route: Route, latency: float = 0.0, host: str = "127.0.0.1") -> None:
        self.route = route
        self.latency = latency
        self.requests: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                server.requests.append(Seen(time.monotonic(), self.command, self.path, self.headers.get("Host", "")))
                reply = server.route(self.command, self.path)
                time.sleep(server.latency + reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_HEAD = _answer

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that hangs up early (a capped download, a timeout) is not the server's error

        self._httpd = Server((host, 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def image_bytes(width: int, height: int, fmt: str = "JPEG", seed: int = 0) -> bytes:
    """A real image with some detail (noise blocks), so it compresses like a photo."""
    rng = random.Random(seed)
    small = Image.new("RGB", (max(1, width // 8), max(1, height // 8)))
    small.putdata(
        [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(small.width * small.height)]
    )
    out = io.BytesIO()
    small.resize((width, height), Image.Resampling.NEAREST).save(out, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return out.getvalue()


def _pick(video_id: str) -> int:
    return zlib.crc32(video_id.encode()) % 20


def demo_thumbnails() -> Route:
    """``/vi/<id>/<file>``: mostly valid, with placeholders, missing and damaged ones mixed in."""
    valid = [image_bytes(320, 180, seed=s) for s in range(4)]
    placeholder = image_bytes(120, 90, seed=9)
    truncated = image_bytes(480, 360, seed=5)[:-400]

    def route(_method: str, path: str) -> Reply:
        parts = urlsplit(path).path.split("/")
        if len(parts) < 3 or parts[1] != "vi":
            return Reply(404)
        pick = _pick(parts[2])
        if pick == 0:
            return Reply(404, b"not found")
        if pick in (1, 2):
            return Reply(200, placeholder, {"Content-Type": "image/jpeg"})
        if pick == 3:
            return Reply(200, truncated, {"Content-Type": "image/jpeg"})
        if pick == 4:
            return Reply(200, b"<html><body>Video unavailable</body></html>", {"Content-Type": "text/html"})
        return Reply(200, valid[pick % 4], {"Content-Type": "image/jpeg"})

    return route


def demo_oembed() -> Route:
    """``/oembed?url=...watch?v=<id>``: mostly alive, some deleted (404) or private (401/403)."""

    def route(_method: str, path: str) -> Reply:
        query = parse_qs(urlsplit(path).query)
        watch = urlsplit((query.get("url") or [""])[0])
        video_id = (parse_qs(watch.query).get("v") or [""])[0]
        pick = _pick(video_id)
        status = {0: 404, 1: 404, 2: 401, 3: 403}.get(pick, 200)
        return Reply(status, b"", {"Content-Type": "application/json"})

    return route
