"""Prometheus metrics and health endpoints of one consumer process (``--metrics-port``).

``/metrics`` in Prometheus' text format; ``/healthz`` answers 200 while the poll loop turns
(liveness probe); ``/readyz`` answers 200 once the member has joined its group and is
processing (readiness probe).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from vvv_core.errors import Fatal
from vvv_core.probes import RESTORE_LEFT, RESTORING, RETRIES_WAITING, SLOTS_WAITING
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
        self.restoring = Gauge(RESTORING, "Owned partitions whose state store is being restored", **labels)
        self.restore_left = Gauge(RESTORE_LEFT, "Changelog records still to read by the restores under way", **labels)
        self.lag = Gauge(
            "vvv_lag",
            "Messages behind the log end, from this member's position and the last fetch's high watermark",
            labelnames=["group", "partition"],
            registry=self.registry,
        )
        self.committed_lag = Gauge(
            "vvv_committed_lag",
            "Messages behind the log end from the group's committed offset: the lag the broker sees",
            labelnames=["group", "partition"],
            registry=self.registry,
        )
        self.client_stats: dict[str, dict] = {}  # librdkafka's last statistics, by client role
        self.registry.register(_ClientStatistics(self))
        self.group = group
        self.last_loop = time.monotonic()
        self.ready = False

    def watch(self, executor: Executor) -> None:
        """The executor's own running totals, read when scraped: nothing to copy across on every turn."""
        group = self.group

        class Totals(Collector):
            def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
                retrying, slots = executor.waiting()
                for kind, name, what, value in (
                    (
                        CounterMetricFamily,
                        "vvv_retries",
                        "Attempts scheduled again after a transient failure",
                        executor.retries,
                    ),
                    (
                        CounterMetricFamily,
                        "vvv_rate_limit_wait_seconds",
                        "Time workers waited for a rate-limit slot",
                        executor.rate_limit_waited,
                    ),
                    (GaugeMetricFamily, RETRIES_WAITING, "Events waiting for their next attempt", retrying),
                    (GaugeMetricFamily, SLOTS_WAITING, "Events waiting for a rate-limit slot", slots),
                ):
                    family = kind(name, what, labels=["group"])
                    family.add_metric([group], value)
                    yield family

        self.registry.register(Totals())

    def forget_partitions(self, partitions: list[int]) -> None:
        """Series of partitions this member gave up: another member reports them now."""
        for partition in partitions:
            for gauge in (self.lag, self.committed_lag):
                with contextlib.suppress(KeyError):
                    gauge.remove(self.group, str(partition))

    def statistics_callback(self, role: str) -> Callable[[str], None]:
        """librdkafka's ``stats_cb`` for one client: its JSON kept as it comes (``statistics.interval.ms``)."""

        def keep(data: str) -> None:
            self.client_stats[role] = json.loads(data)

        return keep

    def count_outcomes(self, outcomes: Mapping[str, int]) -> None:
        """One batch's outcomes by name ("dead_letter" for dead letters): one increment per name."""
        for outcome, n in outcomes.items():
            self.results.labels(self.group, outcome).inc(n)
        if "dead_letter" in outcomes:
            self.dead_lettered.labels(self.group).inc(outcomes["dead_letter"])


CLIENT_TOTALS = {  # librdkafka's statistics exported, by its name: (ours, help)
    "msg_cnt": ("vvv_librdkafka_queued_messages", "Messages in the client's queues (producer: not yet acknowledged)"),
    "replyq": ("vvv_librdkafka_reply_queue", "Operations waiting to be served by poll"),
    "txmsgs": ("vvv_librdkafka_sent_messages", "Messages sent to brokers, ever"),
    "rxmsgs": ("vvv_librdkafka_received_messages", "Messages received from brokers, ever"),
}


class _ClientStatistics(Collector):
    """librdkafka's own figures, read from its last statistics when scraped (none until the first arrives)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = dict(self.metrics.client_stats)
        for key, (name, what) in CLIENT_TOTALS.items():
            family = GaugeMetricFamily(name, what, labels=["group", "client"])
            for role, figures in stats.items():
                family.add_metric([self.metrics.group, role], figures.get(key, 0))
            yield family
        rtt = GaugeMetricFamily(
            "vvv_librdkafka_broker_rtt_seconds",
            "Average round trip to each broker",
            labels=["group", "client", "broker"],
        )
        for role, figures in stats.items():
            for broker in figures.get("brokers", {}).values():
                if broker.get("nodeid", -1) >= 0:
                    rtt.add_metric([self.metrics.group, role, broker["nodename"]], broker["rtt"]["avg"] / 1e6)
        yield rtt


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
