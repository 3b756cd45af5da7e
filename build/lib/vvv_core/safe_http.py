"""Fetching URLs that come from events, which are untrusted.

Only http(s), only allow-listed hosts, redirects followed by hand and checked at every hop,
never to a private, loopback or link-local address unless the operator named that host or
address (the built-in YouTube hosts never qualify, so a poisoned DNS answer is refused).
Bodies are streamed and cut at a cap; the whole exchange has one deadline.

The address check runs just before requests resolves the name again to connect; a DNS
answer that changes in between is not caught (a pinned-address adapter would close that).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

MAX_REDIRECTS = 5
CHUNK = 64 * 1024

Resolver = Callable[[str], list[str]]


class Refused(Exception):
    """The URL may not be fetched; nothing was requested."""


class Transient(Exception):
    """A failure another attempt may cure (timeout, connection error)."""


def resolve(host: str) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)})


def _is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified


class UrlPolicy:
    def __init__(
        self, allowed_hosts: Iterable[str], operator_hosts: Iterable[str] = (), resolver: Resolver = resolve
    ) -> None:
        """``operator_hosts``: the allow-list entries the operator named, which may be internal."""
        self.allowed = frozenset(h.lower() for h in allowed_hosts)
        self.internal_ok = frozenset(h.lower() for h in operator_hosts) & self.allowed
        self.resolver = resolver

    def check(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise Refused(f"scheme {parts.scheme or 'none'!r} is not http or https")
        host = (parts.hostname or "").lower()
        if not host:
            raise Refused("no host in URL")
        if host not in self.allowed:
            raise Refused(f"host {host} is not in the allow-list")
        if host in self.internal_ok:
            return
        try:
            addresses = self.resolver(host)
        except OSError as exc:
            raise Transient(f"cannot resolve {host}: {exc}") from None
        internal = [a for a in addresses if _is_internal(a)]
        if internal:
            raise Refused(f"{host} resolves to internal address {internal[0]}")


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    body: bytes
    over_limit: int | None = None  # the cap, when the body was larger


class ThreadSessions:
    """One pooled ``requests.Session`` per worker thread: keep-alive without sharing a session."""

    def __init__(self, pool_size: int = 4, trust_env: bool = False, max_redirects: int = MAX_REDIRECTS) -> None:
        self.pool_size = pool_size
        self.trust_env = trust_env
        self.max_redirects = max_redirects
        self._local = threading.local()

    def __call__(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = self.trust_env
            session.max_redirects = self.max_redirects
            adapter = HTTPAdapter(pool_connections=self.pool_size, pool_maxsize=self.pool_size, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        return session


class Fetcher:
    """GET with the policy applied at every hop; one pooled session per worker thread."""

    def __init__(self, policy: UrlPolicy, *, timeout: float, max_bytes: int) -> None:
        self.policy = policy
        self.timeout = timeout
        self.max_bytes = max_bytes
        # no proxies or .netrc from the environment for untrusted URLs
        self._session = ThreadSessions(trust_env=False)

    def get(self, url: str) -> Fetched:
        deadline = time.monotonic() + self.timeout
        for _hop in range(MAX_REDIRECTS + 1):
            self.policy.check(url)
            try:
                response = self._session().get(
                    url, stream=True, allow_redirects=False, timeout=max(0.01, deadline - time.monotonic())
                )
            except requests.Timeout:
                raise Transient(f"timeout after {self.timeout:g} s") from None
            except requests.RequestException as exc:
                raise Transient(f"connection error: {type(exc).__name__}") from None
            with response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                return self._read(response, deadline)
        raise Refused(f"more than {MAX_REDIRECTS} redirects")

    def _read(self, response: requests.Response, deadline: float) -> Fetched:
        if response.status_code != 200:
            return Fetched(response.status_code, b"")  # the status says it all; don't download error pages
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return Fetched(response.status_code, b"", over_limit=self.max_bytes)
        body = bytearray()
        try:
            for chunk in response.iter_content(CHUNK):
                body += chunk
                if len(body) > self.max_bytes:
                    return Fetched(response.status_code, b"", over_limit=self.max_bytes)
                if time.monotonic() > deadline:
                    raise Transient(f"timeout after {self.timeout:g} s (body still arriving)")
        except requests.RequestException as exc:
            if isinstance(exc, requests.exceptions.ConnectionError) and "timed out" in str(exc).lower():
                raise Transient(f"timeout after {self.timeout:g} s") from None
            raise Transient(f"connection error while reading: {type(exc).__name__}") from None
        return Fetched(response.status_code, bytes(body))
