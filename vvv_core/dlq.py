"""Dead letters, for operators: list a group's dead letters with their reasons, and replay them.

A replay sends a dead letter back to its source topic untouched (plus a ``vvv.replayed.from``
header). Its trace goes on: the letter's ``traceparent`` (the attempt that dead-lettered it) is kept, and
where that trace is sampled and tracing is on, a replay span continues it and the event carries that span's.

What was replayed is kept on the broker, so each dead letter is replayed once:

- replaying all of them moves the committed offsets of ``<group id>.dlq-replay`` on the
  dead-letter topic past them (a replay that fails midway resumes where it stopped);
- replaying some (one, or those matching a search: the console) appends a marker record to the
  dead-letter topic naming each (``vvv.dlq.replayed: partition/offset``, no value), once the
  replayed events are acknowledged; readers skip markers and the letters they name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from vvv_core import kafka, tracing
from vvv_core.config import Settings
from vvv_core.errors import InvalidInput, Transient
from vvv_core.runtime.deadletter import HEADER_PREFIX, read_headers

MARKER = f"{HEADER_PREFIX}replayed"  # header of a marker record: "partition/offset" of the letter replayed


@dataclass(frozen=True)
class DeadLetter:
    offset: int  # in the dead-letter topic
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    replayed: bool = False

    @property
    def why(self) -> dict[str, str]:
        return read_headers(self.headers)


def list_dead_letters(settings: Settings, group: str, readers: kafka.Readers | None = None) -> list[DeadLetter]:
    """The group's dead letters in topic order, each marked replayed or not (through ``readers``, kept open by
    the console, or clients of its own)."""
    topic, replays = settings.dead_letter_topic(group), replay_group(settings, group)
    if readers is None:
        records, done = kafka.read_topic(settings, topic), kafka.committed_offsets(settings, replays, topic)
    else:
        records, done = readers.read({topic: None})[topic], readers.committed({replays: topic})[replays]
    return letters(records, done)


def letters(records: list[Message], done: Mapping[int, int]) -> list[DeadLetter]:
    """The dead letters among a dead-letter topic's ``records``, each marked replayed or not: named by a marker,
    or before ``done``, where a replay of all got to (per partition)."""
    headers = [m.headers() or [] for m in records]  # made anew by each call: once each
    markers = {v.decode() for h in headers for k, v in h if k == MARKER and v}
    return [
        DeadLetter(
            m.offset(),
            m.partition(),
            m.key(),
            m.value(),
            h,
            m.offset() < done.get(m.partition(), 0) or f"{m.partition()}/{m.offset()}" in markers,
        )
        for m, h in zip(records, headers, strict=True)
        if not any(k == MARKER for k, _ in h)
    ]


def replay_dead_letters(
    settings: Settings, group: str, matching: Callable[[DeadLetter], bool] | None = None, timeout: float = 30.0
) -> int:
    """Send the dead letters not replayed yet (all, or those ``matching``) back to their source topics."""
    topic = settings.dead_letter_topic(group)
    letters = list_dead_letters(settings, group)
    chosen = [d for d in letters if not d.replayed and (matching is None or matching(d))]
    producer = Producer(kafka.producer_config(settings))
    traces, spans = tracing.active(), []
    for d in chosen:
        source = d.why.get("source.topic")
        if not source:
            raise InvalidInput(f"{topic}[{d.partition}]@{d.offset} names no source topic")
        own = [(k, v) for k, v in d.headers if not k.startswith(HEADER_PREFIX)]
        replayed_from = f"{topic}/{d.partition}/{d.offset}"
        if traces is not None and (parent := traces.parent(own)) is not None:
            span = traces.start(f"replay {topic}", parent, {"vvv.replayed.from": replayed_from, "vvv.group": group})
            own = [(k, v) for k, v in own if k != tracing.TRACEPARENT] + [(tracing.TRACEPARENT, traces.header(span))]
            spans.append(span)
        producer.produce(source, d.value, d.key, headers=[*own, ("vvv.replayed.from", replayed_from.encode())])
    unanswered = producer.flush(timeout)
    for span in spans:
        span.end()
    if unanswered:
        raise Transient("the broker did not take the replayed events")
    if matching is None:  # all of them: the position moves past every letter read
        ends: dict[int, int] = {}
        for d in letters:
            ends[d.partition] = max(ends.get(d.partition, 0), d.offset + 1)
        _commit_positions(settings, group, topic, ends)
    else:  # some: a marker for each, once the events themselves are acknowledged
        for d in chosen:
            producer.produce(topic, None, d.key, headers=[(MARKER, f"{d.partition}/{d.offset}".encode())])
        if producer.flush(timeout):
            raise Transient("the broker did not take the replay markers: those letters may be replayed again")
    return len(chosen)


def replay_group(settings: Settings, group: str) -> str:
    """The consumer group whose committed offsets on the dead-letter topic say how far a replay of all got."""
    return f"{settings.group_id(group)}.dlq-replay"


def _commit_positions(settings: Settings, group: str, topic: str, positions: dict[int, int]) -> None:
    if not positions:
        return
    consumer = Consumer(kafka.consumer_config(settings, group, **{"group.id": replay_group(settings, group)}))
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in positions.items()], asynchronous=False)
    finally:
        consumer.close()
