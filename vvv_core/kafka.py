"""Kafka client settings and topic set-up: where the brokers' differences are handled.

Every branch is chosen by what the broker does, not by its name (the README's broker table
has each difference as measured on both). Settings the embedded broker (tansu 0.6) needs,
harmless on Apache Kafka:

- ``fetch.wait.max.ms=10``: tansu holds every fetch for the full wait even when data is
  there, so a larger value is added to every event's latency. Apache Kafka answers as soon
  as data arrives; there the low value only means more fetch requests while idle.
- ``session.timeout.ms=6000``: tansu completes a group join only after half the session
  timeout. 6 s is the smallest session Apache Kafka allows by default
  (``group.min.session.timeout.ms``), so a join takes 3 s on tansu. Classic protocol only.
- ``partition.assignment.strategy=roundrobin``: cooperative-sticky stalls on tansu when a
  member joins late. Classic protocol only: a broker that offers KIP-848 gets that instead
  (``group_protocol``).

Chosen by behaviour: the group protocol (``group_protocol``: what ApiVersions advertises),
end offsets (``watermarks``: ListOffsets where it agrees with fetches), offsets by time
(``offsets_for_time`` checked by ``first_at_or_after``).

One tansu fault has no client-side workaround: a member that leaves while its group
rebalances can leave the group wedged for good (every JoinGroup answers with the departed
leader, SyncGroup then fails, forever; a fresh member id does not help). The runner logs
the stall (``STALLED_JOIN``); tests stop members one at a time.
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec, TopicMetadata

from vvv_core.config import Settings
from vvv_core.errors import Fatal, Transient
from vvv_core.logs import OncePerInterval

log = logging.getLogger(__name__)
MISSING = (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC)
librdkafka_log = logging.getLogger("librdkafka")
librdkafka_log.addFilter(OncePerInterval(60.0))  # a broker that is away is said once a minute, not 20 times a second


class TopicMissing(Fatal):
    """A topic the command needs is not on the broker."""

    def __init__(self, topic: str, bootstrap: str) -> None:
        super().__init__(f"topic {topic} does not exist on {bootstrap}: create the project's topics with `vvv topics`")


class BrokerUnavailable(Fatal):
    """No broker answered at the configured address."""

    def __init__(self, bootstrap: str, detail: str = "") -> None:
        super().__init__(
            f"no Kafka broker reachable at {bootstrap}{f' ({detail})' if detail else ''}: "
            "start the embedded one with `vvv broker`, or point --bootstrap / KAFKA_BOOTSTRAP_SERVERS at yours"
        )


class TlsFailed(Fatal):
    """A broker answered, but the TLS handshake with it failed."""


class AuthenticationFailed(Fatal):
    """A broker answered, but refused the client's credentials."""


class NotAuthorised(Fatal):
    """The broker knows the client, and its ACLs do not allow what was asked."""


AUTHORISATION = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
}


def _short(err: KafkaError) -> str:
    """librdkafka's text without the broker's name before it and the connection state after it."""
    return re.sub(r"^\S+/\S+: ", "", err.str()).split(" (after ", 1)[0]


def connection_error(bootstrap: str, seen: list[KafkaError], final: KafkaError) -> Fatal:
    """Why a broker could not be used, from what the client's error callback saw: one line each."""
    codes = {e.code(): e for e in seen}
    if (err := codes.get(KafkaError._SSL)) is not None:
        return TlsFailed(
            f"TLS with the broker at {bootstrap} failed ({_short(err)}): check the ssl.* settings "
            "(e.g. VVV_KAFKA_SSL_CA_LOCATION) and that this listener speaks TLS"
        )
    if (err := codes.get(KafkaError._AUTHENTICATION) or codes.get(KafkaError.SASL_AUTHENTICATION_FAILED)) is not None:
        return AuthenticationFailed(
            f"the broker at {bootstrap} refused the client's credentials ({_short(err)}): check the sasl.* "
            "settings (e.g. VVV_KAFKA_SASL_USERNAME, VVV_KAFKA_SASL_PASSWORD_FILE)"
        )
    if (err := codes.get(KafkaError._TRANSPORT)) is not None:
        return BrokerUnavailable(bootstrap, _short(err))
    return BrokerUnavailable(bootstrap, final.str())


def not_authorised(err: KafkaError, what: str) -> NotAuthorised:
    return NotAuthorised(f"not authorised to {what} ({err.str()}): the broker's ACLs must allow it for this client")


# For short-lived local runs (tests, benchmarks): tansu completes a classic group join only after
# session.timeout.ms / 2, so joins take 1 s instead of 3.
QUICK_JOIN = {"session.timeout.ms": "2000", "heartbeat.interval.ms": "500"}

# Passed-through settings that only one kind of client understands: librdkafka warns about
# the others, so each client gets the settings meant for it (and every general one).
CONSUMER_ONLY = (
    "group.",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "partition.assignment.strategy",
    "auto.offset.reset",
    "enable.auto.",
    "auto.commit.",
    "max.poll.interval.ms",
    "fetch.",
    "isolation.level",
    "enable.partition.eof",
    "queued.",
    "check.crcs",
)
PRODUCER_ONLY = (
    "acks",
    "request.required.acks",
    "linger.ms",
    "queue.buffering.",
    "batch.",
    "compression.",
    "enable.idempotence",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "retries",
    "message.send.",
    "max.in.flight",
    "transactional.id",
    "transaction.timeout.ms",
    "partitioner",
    "sticky.",
)


def _client_config(settings: Settings, defaults: Mapping[str, Any], role: str = "admin") -> dict[str, Any]:
    foreign = {"producer": CONSUMER_ONLY, "consumer": PRODUCER_ONLY, "admin": CONSUMER_ONLY + PRODUCER_ONLY}[role]
    return {
        **defaults,
        "bootstrap.servers": settings.bootstrap,
        "logger": librdkafka_log,
        **{k: v for k, v in settings.kafka.items() if not k.startswith(foreign)},
    }


# Keys placed as the JVM's clients place them (murmur2, what Kafka Streams and every Java producer use), so a
# video's events share a partition with what any other producer or a table keyed by video writes. librdkafka's
# default (consistent_random, CRC32) would put most videos elsewhere. Keyless records: a random partition.
PARTITIONER = "murmur2_random"


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    return _client_config(
        settings,
        {
            "enable.idempotence": True,  # retries keep each video's events in order, without repeats
            "acks": "all",
            "partitioner": PARTITIONER,
            "linger.ms": 5,
            "compression.type": "lz4",
            "allow.auto.create.topics": False,  # see ensure_topics: the project creates its topics
            **extra,
        },
        "producer",
    )


# Set broker-side under KIP-848's consumer protocol (group.consumer.*); librdkafka refuses them client-side.
CLASSIC_ONLY = ("session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy")
CONSUMER_GROUP_HEARTBEAT = 68  # the API key of KIP-848's ConsumerGroupHeartbeat


def api_keys(bootstrap: str, timeout: float = 2.0) -> set[int] | None:
    """The API keys the first answering bootstrap server advertises (ApiVersions v0), None if none answered.

    Over a plain socket: ApiVersions is answered before any authentication, but not through
    TLS, so callers use it only where the security protocol is plaintext.
    """
    request = struct.pack(">hhih", 18, 0, 1, 3) + b"vvv"  # ApiVersions v0, correlation id 1, client id "vvv"
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
                sock.settimeout(timeout)
                sock.sendall(struct.pack(">i", len(request)) + request)
                size = struct.unpack(">i", _read_exactly(sock, 4))[0]
                body = _read_exactly(sock, size)
        except (OSError, ValueError, struct.error):
            continue
        _correlation, error, count = struct.unpack_from(">ihi", body)
        if error == 0:
            return {struct.unpack_from(">h", body, 10 + 6 * i)[0] for i in range(count)}
    return None


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ValueError("connection closed")
        data += chunk
    return data


def group_protocol(settings: Settings) -> str:
    """``consumer`` (KIP-848: incremental, no stop-the-world rebalances) or ``classic``.

    ``auto`` picks by what the broker does: the consumer protocol where the broker advertises
    ConsumerGroupHeartbeat (Apache Kafka 4), the classic one where it does not (tansu 0.6,
    older brokers) or cannot be asked over a plain socket (TLS listeners: set it explicitly).
    """
    if settings.group_protocol != "auto":
        return settings.group_protocol
    plain = settings.kafka.get("security.protocol", "plaintext").lower() in ("plaintext", "sasl_plaintext")
    keys = api_keys(settings.bootstrap) if plain else None
    return "consumer" if keys and CONSUMER_GROUP_HEARTBEAT in keys else "classic"


def consumer_config(settings: Settings, group: str, protocol: str = "classic", **extra: Any) -> dict[str, Any]:
    config = _client_config(
        settings,
        {
            "group.id": settings.group_id(group),
            "enable.auto.commit": False,  # offsets are committed by the runtime, after results are durable
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            # what a transaction aborted never reaches a group; librdkafka's default, said where it is relied on
            "isolation.level": "read_committed",
            "enable.partition.eof": True,  # how --until-idle knows a partition is drained
            "fetch.wait.max.ms": 10,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1500,
            "partition.assignment.strategy": "roundrobin",
            "allow.auto.create.topics": False,
            "topic.metadata.refresh.interval.ms": 10_000,  # a recreated topic is noticed within 10 s
            **extra,
        },
        "consumer",
    )
    if protocol == "consumer":
        for name in CLASSIC_ONLY:
            config.pop(name, None)
        config["group.protocol"] = "consumer"
    return config


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` (a 32-bit MurmurHash2, seed 0x9747b28c) as an unsigned 32-bit value."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    h = 0x9747B28C ^ len(data)
    whole = len(data) - len(data) % 4
    for (k,) in struct.iter_unpack("<I", data[:whole]):
        k = (k * m) & mask
        k ^= k >> 24
        h = ((h * m) & mask) ^ ((k * m) & mask)
    tail = data[whole:]
    if tail:
        for i in reversed(range(len(tail))):
            h ^= tail[i] << (8 * i)
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    return h ^ (h >> 15)


def java_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's Java producer (and librdkafka's ``murmur2_random``) gives ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def admin(settings: Settings, **extra: Any) -> AdminClient:
    return AdminClient(_client_config(settings, extra))


# For clients that live for one short call (the hook, start-up checks): librdkafka replaces its
# bootstrap connection with one to the broker it learns of, and holds every new connection back
# for half of reconnect.backoff.ms (100 ms by default), so a fresh client's first request took
# 60 ms on loopback; 20 ms. Reconnecting to a broker that is away still backs off exponentially.
FAST_START = {"reconnect.backoff.ms": 20}


def check_broker(settings: Settings, timeout: float = 5.0) -> AdminClient:
    """An admin client for a broker known to answer, or the reason it cannot be used (one line)."""
    seen: list[KafkaError] = []
    # librdkafka's own log line would say the same as the one error raised here, less clearly
    client = admin(settings, error_cb=seen.append, log_level=2, **FAST_START)
    deadline = time.monotonic() + timeout
    while True:  # in short waits: once librdkafka has tried every broker and found none, that is the answer
        try:
            client.list_topics(timeout=max(0.01, min(0.25, deadline - time.monotonic())))
            return client
        except KafkaException as exc:
            client.poll(0)  # serves the error callback, which says why
            if time.monotonic() >= deadline or any(e.code() == KafkaError._ALL_BROKERS_DOWN for e in seen):
                client.poll(0.2)
                raise connection_error(settings.bootstrap, seen, exc.args[0]) from None


def require_topics(
    client: Producer, settings: Settings, topics: list[str], seen: Iterable[KafkaError], timeout: float
) -> None:
    """Make sure ``topics`` exist, asking over ``client``'s own connection: a fresh process that finds
    them there (the usual case) opens no second connection. ``seen`` is what its error callback got."""
    try:
        metadata = client.list_topics(timeout=timeout)
    except KafkaException as exc:
        client.poll(0.2)  # serves the error callback, which says why
        raise connection_error(settings.bootstrap, list(seen), exc.args[0]) from None
    if any(t not in metadata.topics or metadata.topics[t].error is not None for t in topics):
        ensure_project_topics(check_broker(settings, timeout), settings, [], timeout)


def ensure_topics(
    client: AdminClient,
    settings: Settings,
    topics: Iterable[str],
    timeout: float = 10.0,
    config: Mapping[str, str] | None = None,
) -> None:
    """Create missing topics with the configured partition count (and topic ``config``); leave existing ones.

    Partition counts are final: tansu cannot add partitions later, and on Apache Kafka adding
    them would move keys, breaking each video's ordering. So no client asks the broker to
    auto-create a topic (``allow.auto.create.topics=false``): a broker would give it its own
    default count (tansu: 4; Apache Kafka: ``num.partitions``), e.g. after tansu restarts empty.
    """
    wanted = [
        NewTopic(t, settings.partitions, settings.replication_factor, config=dict(config or {}))
        for t in dict.fromkeys(topics)
    ]
    if not wanted:
        return
    for topic, future in client.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result(timeout)
            log.info("created topic %s with %d partitions", topic, settings.partitions)
        except KafkaException as exc:
            if exc.args[0].code() in AUTHORISATION:
                raise not_authorised(exc.args[0], f"create topic {topic}") from None
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def _reader(
    settings: Settings, topic: str, start: Mapping[int, int] | None, timeout: float, **extra: Any
) -> tuple[Consumer, TopicMetadata]:
    """A consumer outside any group, assigned every partition of ``topic`` from ``start`` (or the beginning)."""
    consumer = Consumer(
        _client_config(
            settings,
            {
                "group.id": "vvv-reader",  # needed by librdkafka; nothing is committed
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 10,
                **extra,
            },
            "consumer",
        )
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics[topic]
        start = start or {}
        consumer.assign([TopicPartition(topic, p, start.get(p, OFFSET_BEGINNING)) for p in metadata.partitions])
    except BaseException:
        consumer.close()
        raise
    return consumer, metadata


def read_topic(
    settings: Settings,
    topic: str,
    timeout: float = 10.0,
    start: Mapping[int, int] | None = None,
    isolation: str = "read_committed",
) -> list[Message]:
    """Every record now on ``topic``, partition by partition, read without a consumer group.

    The end of each partition is taken from partition-EOF events (the high watermark a fetch
    returns), which both Apache Kafka and tansu report correctly.
    """
    consumer, metadata = _reader(settings, topic, start, timeout, **{"isolation.level": isolation})
    try:
        if metadata.error is not None:
            if metadata.error.code() in MISSING:
                raise TopicMissing(topic, settings.bootstrap)
            if metadata.error.code() in AUTHORISATION:
                raise not_authorised(metadata.error, f"read topic {topic}")
            raise KafkaException(metadata.error)
        pending, records = set(metadata.partitions), []
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise Transient(f"could not read {topic} to its end within {timeout} s")
            for msg in consumer.consume(1000, 0.2):
                if msg.error() is None:
                    records.append(msg)
                elif msg.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                else:
                    raise KafkaException(msg.error())
        return records
    finally:
        consumer.close()


def ensure_project_topics(
    client: AdminClient, settings: Settings, groups: Iterable[str], timeout: float = 10.0, stateful: Iterable[str] = ()
) -> list[str]:
    """The event, results and table topics, the dead-letter topics of ``groups`` and the changelogs of the
    ``stateful`` ones, created if missing; their names.

    Dead-letter topics take records as large as any the project keeps whole, with their key and headers. The
    table and the changelogs are compacted (each key's latest value is kept); a changelog has the input's
    partition count, like every topic here: a change goes to the partition of the input message it came from.
    """
    events = [settings.videos_topic, settings.stale_topic, settings.results_topic]
    dead_letters = [settings.dead_letter_topic(g) for g in groups]
    compacted = [settings.table_topic] + [settings.changelog_topic(g) for g in stateful]
    ensure_topics(client, settings, events, timeout)
    ensure_topics(
        client, settings, dead_letters, timeout, config={"max.message.bytes": str(settings.dead_letter_bytes)}
    )
    ensure_topics(client, settings, compacted, timeout, config={"cleanup.policy": "compact"})
    return events + dead_letters + compacted


def committed_offsets(settings: Settings, group_id: str, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """The group's committed offset per partition of ``topic`` (partitions never committed left out).

    Asked through a consumer's OffsetFetch for named partitions: tansu never answers the admin
    API's "all partitions of the group" form when some partitions were never committed.
    """
    consumer = Consumer(_client_config(settings, {"group.id": group_id, "enable.auto.commit": False}, "consumer"))
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        answer = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout)
        return {tp.partition: tp.offset for tp in answer if tp.offset >= 0}
    finally:
        consumer.close()


# Per bootstrap: does ListOffsets agree with the high watermarks fetches report? (Apache Kafka: yes; tansu: no)
LIST_OFFSETS_AGREE: dict[str, bool] = {}


def watermarks(
    settings: Settings, topic: str, start: Mapping[int, int] | None = None, timeout: float = 10.0
) -> dict[int, tuple[int, int]]:
    """(low, high) watermark per partition of ``topic``; a partition with no answer in time is left out.

    The standard way is ListOffsets. tansu answers its "latest" wrongly, but every fetch response
    carries the right high watermark. So the first time for a broker both are asked and
    compared; from then on ListOffsets alone where they agreed, a fetch where they did not.
    """
    agree = LIST_OFFSETS_AGREE.get(settings.bootstrap)
    if agree and start is None:
        return _listed_offsets(settings, topic, timeout)
    fetched = _fetched_watermarks(settings, topic, start, timeout)
    if agree is None and start is None and any(high for _low, high in fetched.values()):
        LIST_OFFSETS_AGREE[settings.bootstrap] = _listed_offsets(settings, topic, timeout) == fetched
    return fetched


def _listed_offsets(settings: Settings, topic: str, timeout: float) -> dict[int, tuple[int, int]]:
    """(low, high) per partition as ListOffsets (earliest, latest) answers."""
    consumer, metadata = _reader(settings, topic, None, timeout)
    try:
        found = {}
        for p in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False)
            if high >= 0:
                found[p] = (max(low, 0), high)
        return found
    finally:
        consumer.close()


def _fetched_watermarks(
    settings: Settings, topic: str, start: Mapping[int, int] | None, timeout: float
) -> dict[int, tuple[int, int]]:
    """(low, high) per partition as a fetch from ``start`` (or the beginning) reports them."""
    consumer, metadata = _reader(settings, topic, start, timeout, **{"max.partition.fetch.bytes": 65536})
    partitions = list(metadata.partitions)
    try:
        found: dict[int, tuple[int, int]] = {}
        deadline = time.monotonic() + timeout
        while len(found) < len(partitions) and time.monotonic() < deadline:
            consumer.consume(500, 0.05)
            for p in set(partitions) - set(found):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)
                if high >= 0:
                    found[p] = (max(low, 0), high)
        return found
    finally:
        consumer.close()


def group_members(
    settings: Settings, group_ids: list[str], timeout: float = 2.0
) -> dict[str, dict[str, list[int]] | None]:
    """The members of each group, as ``client_id@host``, with the partitions each owns; None where the
    broker named none or did not answer.

    Apache Kafka names them; tansu answers at once but never names any.
    """
    client = admin(settings)  # kept until the answers are in: a client collected early never completes them
    return _described_members(client, group_ids, timeout)


def _described_members(
    client: AdminClient, group_ids: list[str], timeout: float
) -> dict[str, dict[str, list[int]] | None]:
    futures = client.describe_consumer_groups(group_ids, request_timeout=timeout)
    concurrent.futures.wait(futures.values(), timeout + 0.5)
    members: dict[str, dict[str, list[int]] | None] = {}
    for group_id, future in futures.items():
        if not future.done() or future.exception() is not None:
            members[group_id] = None
            continue
        members[group_id] = {
            f"{m.client_id}@{m.host}": sorted(tp.partition for tp in m.assignment.topic_partitions)
            for m in future.result().members
        } or None

    return members


def offsets_for_time(
    settings: Settings, topic: str, at_ms: int, marks: Mapping[int, tuple[int, int]], timeout: float = 10.0
) -> dict[int, int] | None:
    """The broker's answer (ListOffsets by time) per partition: the first offset at or after ``at_ms``."""
    consumer = Consumer(_client_config(settings, {"group.id": "vvv-reader", "enable.auto.commit": False}, "consumer"))
    try:
        answer = consumer.offsets_for_times([TopicPartition(topic, p, at_ms) for p in marks], timeout=timeout)
    except KafkaException:
        return None
    finally:
        consumer.close()
    if any(tp.error is not None for tp in answer):
        return None
    return {tp.partition: marks[tp.partition][1] if tp.offset < 0 else tp.offset for tp in answer}


def first_at_or_after(
    settings: Settings, topic: str, at_ms: int, offsets: Mapping[int, int], marks: Mapping[int, tuple[int, int]]
) -> bool:
    """Whether each offset is right: its record is at or after ``at_ms``, the one before it earlier."""
    starts = {p: max(low, offsets[p] - 1) for p, (low, _high) in marks.items() if low < marks[p][1]}
    if not starts:
        return True
    seen: dict[int, list[tuple[int, int]]] = {p: [] for p in starts}
    consumer, _metadata = _reader(settings, topic, starts, 10.0)
    try:  # two records of each partition at the most, not the rest of the topic
        pending, deadline = set(starts), time.monotonic() + 10.0
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(100, 0.2):
                p = msg.partition()
                if p not in pending:  # an empty partition (assigned all the same), or one seen enough of
                    continue
                if msg.error() is None and len(seen[p]) < 2:
                    seen[p].append((msg.offset(), msg.timestamp()[1]))
                if len(seen[p]) == 2 or (msg.error() is not None and msg.error().code() == KafkaError._PARTITION_EOF):
                    pending.discard(p)
    finally:
        consumer.close()
    if pending:
        return False
    for p, records in seen.items():
        for offset, timestamp in records:
            if (offset >= offsets[p]) != (timestamp >= at_ms):
                return False
    return True


Partition = tuple[str, int]  # (topic, partition)
# A group's coordinator not there yet (loading on a fresh Apache Kafka) or moved: asked again, not a failure.
LEADER_MOVING = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
}
COORDINATOR_MOVING = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
}


class Readers:
    """Clients kept open to look at the broker again and again (the console): one admin client, one consumer
    outside any group, and one consumer per group asked about (never subscribed: it only reads the group's
    committed offsets), closed by ``close()``. ``vvv status`` opens a set for its one look.

    A look asks about every topic at once: ``ends`` and ``read`` each take one fetch round for all the topics
    named (tansu holds every fetch for its wait, so a round per topic would add up), and between rounds the
    consumer holds no partition, so an idle set fetches nothing. Looks take turns (one lock): one consumer
    serves one assignment at a time. ``asked`` counts the requests sent, by kind (what a test counts)."""

    def __init__(self, settings: Settings, timeout: float = 5.0) -> None:
        self.settings, self.timeout = settings, timeout
        self.asked: Counter[str] = Counter()
        self._seen: deque[KafkaError] = deque(maxlen=20)  # what the error callback said since the last look
        self._admin = admin(settings, error_cb=self._seen.append, log_level=2)
        self._consumer = Consumer(
            _client_config(
                settings,
                {
                    "group.id": "vvv-reader",  # needed by librdkafka; nothing is committed
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    "fetch.wait.max.ms": 2,  # a round reads what is there: a partition at its end answers soon
                    "max.partition.fetch.bytes": 65536,
                    "queued.max.messages.kbytes": 1024,  # fetched ahead per partition before a round ends
                    "log_level": 2,  # a broker away is said by the look that fails (the admin client's reason)
                },
                "consumer",
            )
        )
        self._lock = threading.Lock()
        self._highs: dict[Partition, int] = {}  # each partition's high watermark at the last look
        self._groups: dict[str, Consumer] = {}  # group id -> a consumer of it that asks its committed offsets
        self.closed = False

    def __enter__(self) -> Readers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for consumer in [self._consumer, *self._groups.values()]:
            consumer.close()
        self.closed = True

    def topics(self) -> dict[str, TopicMetadata]:
        """Every topic the broker has (one metadata request): also the check that it answers, and why not."""
        with self._lock:
            return self._topics()

    def _topics(self) -> dict[str, TopicMetadata]:
        self.asked["metadata"] += 1
        self._seen.clear()
        try:
            return self._admin.list_topics(timeout=self.timeout).topics
        except KafkaException as exc:
            self._admin.poll(0.2)  # serves the error callback, which says why
            raise connection_error(self.settings.bootstrap, list(self._seen), exc.args[0]) from None

    def ends(self, starts: Mapping[str, Mapping[int, int] | None]) -> dict[str, dict[int, tuple[int, int]]]:
        """(low, high) watermark per partition of each topic (as ``watermarks``: ListOffsets where the broker
        answers it as its fetches do, else a fetch from the topic's ``starts``); a topic the broker does not
        have answers {}, a partition with no answer in time is left out."""
        with self._lock:
            topics = self._topics()
            wanted = {
                (topic, p): (start or {}).get(p, OFFSET_BEGINNING)
                for topic, start in starts.items()
                if topic in topics and topics[topic].error is None
                for p in topics[topic].partitions
            }
            agree = LIST_OFFSETS_AGREE.get(self.settings.bootstrap)
            if agree:
                found = self._listed(wanted)
            else:  # from where the last look found the end, if later: what came since is all it fetches
                found = self._round({tp: max(at, self._highs.get(tp, at)) for tp, at in wanted.items()}, False)[1]
                if agree is None and any(high for _low, high in found.values()):
                    LIST_OFFSETS_AGREE[self.settings.bootstrap] = self._listed(wanted) == found
            self._highs.update((tp, high) for tp, (_low, high) in found.items())
        answer: dict[str, dict[int, tuple[int, int]]] = {topic: {} for topic in starts}
        for (topic, p), marks in sorted(found.items()):
            answer[topic][p] = marks
        return answer

    def read(self, starts: Mapping[str, Mapping[int, int] | None]) -> dict[str, list[Message]]:
        """Every record now on each topic from its ``starts`` (or the beginning), partition by partition."""
        with self._lock:
            topics = self._topics()
            for topic in starts:
                _require(topics.get(topic), topic, self.settings.bootstrap)
            wanted = {
                (topic, p): (start or {}).get(p, OFFSET_BEGINNING)
                for topic, start in starts.items()
                for p in topics[topic].partitions
            }
            records = self._round(wanted, whole=True)[0]
        return {topic: [m for (t, _p), got in sorted(records.items()) if t == topic for m in got] for topic in starts}

    def read_partitions(self, starts: Mapping[Partition, int], most: int) -> dict[Partition, list[Message]]:
        """The records of each partition from its start (an offset), to its end or ``most`` records, whichever
        comes first: one fetch round for all (a video's timeline reads its partition of each topic)."""
        with self._lock:
            return self._round(starts, whole=True, most=most)[0]

    def offsets_for_times(self, wanted: Mapping[Partition, int]) -> dict[Partition, int | None]:
        """The broker's time index (ListOffsets by time, one request for all): per partition, the first offset
        whose record is at or after the time in ms; -1 where none is; None where it did not answer. Not to be
        trusted unseen: the embedded broker answers it wrongly (see ``first_at_or_after``)."""
        with self._lock:
            if not wanted:
                return {}
            self.asked["list offsets"] += 1
            asked = self._admin.list_offsets(
                {TopicPartition(t, p): OffsetSpec.for_timestamp(ms) for (t, p), ms in wanted.items()},
                request_timeout=self.timeout,
            )
            found: dict[Partition, int | None] = {}
            for tp, future in asked.items():
                try:
                    found[(tp.topic, tp.partition)] = future.result(self.timeout + 1).offset
                except KafkaException:
                    found[(tp.topic, tp.partition)] = None
            return found

    def committed(self, groups: Mapping[str, str]) -> dict[str, dict[int, int]]:
        """Each group's committed offset per partition of its topic (``groups``: group id -> topic; partitions
        never committed left out), asked for named partitions through a consumer of that group, as
        ``committed_offsets`` does (kept open too, one per group). Not through the admin client: its
        OffsetFetch answered NOT_COORDINATOR (a group's coordinator still loading, as on a fresh Apache Kafka)
        crashes librdkafka (a segfault, seen here; confluent-kafka-javascript#374)."""
        with self._lock:
            topics = self._topics()
            answer: dict[str, dict[int, int]] = {group_id: {} for group_id in groups}
            for group_id, topic in groups.items():
                if topic not in topics or not topics[topic].partitions:
                    continue
                if group_id not in self._groups:
                    config = {"group.id": group_id, "enable.auto.commit": False, "log_level": 2}
                    self._groups[group_id] = Consumer(_client_config(self.settings, config, "consumer"))
                named = [TopicPartition(topic, p) for p in topics[topic].partitions]
                for tp in self._committed(group_id, named):
                    if tp.error is None and tp.offset >= 0:
                        answer[group_id][tp.partition] = tp.offset
        return answer

    def _committed(self, group_id: str, named: list[TopicPartition]) -> list[TopicPartition]:
        """Asked again while the broker says to (a coordinator still loading or moving), until the timeout."""
        deadline = time.monotonic() + self.timeout
        while True:
            self.asked["committed"] += 1
            try:
                return self._groups[group_id].committed(named, timeout=self.timeout)
            except KafkaException as exc:
                again = exc.args[0].retriable() or exc.args[0].code() in COORDINATOR_MOVING
                if not again or time.monotonic() > deadline:
                    raise Transient(f"no committed offsets of group {group_id}: {exc.args[0].str()}") from None
                time.sleep(0.1)

    def members(self, group_ids: list[str]) -> dict[str, dict[str, list[int]] | None]:
        """As ``group_members``, through this set's admin client."""
        with self._lock:
            self.asked["members"] += 1
            return _described_members(self._admin, group_ids, self.timeout)

    def _listed(self, wanted: Mapping[Partition, int]) -> dict[Partition, tuple[int, int]]:
        """(low, high) per partition as ListOffsets (earliest, latest) answers: one request per spec for all;
        asked again while the broker says to (a partition whose leader is still being elected, as just after
        the topic is made on Apache Kafka), until the timeout."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return self._list_offsets(wanted)
            except KafkaException as exc:
                again = exc.args[0].retriable() or exc.args[0].code() in LEADER_MOVING
                if not again or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _list_offsets(self, wanted: Mapping[Partition, int]) -> dict[Partition, tuple[int, int]]:
        if not wanted:
            return {}
        asked = {}
        for name, spec in (("low", OffsetSpec.earliest()), ("high", OffsetSpec.latest())):
            self.asked["list offsets"] += 1
            asked[name] = self._admin.list_offsets(
                {TopicPartition(t, p): spec for t, p in wanted},
                isolation_level=IsolationLevel.READ_COMMITTED,
                request_timeout=self.timeout,
            )
        low = {(tp.topic, tp.partition): f.result(self.timeout + 1).offset for tp, f in asked["low"].items()}
        high = {(tp.topic, tp.partition): f.result(self.timeout + 1).offset for tp, f in asked["high"].items()}
        return {tp: (max(low[tp], 0), high[tp]) for tp in wanted if high[tp] >= 0}

    def _round(
        self, starts: Mapping[Partition, int], whole: bool, most: int | None = None
    ) -> tuple[dict[Partition, list[Message]], dict[Partition, tuple[int, int]]]:
        """One fetch round: every partition assigned at its start, consumed until each has answered (``whole``:
        until its end, or ``most`` records), then unassigned. The watermarks each reported with its first answer,
        and what was read.

        A partition's first answer (a record or its end) comes from a fetch made in this round, so the watermark
        cached with it is this round's. Errors not about a partition of the round (a broker that was away
        between looks) are not this round's failure."""
        records: dict[Partition, list[Message]] = {tp: [] for tp in starts}
        marks: dict[Partition, tuple[int, int]] = {}
        if not starts:
            return records, marks
        self.asked["fetch"] += 1
        pending = set(starts)
        self._consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in starts.items()])
        try:
            deadline = time.monotonic() + self.timeout
            while pending and time.monotonic() < deadline:
                for msg in self._consumer.consume(1000, 0.005):  # returns once its wait is up, full or not
                    tp, error = (msg.topic(), msg.partition()), msg.error()
                    if tp not in pending:
                        continue
                    if error is not None and error.code() != KafkaError._PARTITION_EOF:
                        if error.retriable():
                            continue
                        raise KafkaException(error)
                    if error is None and whole:
                        records[tp].append(msg)
                        if len(records[tp]) == most:
                            pending.discard(tp)
                    if tp not in marks:
                        low, high = self._consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
                        if high >= 0:
                            marks[tp] = (max(low, 0), high)
                    if error is not None or not whole:
                        pending.discard(tp)
        finally:
            self._consumer.unassign()
        if pending and whole:
            topics = ", ".join(sorted({t for t, _p in pending}))
            raise Transient(f"could not read {topics} to its end within {self.timeout} s")
        return records, marks


def _require(metadata: TopicMetadata | None, topic: str, bootstrap: str) -> None:
    """A topic's metadata without an error, or why not (as ``read_topic`` says it)."""
    if metadata is None or (metadata.error is not None and metadata.error.code() in MISSING):
        raise TopicMissing(topic, bootstrap)
    if metadata.error is not None:
        if metadata.error.code() in AUTHORISATION:
            raise not_authorised(metadata.error, f"read topic {topic}")
        raise KafkaException(metadata.error)
