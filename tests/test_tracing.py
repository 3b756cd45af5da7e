"""OpenTelemetry traces: off without the OTEL_* variables (nothing imported, no header), a ``traceparent`` on every
event the hook sends and kept with it in the outbox, one trace per event across every group that touches it,
kept through replays. Spans are read from the SDK's in-memory exporter."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import add_video, cli_env, hours_ago, run_group

from vvv_core import tracing
from vvv_core.broker import free_port
from vvv_core.config import ConfigError
from vvv_core.dlq import replay_dead_letters
from vvv_core.groups.scoring import ScoringGroup
from vvv_core.hook import background_processing, flush_outbox
from vvv_core.kafka import read_topic
from vvv_core.outbox import outbox_dir
from vvv_core.replay import replay as replay_offsets
from vvv_core.spool import MAGIC, MAGIC_HEADERS, Message, Spool
from vvv_core.standins import LocalServer, Reply, image_bytes

sdk = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402


@pytest.fixture
def spans():
    """Tracing on in this process, every event sampled, spans kept in memory; off again afterwards."""
    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider, rate=1.0)
    yield exporter
    tracing.uninstall()


def parts(header: bytes) -> tuple[str, str, str]:
    """A traceparent's trace id, span id and flags."""
    version, trace_id, span_id, flags = header.decode().split("-")
    assert version == "00" and len(trace_id) == 32 and len(span_id) == 16
    return trace_id, span_id, flags


def test_without_the_otel_variables_nothing_is_imported_and_no_header_is_written(settings, cron_db):
    """The hook in a process of its own, as the cron runs it, with no OTEL_* variable: OpenTelemetry is never
    imported (installed or not), and the events carry no header."""
    script = (
        "import sys\n"
        "from vvv_core.hook import background_processing\n"
        "from vvv_core import tracing\n"
        f"report = background_processing([{{'video_id': 'plainvideo1'}}], ['plainvideo2'], {cron_db!r})\n"
        "assert report.ok, report\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')), tracing.active())\n"
    )
    env = {k: v for k, v in cli_env(settings).items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] None"
    for topic in (settings.videos_topic, settings.stale_topic):
        assert [m.headers() for m in read_topic(settings, topic)] == [None]


def test_the_sampler_variables_give_the_share_traced_and_a_bad_one_is_one_line_with_traces_off(monkeypatch, caplog):
    share = tracing.sample_rate
    assert share({}) == share({"OTEL_TRACES_SAMPLER": "Always_On"}) == 1.0  # parentbased_always_on by default
    assert share({"OTEL_TRACES_SAMPLER": "always_off"}) == share({"OTEL_TRACES_SAMPLER": "parentbased_always_off"}) == 0
    for name in ("traceidratio", "parentbased_traceidratio"):
        assert share({"OTEL_TRACES_SAMPLER": name, "OTEL_TRACES_SAMPLER_ARG": "0.01"}) == 0.01
        assert share({"OTEL_TRACES_SAMPLER": name}) == 1.0
    bad = [
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER='sometimes': expected one of always_on, "),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG='1.5': "),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "-0.1"}, "OTEL_TRACES_SAMPLER_ARG='-0.1'"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "most"}, "OTEL_TRACES_SAMPLER_ARG='most'"),
    ]
    for env, said in bad:
        with pytest.raises(ConfigError) as refused:
            share(env)
        assert str(refused.value).startswith(said)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "sometimes")
    tracing.uninstall()
    try:
        with caplog.at_level("WARNING", logger="vvv_core.tracing"):
            assert tracing.active("vvv-test") is None
    finally:
        tracing.uninstall()
    (line,) = [r.getMessage() for r in caplog.records if r.name == "vvv_core.tracing"]
    assert line.startswith("tracing off: OTEL_TRACES_SAMPLER='sometimes': expected one of")


def test_the_hook_puts_a_traceparent_on_every_event_and_a_span_on_each_sampled_one(settings, cron_db, spans):
    videos = [{"video_id": f"tracedvid{i:02d}"} for i in range(20)]
    assert background_processing(videos, ["tracedstale"], cron_db, settings).delivered == 21
    topics = (settings.videos_topic, settings.stale_topic)
    sent = {m.key().decode(): m.headers() for t in topics for m in read_topic(settings, t)}
    finished = {s.attributes["vvv.video_id"]: s for s in spans.get_finished_spans()}
    assert sorted(finished) == sorted(sent)
    for video_id, headers in sent.items():
        assert [k for k, _v in headers] == ["traceparent"]
        trace_id, span_id, flags = parts(headers[0][1])
        span = finished[video_id]
        assert (f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}") == (trace_id, span_id)
        topic = span.attributes["messaging.destination.name"]
        assert int(flags, 16) & 1 and span.parent is None and span.name == f"publish {topic}" and topic in topics
    assert len({parts(h[0][1])[0] for h in sent.values()}) == 21  # one trace per event


def test_events_not_sampled_carry_the_decision_and_make_no_span(settings, cron_db, spans):
    tracing.active().__init__(tracing.active().provider, 0.0, "memory")  # sample nothing
    assert background_processing([{"video_id": f"quietvid{i:03d}"} for i in range(50)], [], cron_db, settings).ok
    headers = [m.headers() for m in read_topic(settings, settings.videos_topic)]
    assert {parts(h[0][1])[2] for h in headers} == {"00"} and len({parts(h[0][1])[0] for h in headers}) == 50
    assert not any(tracing.is_sampled(h[0][1]) for h in headers)
    assert spans.get_finished_spans() == ()


def test_events_kept_in_the_outbox_keep_their_traceparent(settings, cron_db, spans):
    down = replace(settings, bootstrap=f"127.0.0.1:{free_port()}", hook_timeout=0.5)
    report = background_processing([{"video_id": f"keptvideo{i}"} for i in range(5)], [], cron_db, down)
    assert (report.delivered, report.queued) == (0, 5)
    kept = {s.attributes["vvv.video_id"]: s for s in spans.get_finished_spans()}
    assert {s.attributes["vvv.hook.kept_in_outbox"] for s in kept.values()} == {5}
    assert flush_outbox(cron_db, settings).delivered == 5
    for m in read_topic(settings, settings.videos_topic):
        trace_id, span_id, _flags = parts(dict(m.headers())["traceparent"])
        context = kept[m.key().decode()].context
        assert (trace_id, span_id) == (f"{context.trace_id:032x}", f"{context.span_id:016x}")


def test_a_segment_keeps_its_headers_and_one_without_any_stays_in_the_first_format(tmp_path: Path):
    spool = Spool(outbox_dir(tmp_path / "cron.db"))
    traced = [
        Message("vvv.videos", b"a", b"\x00\x01", [("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")]),
        Message("vvv.stale", None, b"", [("empty", b""), ("two", b"\xff")]),
        Message("vvv.videos", b"b", b"v", []),
    ]
    plain = [Message("vvv.videos", b"c", b"w"), Message("vvv.stale", b"d", b"x")]
    [with_headers] = spool.write(traced)
    [without] = spool.write(plain)
    assert with_headers.read_bytes().startswith(MAGIC_HEADERS) and without.read_bytes().startswith(MAGIC)
    assert spool.read(with_headers, lambda kept: []) == traced
    assert spool.read(without, lambda kept: []) == plain  # headers None: as a version before headers wrote it


def flaky_thumbnail_host():
    """A thumbnail host answering 500 to a video's first request, then a real image."""
    served: Counter[str] = Counter()
    jpeg = image_bytes(320, 180)

    def route(_method: str, path: str) -> Reply:
        served[path] += 1
        return Reply(500) if served[path] == 1 else Reply(200, jpeg)

    return LocalServer(route)


def by_name(finished, trace_id: int) -> dict[str, list]:
    found: dict[str, list] = {}
    for span in finished:
        if span.context.trace_id == trace_id:
            found.setdefault(span.name, []).append(span)
    return found


def test_one_videos_trace_spans_the_hook_each_attempt_its_result_and_the_sink(settings, cron_db, spans):
    """The hook's span; thumbnails' two attempts (a 500, retried, then valid) and scoring's one beside them, each a
    child of it; each result carrying its last attempt on; the sink's span of each result its child, and the
    table's record carrying the sink's on: one trace, whatever process each part ran in."""
    add_video(cron_db, "tracedvideo", "PL", [(1000, 10, 1, hours_ago(2)), (90_000, 900, 90, hours_ago(1))])
    with flaky_thumbnail_host() as host:
        checks = replace(settings, thumbnail_hosts=(urlsplit(host.base_url).netloc,), thumbnail_retry_delay=0.1)
        video = {
            "video_id": "tracedvideo",
            "region": "PL",
            "thumbnail_url": host.base_url + "/t.jpg",
            "view_count": 5000,
            "likes": 50,
            "comments": 5,
            "fetched_at": hours_ago(1),
        }
        assert background_processing([video], [], cron_db, checks).delivered == 1
        run_group("thumbnails", checks, None)
        run_group("scoring", checks, cron_db)
        run_group("sink", checks, cron_db)
    finished = spans.get_finished_spans()
    [hook] = [s for s in finished if s.name == f"publish {settings.videos_topic}"]
    trace = by_name(finished, hook.context.trace_id)
    [first], [second] = trace["thumbnails attempt 1"], trace["thumbnails attempt 2"]
    [scored] = trace["scoring attempt 1"]
    assert {first.parent.span_id, second.parent.span_id, scored.parent.span_id} == {hook.context.span_id}
    assert first.attributes["vvv.next"] == "retry in 0.1 s" and "HTTP 500" in first.attributes["vvv.reason"]
    assert first.status.status_code.name == "ERROR"
    assert (second.attributes["vvv.verdict"], second.attributes["vvv.next"]) == ("valid", "result")
    assert scored.attributes["vvv.verdict"] in ("VIRAL", "TRENDING", "NORMAL") and scored.attributes["vvv.score"] > 0
    assert "vvv.rate_limit.waited_s" in second.attributes
    sunk = {s.parent.span_id: s for s in trace["sink attempt 1"]}
    assert set(sunk) == {second.context.span_id, scored.context.span_id}  # each result's, through the sink
    assert {s.attributes["vvv.verdict"] for s in sunk.values()} == {"applied", "skipped"}
    carried = {m.value(): dict(m.headers())["traceparent"] for m in read_topic(settings, settings.results_topic)}
    assert sorted(parts(h)[1] for h in carried.values()) == sorted(
        f"{s.context.span_id:016x}" for s in (second, scored)
    )
    table = [dict(m.headers())["traceparent"] for m in read_topic(settings, settings.table_topic)]
    assert {parts(h)[1] for h in table} <= {f"{s.context.span_id:016x}" for s in sunk.values()} and table


def test_replays_keep_the_trace(settings, cron_db, spans):
    """`vvv replay` processes the same messages again: the new attempts continue the event's trace. A dead letter
    carries the trace of the attempt that dead-lettered it, and its replay continues it: a replay span, and the
    replayed message's processing under it."""
    add_video(cron_db, "replayvideo", "PL", [(1000, 10, 1, hours_ago(2)), (90_000, 900, 90, hours_ago(1))])
    assert background_processing([{"video_id": "replayvideo"}, {"video_id": "ghostvideo1"}], [], cron_db, settings).ok
    run_group("scoring", settings, cron_db)
    assert replay_offsets(settings, ScoringGroup, None)  # the group's offsets back to the beginning
    run_group("scoring", settings, None)  # again, in stream mode this time: its results for the sink
    run_group("sink", settings, cron_db)  # ghostvideo1 is not in the cron database: its result is dead-lettered
    finished = spans.get_finished_spans()
    hooks = {s.attributes["vvv.video_id"]: s for s in finished if s.name.startswith("publish")}
    trace = by_name(finished, hooks["replayvideo"].context.trace_id)
    assert [s.parent.span_id for s in trace["scoring attempt 1"]] == [hooks["replayvideo"].context.span_id] * 2

    letters = read_topic(settings, settings.dead_letter_topic("sink"))
    assert {m.key() for m in letters} == {b"ghostvideo1"}  # its results (both runs') name a video the database lacks
    ghost = by_name(finished, hooks["ghostvideo1"].context.trace_id)
    refused = {f"{s.context.span_id:016x}": s for s in ghost["sink attempt 1"]}
    assert {parts(dict(m.headers())["traceparent"])[1] for m in letters} <= set(refused)
    add_video(cron_db, "ghostvideo1", "PL", [(1000, 10, 1, hours_ago(1))])
    assert replay_dead_letters(settings, "sink") == len(letters)
    run_group("sink", settings, cron_db)
    ghost = by_name(spans.get_finished_spans(), hooks["ghostvideo1"].context.trace_id)
    replayed = ghost[f"replay {settings.dead_letter_topic('sink')}"]
    assert len(replayed) == len(letters) and {f"{s.parent.span_id:016x}" for s in replayed} <= set(refused)
    applied = [s for s in ghost["sink attempt 1"] if s.parent.span_id in {r.context.span_id for r in replayed}]
    assert len(applied) == len(letters)  # the replayed results, each processed under its replay's span
