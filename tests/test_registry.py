"""The Confluent Schema Registry wire format against a real registry: Apicurio Registry's Confluent-compatible
API (``apicurio.py``), started once for the session. The hook and every group write it, the registry's own
compatibility rule refuses what it must, and confluent-kafka's own ``AvroDeserializer`` reads what was written.
The in-memory stand-in (``registry_standin.py``) serves only what a real registry cannot show: how many
requests a producer makes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import urllib.request
from urllib.parse import urlsplit

import pytest
from apicurio import Apicurio, RegistryNotInstalled
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from conftest import VVV, cli_env, outbox_count, run_group
from registry_standin import RegistryStandIn

from vvv_core.avro import DEFAULT_SCHEMA_DIR
from vvv_core.broker import free_port
from vvv_core.dlq import list_dead_letters
from vvv_core.hook import background_processing, publish_new
from vvv_core.kafka import read_topic
from vvv_core.sample import build_sample_db
from vvv_core.standins import LocalServer, demo_oembed, demo_thumbnails


@pytest.fixture(scope="session")
def registry_url():
    try:
        with Apicurio() as registry:
            yield registry.url
    except RegistryNotInstalled as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


@pytest.fixture
def with_registry(settings, registry_url):
    return settings.replace(schema_registry_url=registry_url)


def registry(url: str, path: str, body: dict | None = None, method: str | None = None) -> dict | list:
    request = urllib.request.Request(
        f"{url}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def incompatible_version(url: str, subject: str) -> None:
    """A first version of ``subject`` that the project's schema cannot read: the BACKWARD rule the project
    sets on the subject makes the registry refuse ours after it (with no rule, it would take it)."""
    other = {"type": "record", "name": "Other", "fields": [{"name": "other", "type": "string"}]}
    registry(url, f"/subjects/{subject}/versions", {"schema": json.dumps(other)}, "POST")


def test_the_hook_and_every_group_write_the_registry_format_that_confluents_deserializer_reads(
    with_registry, registry_url, tmp_path
):
    """Events from the hook, results of every group (scoring direct, thumbnails and liveness results-only,
    stored by the sink): each in the wire format under its topic's subject, BACKWARD, and decoded by
    confluent-kafka's own AvroDeserializer, as a downstream service would."""
    s = with_registry
    with LocalServer(demo_thumbnails()) as thumbnails, LocalServer(demo_oembed()) as oembed:
        hosts = (urlsplit(thumbnails.base_url).netloc,)
        s = s.replace(thumbnail_hosts=hosts, oembed_url=f"{oembed.base_url}/oembed", liveness_rate=6000)
        cron = str(tmp_path / "cron.db")
        build_sample_db(cron, thumbnail_base=thumbnails.base_url)
        assert publish_new(cron, s).delivered == 401
        assert run_group("scoring", s, cron).processed == 308
        assert run_group("thumbnails", s, None).processed == 308
        assert run_group("liveness", s, None).processed == 93
        assert run_group("sink", s, cron).dead_lettered == 0
    stored = sqlite3.connect(cron)
    assert stored.execute("SELECT count(*) FROM thumbnail_checks").fetchone() == (308,)
    assert stored.execute("SELECT count(*) FROM video_liveness").fetchone() == (93,)

    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    for topic, count, field in (
        (s.videos_topic, 308, "thumbnail_url"),
        (s.stale_topic, 93, "video_id"),
        (s.results_topic, 308 * 2 + 93, "detail"),
    ):
        messages = read_topic(s, topic)
        assert len(messages) == count and {m.value()[:1] for m in messages} == {b"\x00"}
        decoded = [deserializer(m.value(), SerializationContext(topic, MessageField.VALUE)) for m in messages]
        assert all(record[field] is not None for record in decoded)
        assert registry(registry_url, f"/config/{topic}-value")["compatibilityLevel"] == "BACKWARD"
        if topic == s.results_topic:
            assert {r["group"] for r in decoded} == {"scoring", "thumbnails", "liveness"}
            assert {r["video_id"] for r in decoded} == {m.key().decode() for m in messages}


def test_an_incompatible_schema_is_refused_by_the_registry_and_the_hooks_events_are_kept(
    with_registry, registry_url, sample_db
):
    """The registry's own BACKWARD rule refuses the project's schema: the hook keeps its events in the outbox
    (one line in its report), delivers them once the subject accepts it; a member says so in one line at start."""
    s = with_registry
    incompatible_version(registry_url, f"{s.videos_topic}-value")
    report = background_processing([{"video_id": "J78aPJ3VyNs"}, {"video_id": "9nidKH8cM38"}], [], sample_db, s)
    assert (report.delivered, report.queued) == (0, 2)
    assert f"cannot register {s.videos_topic}-value" in report.error and "Incompatible" in report.error
    assert "\n" not in report.error and outbox_count(sample_db) == 2
    registry(registry_url, f"/subjects/{s.videos_topic}-value", method="DELETE")  # the subject put right
    assert background_processing([], [], sample_db, s).delivered == 2

    incompatible_version(registry_url, f"{s.results_topic}-value")
    member = subprocess.run(
        [*VVV, "consume", "scoring", "--db", sample_db, "--until-idle", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(s, VVV_SCHEMA_REGISTRY_URL=registry_url),
    )
    assert member.returncode == 1
    (line,) = member.stderr.splitlines()
    assert line.startswith(f"vvv: error: schema registry {registry_url}: cannot register {s.results_topic}-value")
    assert "Incompatible" in line


def test_a_topic_can_migrate_readers_take_both_formats(settings, with_registry, sample_db):
    """Single-object events first, registry-format events after: one consumer reads both."""
    assert background_processing([{"video_id": "J78aPJ3VyNs"}], [], sample_db, settings).ok
    assert background_processing([{"video_id": "9nidKH8cM38"}], [], sample_db, with_registry).ok
    assert sorted(m.value()[:1] for m in read_topic(settings, settings.videos_topic)) == [b"\x00", b"\xc3"]
    runner = run_group("scoring", with_registry, sample_db)
    assert (runner.processed, runner.dead_lettered) == (2, 0)


def test_without_the_registry_its_format_is_a_dead_letter_that_says_why(settings, with_registry, sample_db):
    assert background_processing([{"video_id": "J78aPJ3VyNs"}], [], sample_db, with_registry).ok
    runner = run_group("scoring", settings, sample_db)  # no VVV_SCHEMA_REGISTRY_URL
    assert (runner.processed, runner.dead_lettered) == (1, 1)
    (letter,) = list_dead_letters(settings, "scoring")
    assert "set VVV_SCHEMA_REGISTRY_URL to read it" in letter.why["error.message"]


def test_a_registry_away_keeps_the_hooks_events_until_it_is_back(settings, registry_url, sample_db):
    away = settings.replace(schema_registry_url=f"http://127.0.0.1:{free_port()}")
    report = background_processing([{"video_id": "J78aPJ3VyNs"}], [], sample_db, away)
    assert (report.delivered, report.queued) == (0, 1) and "schema registry http://127.0.0.1:" in report.error
    back = settings.replace(schema_registry_url=registry_url)
    assert background_processing([], [], sample_db, back).delivered == 1


def test_a_producer_registers_each_schema_once_per_process_not_per_event(settings, sample_db):
    """What a real registry cannot show (the stand-in counts requests): the hook's calls after the first
    ask the registry nothing, however many events they carry."""
    with RegistryStandIn() as standin:
        s = settings.replace(schema_registry_url=standin.url)
        for ids in (["J78aPJ3VyNs"], ["9nidKH8cM38", "M9Pmf9AB4Mo"], ["J78aPJ3VyNs"] * 50):
            assert background_processing([{"video_id": v} for v in ids], ids, sample_db, s).ok
    registrations = [path for method, path in standin.requests if method == "POST"]
    assert sorted(registrations) == [f"/subjects/{t}-value/versions" for t in sorted((s.stale_topic, s.videos_topic))]
    assert len(standin.requests) == 4, standin.requests  # and each subject's compatibility rule set once
    current = json.loads((DEFAULT_SCHEMA_DIR / "video_event.avsc").read_text())
    assert any(json.loads(text)["name"] == current["name"] for text in standin.schemas)
