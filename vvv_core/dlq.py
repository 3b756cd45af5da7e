"""Dead letters, for operators: list a group's dead letters with their reasons, and replay them."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from vvv_core import kafka
from vvv_core.config import Settings
from vvv_core.errors import InvalidInput, Transient
from vvv_core.runtime.deadletter import HEADER_PREFIX, read_headers


@dataclass(frozen=True)
class DeadLetter:
    offset: int  # in the dead-letter topic
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @property
    def why(self) -> dict[str, str]:
        return read_headers(self.headers)


def list_dead_letters(settings: Settings, group: str) -> list[DeadLetter]:
    topic = settings.dead_letter_topic(group)
    return [
        DeadLetter(m.offset(), m.partition(), m.key(), m.value(), m.headers() or [])
        for m in kafka.read_topic(settings, topic)
    ]


def replay(settings: Settings, group: str, timeout: float = 30.0) -> int:
    """Send every dead letter not replayed yet back to its source topic, untouched; return how many.

    How far replay got is kept as the committed offsets of ``<group id>.dlq-replay`` on the
    dead-letter topic, so each dead letter is replayed once, and a replay that fails midway
    resumes where it stopped.
    """
    topic = settings.dead_letter_topic(group)
    replay_group = f"{settings.group_id(group)}.dlq-replay"
    consumer = Consumer(kafka.consumer_config(settings, group, **{"group.id": replay_group}))
    producer = Producer(kafka.producer_config(settings))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        consumer.assign(
            [TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING) for tp in committed]
        )
        pending, positions, sent = set(partitions), {}, 0
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                if msg.error() is not None:
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    raise KafkaException(msg.error())
                headers = msg.headers() or []
                source = read_headers(headers).get("source.topic")
                if not source:
                    raise InvalidInput(f"{topic}[{msg.partition()}]@{msg.offset()} names no source topic")
                own = [(k, v) for k, v in headers if not k.startswith(HEADER_PREFIX)]
                producer.produce(
                    source,
                    msg.value(),
                    msg.key(),
                    headers=[*own, ("vvv.replayed.from", f"{topic}/{msg.partition()}/{msg.offset()}".encode())],
                )
                positions[msg.partition()] = msg.offset() + 1
                sent += 1
        if pending:
            raise Transient(f"could not read {topic} to its end within {timeout:g} s")
        if producer.flush(timeout):
            raise Transient("the broker did not take the replayed events")
        if positions:
            consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in positions.items()], asynchronous=False)
        return sent
    finally:
        consumer.close()
