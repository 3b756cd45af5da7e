"""Prometheus metrics and health endpoints of one consumer process (``--metrics-port``).

``/metrics`` in Prometheus' text format; ``/healthz`` answers 200 while the poll loop turns
(liveness probe); ``/readyz`` answers 200 once the member has joined its group and is
processing (readiness probe).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from vvv_core.errors import Fatal
from vvv_core.runtime.executors import Executor

STALE_LOOP = 30.0  # seconds without a loop turn after which /healthz fails


class Metrics:
    def __init__(self, group: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"labelnames": ["group"], "registry": self.registry}
        self.consumed = Counter("vvv_events_consumed", "Messages taken from the input topic", **labels)
        self.results = Counter(
            "vvv_results",
            "Events finished, by outcome (a label or status, or dead_letter)",
            labelnames=["group", "outcome"],
            registry=self.registry,
        )
        self.dead_lettered = Counter("vvv_dead_lettered", "Events sent to the dead-letter topic", **labels)
        self.batch_seconds = Histogram(
            "vvv_batch_seconds", "Time to store and publish one checkpoint's outcomes", **labels
        )
        self.commit_seconds = Histogram("vvv_commit_seconds", "Time to commit offsets", **labels)
        self.partitions = Gauge("vvv_partitions_owned", "Input partitions this member owns", **labels)
        self.lag = Gauge(
            "vvv_lag",
            "Messages behind the log end, from the last fetch's high watermark",
            labelnames=["group", "partition"],
            registry=self.registry,
        )
        self.group = group
        self.last_loop = time.monotonic()
        self.ready = False

    def watch(self, executor: Executor) -> None:
        """The executor's own running totals, read when scraped: nothing to copy across on every turn."""
        group = self.group

        class Totals(Collector):
            def collect(self) -> Iterator[CounterMetricFamily]:
                for name, what, value in (
                    ("vvv_retries", "Attempts scheduled again after a transient failure", executor.retries),
                    (
                        "vvv_rate_limit_wait_seconds",
                        "Time workers waited for a rate-limit slot",
                        executor.rate_limit_waited,
                    ),
                ):
                    family = CounterMetricFamily(name, what, labels=["group"])
                    family.add_metric([group], value)
                    yield family

        self.registry.register(Totals())

    def forget_partitions(self, partitions: list[int]) -> None:
        """Series of partitions this member gave up: another member reports them now."""
        for partition in partitions:
            with contextlib.suppress(KeyError):
                self.lag.remove(self.group, str(partition))

    def count_outcomes(self, outcomes: Mapping[str, int]) -> None:
        """One batch's outcomes by name ("dead_letter" for dead letters): one increment per name."""
        for outcome, n in outcomes.items():
            self.results.labels(self.group, outcome).inc(n)
        if "dead_letter" in outcomes:
            self.dead_lettered.labels(self.group).inc(outcomes["dead_letter"])


def serve(metrics: Metrics, port: int, host: str = "0.0.0.0") -> Callable[[], None]:
    """Serve the endpoints in a daemon thread; return a function that stops the server."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                alive = time.monotonic() - metrics.last_loop < STALE_LOOP
                self._send(200 if alive else 503, b"ok\n" if alive else b"poll loop stalled\n")
            elif self.path == "/readyz":
                self._send(200 if metrics.ready else 503, b"ready\n" if metrics.ready else b"not in a group yet\n")
            else:
                self._send(404, b"not found\n")

        def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise Fatal(f"cannot serve metrics on port {port} (--metrics-port, VVV_METRICS_PORT): {exc}") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop
