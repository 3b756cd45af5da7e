"""The Confluent Schema Registry wire format, producers and readers, against an in-memory registry
that answers as Confluent's API does (``registry_standin.py`` says why no real registry runs here)."""

from __future__ import annotations

import json
import urllib.request

import pytest
from conftest import run_group
from registry_standin import RegistryStandIn

from vvv_core.broker import free_port
from vvv_core.dlq import list_dead_letters
from vvv_core.hook import background_processing
from vvv_core.kafka import read_topic


def subject_config(registry_url: str, subject: str) -> dict:
    with urllib.request.urlopen(f"{registry_url}/config/{subject}", timeout=10) as response:
        return json.load(response)


@pytest.fixture
def registry_url():
    with RegistryStandIn() as registry:
        yield registry.url


@pytest.fixture
def with_registry(settings, registry_url):
    return settings.replace(schema_registry_url=registry_url)


def test_events_and_results_in_the_registry_wire_format(with_registry, registry_url, sample_db):
    """Magic byte 0 and the registered schema's id; subjects per topic, compatibility BACKWARD; consumed as usual."""
    s = with_registry
    assert background_processing([{"video_id": "J78aPJ3VyNs", "thumbnail_url": "u"}], [], sample_db, s).ok
    (event,) = read_topic(s, s.videos_topic)
    assert event.value()[:1] == b"\x00"
    schema_id = int.from_bytes(event.value()[1:5], "big")
    with urllib.request.urlopen(f"{registry_url}/schemas/ids/{schema_id}", timeout=10) as response:
        assert json.loads(json.load(response)["schema"])["name"] == "VideoEvent"
    assert subject_config(registry_url, f"{s.videos_topic}-value")["compatibilityLevel"] == "BACKWARD"
    assert run_group("scoring", s, sample_db).processed == 1
    (result,) = read_topic(s, s.results_topic)
    assert result.value()[:1] == b"\x00"
    assert subject_config(registry_url, f"{s.results_topic}-value")["compatibilityLevel"] == "BACKWARD"


def test_a_topic_can_migrate_readers_take_both_formats(settings, with_registry, schemas, sample_db):
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
