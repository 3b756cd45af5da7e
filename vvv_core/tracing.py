"""OpenTelemetry traces across the pipeline: optional (the ``otel`` extra), and off unless an exporter is named.

**On** when the ``otel`` extra is installed and the standard variables name where spans go:
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), or ``OTEL_TRACES_EXPORTER``
(``otlp``, ``console``; ``none`` is off), unless ``OTEL_SDK_DISABLED=true``. Off, nothing of OpenTelemetry
is imported, no header is written and nothing is paid: every caller holds None. ``OTEL_SERVICE_NAME`` names
the process (else ``vvv-<command>``, ``vvv-hook``); the exporter reads its own ``OTEL_EXPORTER_OTLP_*``.

**One trace per event.** The hook decides, per event, whether its trace is recorded (``OTEL_TRACES_SAMPLER``:
``always_on``, ``always_off``, ``traceidratio`` with ``OTEL_TRACES_SAMPLER_ARG``, or their ``parentbased_``
forms, which are the same where a trace begins), and puts W3C ``traceparent`` on every event's message, its
flags saying so. Everything downstream follows that decision (as a parent-based sampler does) and makes
spans only for sampled events: a member reads the flag from the header's bytes, so an event not sampled
costs a consumer a look at one header and nothing else. The decision is made here rather than by the SDK's
sampler: starting an SDK span costs 5 µs whether or not it is recorded (50 ms of a 10,000-event hook call);
the same rule on a trace id made from one OS call's random bytes costs a fraction of that (``bench/``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vvv_core.config import ConfigError

if TYPE_CHECKING:  # the extra's: imported only once tracing is on
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span

log = logging.getLogger(__name__)
TRACEPARENT = "traceparent"
Headers = list[tuple[str, bytes]]
ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
SAMPLERS = {  # OTEL_TRACES_SAMPLER -> the share of events sampled (None: OTEL_TRACES_SAMPLER_ARG's)
    "always_on": 1.0,
    "always_off": 0.0,
    "traceidratio": None,
    "parentbased_always_on": 1.0,
    "parentbased_always_off": 0.0,
    "parentbased_traceidratio": None,
}
SAMPLED_FLAGS = frozenset(f"{flags:02x}".encode() for flags in range(1, 256, 2))  # the low bit: sampled
_UNSET: Any = object()
_active: Tracing | None = _UNSET


def wanted(env: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces (see the module's docstring)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    return exporters not in ("", "none") or any(env.get(name) for name in ENDPOINTS)


def sample_rate(env: Mapping[str, str]) -> float:
    """The share of events whose trace is recorded, from the standard sampler variables (ConfigError if unusable)."""
    name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
    if name not in SAMPLERS:
        raise ConfigError(f"OTEL_TRACES_SAMPLER={name!r}: expected one of {', '.join(SAMPLERS)}")
    rate = SAMPLERS[name]
    if rate is not None:
        return rate
    raw = env.get("OTEL_TRACES_SAMPLER_ARG", "1.0")
    try:
        rate = float(raw)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"OTEL_TRACES_SAMPLER_ARG={raw!r}: expected a share from 0 to 1 (e.g. 0.01)")
    return rate


def active(service: str = "vvv") -> Tracing | None:
    """This process's tracing, set up once from the environment (``service``: its name unless
    ``OTEL_SERVICE_NAME`` says); None when off. Never raises: an unusable setting is logged, and traces stay off."""
    global _active
    if _active is _UNSET:
        _active = None
        if wanted(os.environ):
            try:
                _active = _from_env(os.environ, service)
            except ConfigError as exc:
                log.error("tracing off: %s", exc)
            except ImportError as exc:
                log.warning(
                    "tracing off: OTEL_* variables ask for traces, but the otel extra is not installed (%s): "
                    "pip install 'viralvidvault-streams[otel]'",
                    exc.name,
                )
    return _active


def install(provider: TracerProvider, rate: float = 1.0, where: str = "an exporter of the caller's") -> Tracing:
    """Trace through ``provider`` from now on, sampling ``rate`` of the events (tests: an in-memory exporter)."""
    global _active
    _active = Tracing(provider, rate, where)
    return _active


def uninstall() -> None:
    """Traces off, and read from the environment again at the next ``active``."""
    global _active
    _active = _UNSET


def _from_env(env: Mapping[str, str], service: str) -> Tracing:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

    rate = sample_rate(env)
    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    # The hook decides; the SDK's sampler only follows it (a root span is made for a sampled event alone).
    provider = TracerProvider(
        sampler=ParentBased(ALWAYS_ON), resource=Resource.create({} if named else {"service.name": service})
    )
    exporters = _exporters(env)
    for _name, exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return install(provider, rate, ", ".join(name for name, _exporter in exporters))


def _exporters(env: Mapping[str, str]) -> list[tuple[str, Any]]:
    """Each exporter named, with where it sends spans."""
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(",") if n.strip()]
    exporters = []
    for name in names:
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(("the console (stdout)", ConsoleSpanExporter()))
        elif name == "otlp":
            protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            if protocol == "grpc":  # not in the extra (grpcio is large): installed by whoever wants it
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            elif protocol in (None, "", "http/protobuf"):
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            else:
                raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: expected http/protobuf or grpc")
            endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            exporters.append((f"OTLP to {endpoint or 'the default endpoint'}", OTLPSpanExporter()))
        elif name != "none":
            raise ConfigError(f"OTEL_TRACES_EXPORTER={name!r}: expected otlp, console or none")
    return exporters


def is_sampled(value: bytes | None) -> bool:
    """Whether a ``traceparent`` header's flags say its trace is recorded, from its bytes alone (version 00:
    ``00-<trace id>-<span id>-<flags>``; anything else is not sampled, never an error)."""
    return value is not None and len(value) == 55 and value[52:53] == b"-" and value[53:] in SAMPLED_FLAGS


def traceparent(headers: Sequence[tuple[str, bytes | None]] | None) -> bytes | None:
    """A message's ``traceparent`` header, if it has one."""
    for key, value in headers or ():
        if key == TRACEPARENT:
            return value
    return None


class Tracing:
    """Spans of this process: the hook's, a member's, a replay's."""

    def __init__(self, provider: TracerProvider, rate: float, where: str) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider, self.rate, self.where = provider, rate, where
        self.tracer = provider.get_tracer("vvv_core")
        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()
        # A trace is sampled when its id's low 64 bits are below rate * 2**64, as TraceIdRatioBased has it;
        # compared as 16 lowercase hex digits ("g" sorts after every one of them: all sampled).
        bound = round(rate * 2**64)
        self._bound = "g" * 16 if bound >= 2**64 else f"{bound:016x}"

    def describe(self) -> str:
        """One line for operators: where spans go and how many events are sampled."""
        return f"on: spans to {self.where}, {self.rate:.4g} of events sampled"

    # -- where a trace begins: the hook --------------------------------------------------------------

    def publishing(self, records: dict[str, list], topic: str) -> tuple[list[Headers], list[Span]]:
        """Each record's message headers (its ``traceparent``), and the spans of those sampled: one per event,
        from its creation (``created_at``) until the caller ends it. ``records`` are columns, a list per field."""
        count = len(records["video_id"])
        pool = os.urandom(24 * count).hex()  # trace and span ids of the events not sampled: one OS call
        bound, headers, spans = self._bound, [], []
        for at in range(0, 48 * count, 48):  # the common case first: not sampled, a header and nothing else
            trace_id = pool[at : at + 32]
            if trace_id[16:] >= bound:
                headers.append([(TRACEPARENT, f"00-{trace_id}-{pool[at + 32 : at + 48]}-00".encode())])
                continue
            i = at // 48
            span = self.tracer.start_span(
                f"publish {topic}",
                kind=self._trace.SpanKind.PRODUCER,
                start_time=records["created_at"][i] * 1_000_000,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "send",
                    "messaging.destination.name": topic,
                    "vvv.video_id": records["video_id"][i],
                    "vvv.event_id": records["event_id"][i],
                },
            )
            spans.append(span)
            headers.append([(TRACEPARENT, self.header(span))])
        return headers, spans

    # -- everywhere after it -------------------------------------------------------------------------

    def parent(self, headers: Sequence[tuple[str, bytes | None]] | None) -> Context | None:
        """The context to continue for a message whose ``traceparent`` says sampled; None otherwise."""
        value = traceparent(headers)
        if not is_sampled(value):
            return None
        context = self._propagator.extract({TRACEPARENT: value.decode("ascii", errors="replace")})
        return context if self._trace.get_current_span(context).get_span_context().is_valid else None

    def start(self, name: str, parent: Context, attributes: Mapping[str, Any], start_time: int | None = None) -> Span:
        """A span continuing ``parent``'s trace."""
        kind = self._trace.SpanKind.CONSUMER
        return self.tracer.start_span(name, parent, kind, attributes=attributes, start_time=start_time)

    @staticmethod
    def header(span: Span) -> bytes:
        """The ``traceparent`` that continues ``span``'s trace from a message."""
        c = span.get_span_context()
        return f"00-{c.trace_id:032x}-{c.span_id:016x}-{int(c.trace_flags):02x}".encode()


Key = tuple[str, int, int]  # an event's topic, partition and offset


class MemberSpans:
    """A member's spans: one per attempt at each sampled event, continuing the event's trace; what its result or
    dead letter carries on. Called by the runtime at a few points (``runtime/loop.py``, ``executors.py``,
    ``checkpoint.py``); an event not sampled costs a look at its headers when taken, and nothing more.
    Attempts run in worker threads while the poll thread takes and sends: each dict is touched by one key's
    owner at a time (an event's attempts run one after another)."""

    def __init__(self, traces: Tracing, group: str) -> None:
        self.traces, self.group = traces, group
        self._parents: dict[Key, Context] = {}  # sampled events taken and not sent yet
        self._last: dict[Key, Span] = {}  # the latest attempt's span of each, ended

    @property
    def sampled(self) -> bool:
        """Whether any sampled event is in flight (else an executor need not look at its events one by one)."""
        return bool(self._parents)

    def take(self, items: Sequence[Any]) -> None:
        """Events fetched: the sampled ones' contexts remembered (the rest looked at, no more)."""
        for item in items:
            if item.headers and (parent := self.traces.parent(item.headers)) is not None:
                self._parents[(item.topic, item.partition, item.offset)] = parent

    def attempt(self, item: Any, attempt: int) -> Span | None:
        """A span for this attempt at ``item``, if its trace is sampled (ended by ``concluded``)."""
        parent = self._parents.get((item.topic, item.partition, item.offset))
        return None if parent is None else self._span(item, attempt, parent)

    def _span(self, item: Any, attempt: int, parent: Context) -> Span:
        return self.traces.start(
            f"{self.group} attempt {attempt}",
            parent,
            {
                "vvv.group": self.group,
                "vvv.attempt": attempt,
                "vvv.video_id": getattr(item.event, "video_id", None) or "",
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": item.topic,
                "messaging.destination.partition.id": str(item.partition),
                "messaging.kafka.offset": item.offset,
            },
        )

    def concluded(self, item: Any, span: Span | None, attributes: Mapping[str, Any], failed: bool = False) -> None:
        """An attempt's end: its verdict, or why it will be tried again or dead-lettered."""
        if span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        span.set_attributes({k: v for k, v in attributes.items() if v is not None})
        if failed:
            span.set_status(Status(StatusCode.ERROR, str(attributes.get("vvv.reason") or "")))
        span.end()
        self._last[(item.topic, item.partition, item.offset)] = span

    def headers(self, outcome: Any, headers: Headers | None) -> Headers | None:
        """``headers`` of the outcome's result or dead letter, for a sampled event with the ``traceparent`` that
        continues its trace: its last attempt's span (dead-lettered before any attempt: a span saying so). An
        event not sampled gets nothing: no trace to continue, and no header for every result to carry (its dead
        letter keeps the event's own headers, its ``traceparent`` among them)."""
        if not self._parents:  # nothing sampled in flight: nothing per event
            return headers
        item = outcome.inbound
        key = (item.topic, item.partition, item.offset)
        if (parent := self._parents.pop(key, None)) is None:
            return headers
        span = self._last.pop(key, None)
        if span is None:  # never attempted: undecodable, or refused by the store
            span = self._span(item, outcome.failure.attempts if outcome.failure else 1, parent)
            self.concluded(item, span, _failure(outcome.failure), failed=outcome.failure is not None)
            self._last.pop(key, None)
        kept = [(k, v) for k, v in headers or () if k != TRACEPARENT]
        return [*kept, (TRACEPARENT, self.traces.header(span))]

    def forget(self, partitions: set[tuple[str, int]]) -> None:
        """Revoked partitions: their events are the next owner's."""
        for table in (self._parents, self._last):
            for key in [k for k in table if (k[0], k[1]) in partitions]:
                del table[key]


def _failure(failure: Any) -> dict[str, Any]:
    """A dead letter's reason, as span attributes."""
    if failure is None:
        return {"vvv.next": "result"}
    return {"vvv.next": "dead letter", "vvv.error.kind": failure.kind, "vvv.reason": failure.message[:500]}


def verdict(detail: Mapping[str, Any] | None) -> dict[str, Any]:
    """A result detail's verdict, as span attributes."""
    detail = detail or {}
    return {
        "vvv.verdict": str(detail.get("status") or detail.get("label") or ""),
        "vvv.score": detail.get("score"),
        "vvv.reason": detail.get("reason"),
        "vvv.http_status": detail.get("http_status"),
    }
