"""Fetching URLs that come from events, which are untrusted.

- **One parse.** A URL is parsed once, strictly, and the request is built from that parse:
  the host judged is the host connected to and named in ``Host``, the path parsed is the path
  sent. What two parsers could read differently is refused before anything happens:
  backslashes, userinfo, non-ASCII (lookalike slashes and at-signs), control characters,
  ports outside 1-65535, unbracketed or broken IPv6.
- **Allowed: a host, on a port.** A host of the allow-list is allowed on its scheme's default
  port, or on the port named with it (``host:port``), at every hop of a redirect.
- **Pinned.** The name is resolved once; the address checked is the address connected to
  (TLS still verifies the certificate for the name). Internal addresses (private, loopback,
  link-local, CGNAT's shared space, and IPv6 forms that carry an internal IPv4: mapped, 6to4,
  NAT64, Teredo) are refused unless the operator named that host or address.
- **One deadline.** Connect, request, headers and body share one wall-clock deadline, kept by a
  watchdog thread that shuts the socket down when it passes: a server sending a byte a
  second holds a check no longer than the deadline. ``close`` cuts every exchange at once.
- **Bounded memory.** Bodies are streamed and cut at a cap; each reserves its room from a
  shared ``MemoryBudget`` before it is read.

Hand-written on ``http.client`` rather than requests/urllib3: their timeouts are per socket
operation (a trickle never trips them) and they resolve the name again to connect.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import ipaddress
import itertools
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from vvv_core.config import host_and_port
from vvv_core.errors import InvalidInput, Transient
from vvv_core.memory import BudgetBusy, MemoryBudget

MAX_REDIRECTS = 5
MAX_URL_LENGTH = 2048
CHUNK = 64 * 1024
URL_CHARACTERS = re.compile(r"[!-~]+")  # printable ASCII, no space
HOST_NAME = re.compile(r"(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)*")
DEFAULT_PORTS = {"http": 80, "https": 443}
CGNAT = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT's shared space: inside someone's network
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the well-known prefix: the IPv4 address in the last 32 bits
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # local-use (RFC 8215)

Resolver = Callable[[str, int], list[str]]


class Refused(InvalidInput):
    """The URL may not be fetched; nothing was requested."""


def resolve(host: str, port: int) -> list[str]:
    return list(dict.fromkeys(info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))


def is_internal(address: str) -> bool:
    """Whether ``address`` reaches inside: an internal IPv4 or IPv6 address, or an IPv6 form that carries an
    internal IPv4 a gateway would deliver to (mapped ``::ffff:``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``,
    Teredo's client ``2001::/32``). NAT64's local-use ``64:ff9b:1::/48`` translates to whatever its site
    chose, so all of it is internal."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # these two are the IPv4 address inside, nothing else
            return is_internal(str(ip.ipv4_mapped))
        if ip in NAT64:
            return is_internal(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
        if ip in NAT64_LOCAL:
            return True
        inside = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inside is not None and is_internal(str(inside)):
            return True
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or ip in CGNAT
    )


@dataclass(frozen=True, slots=True)
class Target:
    """One parsed URL: everything the request is built from."""

    scheme: str
    host: str  # lower-case name, or an IP address without brackets
    port: int
    path: str  # path and query, as sent on the request line

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def parse(url: str) -> Target:
    """The one parse of a URL from an event; Refused for anything ambiguous or malformed."""
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        raise Refused("not a URL of at most 2048 characters")
    if not URL_CHARACTERS.fullmatch(url) or "\\" in url:
        raise Refused("URL has characters outside printable ASCII, spaces or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"malformed URL: {str(exc)[:200]}") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise Refused(f"scheme {parts.scheme or 'none'!r} is not http or https")
    if "@" in parts.netloc:
        raise Refused("URL has userinfo (user@host)")
    host = (parts.hostname or "").lower()
    if not host:
        raise Refused("no host in URL")
    bracketed = parts.netloc.startswith("[")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if bracketed or not HOST_NAME.fullmatch(host) or host.replace(".", "").isdigit():
            raise Refused(f"malformed host {host[:100]!r}") from None
    else:  # not inside the try: Refused is a ValueError too, and was said as "malformed host"
        if isinstance(ip, ipaddress.IPv6Address) != bracketed or "%" in host:
            raise Refused(f"malformed IP address {host!r}")
    if port == 0:
        raise Refused("port 0")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not path.startswith("/"):
        raise Refused("malformed path")
    return Target(parts.scheme, host, port or DEFAULT_PORTS[parts.scheme], path)


class UrlPolicy:
    def __init__(
        self, allowed_hosts: Iterable[str], operator_hosts: Iterable[str] = (), resolver: Resolver = resolve
    ) -> None:
        """``allowed_hosts``: entries ``host`` (its scheme's default port) or ``host:port`` (that port);
        ``operator_hosts``: the entries the operator named, whose hosts may be internal."""
        self.allowed: dict[str, set[int | None]] = {}
        for entry in allowed_hosts:
            host, port = host_and_port(entry.lower())
            self.allowed.setdefault(host, set()).add(port)
        self.internal_ok = frozenset(host_and_port(e.lower())[0] for e in operator_hosts) & self.allowed.keys()
        self.resolver = resolver

    def check(self, url: str) -> tuple[Target, str]:
        """The parsed URL and the one address to connect to; Refused or Transient otherwise."""
        target = parse(url)
        ports = self.allowed.get(target.host)
        if ports is None:
            raise Refused(f"host {target.host} is not in the allow-list")
        if target.port not in ports and not (None in ports and target.port == DEFAULT_PORTS[target.scheme]):
            raise Refused(f"port {target.port} of {target.host} is not allowed (its scheme's default, or host:port)")
        try:
            addresses = self.resolver(target.host, target.port)
        except (OSError, UnicodeError) as exc:
            raise Transient(f"cannot resolve {target.host}: {exc}") from None
        if not addresses:
            raise Transient(f"cannot resolve {target.host}: no address")
        if target.host not in self.internal_ok:
            internal = [a for a in addresses if is_internal(a)]
            if internal:
                raise Refused(f"{target.host} resolves to internal address {internal[0]}")
        return target, addresses[0]


class Watchdog:
    """One thread for every exchange in the process: shuts a socket down when its deadline passes."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._armed: dict[int, socket.socket] = {}
        self._tickets = itertools.count()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def guard(self, sock: socket.socket, deadline: float) -> Iterator[None]:
        ticket = next(self._tickets)
        with self._cond:
            self._armed[ticket] = sock
            heapq.heappush(self._heap, (deadline, ticket))
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="http-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._armed.pop(ticket, None)

    def cut_all(self) -> None:
        """Shut every guarded socket down now (a stop)."""
        with self._cond:
            for sock in self._armed.values():
                _shutdown(sock)

    def _watch(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)  # finished in time
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, ticket = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                _shutdown(self._armed.pop(ticket))


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # a blocked recv or send returns at once


WATCHDOG = Watchdog()


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    body: bytes
    over_limit: int | None = None  # the cap, when the body was larger
    reservation: int = 0  # bytes of the memory budget this body holds; release when done


class Fetcher:
    """GET (or HEAD) with the policy applied at every hop, one deadline, and bodies within the budget."""

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        timeout: float,
        max_bytes: int,
        budget: MemoryBudget | None = None,
        tls: ssl.SSLContext | None = None,
        watchdog: Watchdog = WATCHDOG,
    ) -> None:
        self.policy = policy
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.budget = budget or MemoryBudget(max_bytes + 1)
        self.tls = tls or ssl.create_default_context()
        self.watchdog = watchdog
        self._closed = False

    def close(self) -> None:
        """Cut every exchange under way and refuse new ones: a stop waits for no server."""
        self._closed = True
        self.watchdog.cut_all()

    def get(self, url: str, method: str = "GET") -> Fetched:
        """The answer to ``url`` after at most ``MAX_REDIRECTS`` redirects; a 200 body is held in the budget."""
        deadline = time.monotonic() + self.timeout
        for _hop in range(MAX_REDIRECTS + 1):
            target, address = self.policy.check(url)
            location, fetched = self._exchange(method, target, address, deadline)
            if location is None:
                return fetched
            try:
                url = urljoin(url, location)
            except ValueError:
                raise Refused(f"malformed redirect location {location[:100]!r}") from None
        raise Refused(f"more than {MAX_REDIRECTS} redirects")

    def _connect(self, target: Target, address: str, deadline: float) -> socket.socket:
        sock = socket.create_connection((address, target.port), timeout=max(0.01, deadline - time.monotonic()))
        if target.scheme == "https":
            try:
                sock = self.tls.wrap_socket(sock, server_hostname=target.host, do_handshake_on_connect=False)
            except BaseException:
                sock.close()
                raise
        return sock

    def _exchange(self, method: str, target: Target, address: str, deadline: float) -> tuple[str | None, Fetched]:
        if self._closed:
            raise Transient("stopping")
        try:
            sock = self._connect(target, address, deadline)
        except TimeoutError:
            raise Transient(f"timeout after {self.timeout:g} s (connecting)") from None
        except OSError as exc:
            raise Transient(f"connection error: {type(exc).__name__}") from None
        connection = http.client.HTTPConnection(target.host, target.port)
        connection.sock = sock
        try:
            with self.watchdog.guard(sock, deadline):
                if isinstance(sock, ssl.SSLSocket):
                    sock.do_handshake()
                connection.putrequest(method, target.path, skip_host=True, skip_accept_encoding=True)
                for name, value in (("Host", target.host_header), ("Accept-Encoding", "identity")):
                    connection.putheader(name, value)
                connection.endheaders()
                response = connection.getresponse()
                if response.status in (301, 302, 303, 307, 308) and response.getheader("location"):
                    return response.getheader("location"), Fetched(response.status, b"")
                return None, self._read(method, response, deadline)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if self._closed:
                raise Transient("stopping") from None
            if time.monotonic() >= deadline or isinstance(exc, TimeoutError):
                raise Transient(f"timeout after {self.timeout:g} s") from None
            if isinstance(exc, ssl.SSLError):
                raise Transient(f"TLS error: {exc.reason or exc}") from None
            raise Transient(f"connection error: {type(exc).__name__}") from None
        finally:
            connection.close()

    def _read(self, method: str, response: http.client.HTTPResponse, deadline: float) -> Fetched:
        if response.status != 200 or method == "HEAD":
            return Fetched(response.status, b"")  # the status says it all; don't download error pages
        declared = response.getheader("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return Fetched(response.status, b"", over_limit=self.max_bytes)
        # A body's whole room is reserved before its first byte, never piecemeal: a check never holds
        # part of the budget while it waits for more, so checks cannot wait on each other.
        reserved = int(declared) if declared.isdigit() else self.max_bytes + 1
        try:
            self.budget.reserve(reserved, deadline)
        except BudgetBusy:
            raise Transient("memory budget for bodies busy until the deadline") from None
        try:
            body = self._read_body(response, reserved if declared.isdigit() else None, deadline)
        except BaseException:
            self.budget.release(reserved)
            raise
        if body is None:
            self.budget.release(reserved)
            return Fetched(response.status, b"", over_limit=self.max_bytes)
        self.budget.release(reserved - len(body))  # what a body of unknown length did not use
        return Fetched(response.status, body, reservation=len(body))

    def _read_body(self, response: http.client.HTTPResponse, length: int | None, deadline: float) -> bytes | None:
        """The whole body as one ``bytes`` (decoders read it without another copy); None past the cap."""
        if length is not None:
            body = response.read(length)  # one allocation of the declared size
            if len(body) < length:  # the socket ended (the deadline, or the server) before the declared length
                raise http.client.IncompleteRead(body[-16:], length - len(body))
            return body
        chunks, size = [], 0
        while chunk := response.read1(CHUNK):
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_bytes:
                return None
        if self._closed or time.monotonic() >= deadline:
            raise TimeoutError  # a body without a length ends when it is cut, too
        return b"".join(chunks)
