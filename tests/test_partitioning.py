"""Keys land where the JVM's clients put them (murmur2), on every topic the project writes: checked against
Kafka's own producer partitioner, run from the jars the Apache Kafka run already has."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import Producer
from conftest import run_group

from vvv_core import kafka
from vvv_core.apache_kafka import find_jars
from vvv_core.dlq import list_dead_letters, replay_dead_letters
from vvv_core.events import now_ms
from vvv_core.hook import publish_new
from vvv_core.runtime.backends.memory import MemoryBroker
from vvv_core.standins import LocalServer, demo_oembed

pytestmark = pytest.mark.apache_kafka_only  # Java and Kafka's jars are there in that run (and always in CI)
PROGRAM = Path(__file__).parent / "java" / "KafkaPartitions.java"


def java_partitions(keys: list[bytes], partitions: int) -> list[int]:
    """What Kafka's Java producer (``BuiltInPartitioner.partitionForKey``) gives each key."""
    done = subprocess.run(
        ["java", "-cp", f"{find_jars()}/*", str(PROGRAM), str(partitions)],
        input="".join(f"{key.hex()}\n" for key in keys),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [int(line) for line in done.stdout.split()]


def test_the_pure_python_murmur2_partitions_as_kafkas_java_producer():
    """The in-memory broker's partitioner (and kafka.java_partition) against Java's, on keys of every length."""
    rng = random.Random(7)
    keys = [b"", b"J78aPJ3VyNs", "wideo-ł".encode(), *(rng.randbytes(n) for n in range(1, 40) for _ in range(5))]
    for partitions in (1, 2, 6, 7, 100):
        java = java_partitions(keys, partitions)
        assert [kafka.java_partition(k, partitions) for k in keys] == java
        assert [MemoryBroker(partitions=partitions).partition_for(k) for k in keys] == java


def test_every_topic_the_project_writes_is_partitioned_as_the_java_producer_does(settings, schemas, sample_db):
    """The hook (videos, stale), a group's results and dead letters, and a replay of the dead letters."""
    with LocalServer(demo_oembed()) as oembed:
        s = settings.replace(oembed_url=f"{oembed.base_url}/oembed", liveness_rate=6000)
        assert publish_new(sample_db, s).ok
        poisoned = [os.urandom(6).hex().encode() for _ in range(12)]  # keys that do not match their events
        producer = Producer(kafka.producer_config(s))
        for key in poisoned:
            producer.produce(s.videos_topic, schemas.encoder("VideoEvent")(_event()), key)
        assert producer.flush(30) == 0
        assert run_group("scoring", s, sample_db).dead_lettered == len(poisoned)
        run_group("liveness", s, None)
        assert replay_dead_letters(s, "scoring") == len(poisoned)
    written = {
        topic: kafka.read_topic(s, topic)
        for topic in (s.videos_topic, s.stale_topic, s.results_topic, s.dead_letter_topic("scoring"))
    }
    assert {t: len(m) > 10 for t, m in written.items()} == dict.fromkeys(written, True)
    assert len(list_dead_letters(s, "scoring")) == len(poisoned)
    for topic, messages in written.items():
        keys = [m.key() for m in messages]
        assert [m.partition() for m in messages] == java_partitions(keys, s.partitions), topic


def _event() -> dict:
    return {"event_id": os.urandom(8).hex(), "video_id": "J78aPJ3VyNs", "created_at": now_ms()}
