"""The consumer runtime shared by every group: poll, decode, work, store, publish, commit.

One loop per process, in this order, which is what makes it at-least-once:

1. poll a batch; decode and validate each message (what fails goes to the dead-letter topic);
2. hand valid events to the group's executor (inline for a batch, or concurrent);
3. checkpoint: for every finished event, write its SQLite effect in one transaction, publish
   its result (or dead letter), wait until the broker has them all, and only then commit
   each partition up to its first unfinished offset.

A crash at any point repeats work since the last commit; it never skips an event. The
group's SQLite writes are idempotent upserts, and each result carries its source event's
id, so a repeat changes nothing a reader cannot recognise.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from vvv_core import db, kafka, logs
from vvv_core.avro import DecodeError, SchemaStore
from vvv_core.config import Settings
from vvv_core.errors import OperatorError
from vvv_core.events import InvalidEvent, now_ms
from vvv_core.runtime import metrics
from vvv_core.runtime.brokerwatch import BrokerWatch
from vvv_core.runtime.deadletter import HEADER_PREFIX, dead_letter_headers
from vvv_core.runtime.group import ConsumerGroup
from vvv_core.runtime.model import Failure, Inbound, Outcome
from vvv_core.runtime.offsets import PartitionOffsets

log = logging.getLogger(__name__)

POLL_TIMEOUT = 0.1  # seconds; also how often retries and time limits are looked at
FLUSH_TIMEOUT = 10.0  # seconds the broker may take to acknowledge a checkpoint's messages
DELIVERY_ATTEMPTS = 5  # a batch whose messages the broker refused is sent again, by a new producer
TOPIC_CHECK_INTERVAL = 5.0  # seconds between attempts to recreate a vanished input topic
OBSERVE_INTERVAL = 1.0  # seconds between refreshes of the lag and other gauges
STALLED_JOIN = 60.0  # seconds waiting for an assignment before the log calls the group stuck
RESULT_NAMESPACE = "com.viralvidvault.results"
DLQ_MIN_SAMPLE = 100  # events seen before the dead-letter rate can stop the consumer


class ConsumerStopped(OperatorError):
    """The consumer stopped because continuing would lose or corrupt work; the message says why."""


class GroupRunner:
    def __init__(
        self,
        group: ConsumerGroup,
        settings: Settings,
        *,
        until_idle: float | None = None,
        schemas: SchemaStore | None = None,
    ) -> None:
        self.group = group
        self.settings = settings
        self.until_idle = until_idle
        self.schemas = schemas or SchemaStore()
        self._encode_result = self.schemas.encoder("Result")
        self._detail_type = f"{RESULT_NAMESPACE}.{group.detail_schema}"
        self._dead_letter_topic = settings.dead_letter_topic(group.name)
        self._offsets: dict[tuple[str, int], PartitionOffsets] = {}
        self._rejected: list[Outcome] = []  # dead letters from decoding, published at the next checkpoint
        self._recent_dead: deque[bool] = deque(maxlen=1000)
        self._recent_dead_count = 0  # how many of _recent_dead are True

        self._stopping = False
        self._broken = False
        self._paused = False
        self._assigned = False
        self._joining_since: float | None = None  # waiting for an assignment since then
        self._last_message = time.monotonic()
        self._in_delivery: list[_InDelivery] = []
        self._topics_checked = 0.0
        self.metrics = metrics.Metrics(group.name)
        self.log = logs.ContextLog(log, {"group": group.name})
        self._broker = BrokerWatch(settings.bootstrap, settings.broker_timeout, self.log)
        self._observed = 0.0
        self._retries_seen = 0
        self._waited_seen = 0.0
        self._resubscribe = False

        self._total_partitions = settings.partitions
        self.processed = 0
        self.dead_lettered = 0

    def stop(self) -> None:
        """Ask the loop to stop gracefully (safe from a signal handler or another thread)."""
        self._stopping = True

    @property
    def owned(self) -> list[tuple[str, int]]:
        """The partitions this member owns now."""
        return list(self._offsets)

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        group, settings = self.group, self.settings
        db.wait_out_lock(group.prepare, "creating tables", lambda: self._stopping)
        topic = group.input_topic()
        client = kafka.check_broker(settings)
        kafka.ensure_project_topics(client, settings, [group.name])

        # First what can fail without leaving anything behind (a port in use): a consumer that is
        # never closed blocks the interpreter's exit (rd_kafka_destroy from the garbage collector).
        stop_serving = metrics.serve(self.metrics, settings.metrics_port) if settings.metrics_port else None
        self._protocol = kafka.group_protocol(settings)
        self._executor = group.executor()
        self._producer = self._new_producer()
        self._consumer: Consumer | None = None

        self._subscribe()
        self.log.info(
            "%s: consuming %s as group %s (%s group protocol)",
            group.name,
            topic,
            settings.group_id(group.name),
            self._protocol,
        )
        try:
            while not self._stopping:
                if self._resubscribe:
                    self._subscribe()
                messages = self._fetch()
                if self._assignment_changed:
                    self._take_assignment()
                self._accept(messages)
                self._checkpoint()
                self._backpressure()
                self._observe()
                self._broker.check(lambda timeout: self._consumer.list_topics(timeout=timeout))
                if self._idle():
                    self.log.info("%s: idle for %.1f s with everything consumed: stopping", group.name, self.until_idle)
                    break
            self.metrics.ready = False
            self._drain()
        except BaseException:
            self._broken = True  # nothing more is committed: what was not, is redelivered
            raise
        finally:
            if stop_serving is not None:
                stop_serving()
            self._executor.close()
            self.group.close()
            self._consumer.close()  # leaves the group at once, so the others take over without waiting
            self._producer.flush(5)
        self.log.info("%s: stopped after %d events (%d dead-lettered)", group.name, self.processed, self.dead_lettered)

    def _subscribe(self) -> None:
        """Join the group with a new consumer, also after the input topic was recreated.

        A new consumer, because an old one can stay stuck on what it knew: librdkafka's assignor
        keeps treating a topic it once saw missing as missing (tansu restarted empty), and a
        KIP-848 member whose group vanished is failed for good (Apache Kafka restarted empty).
        Every topic it writes to is checked too.
        """
        self._resubscribe = False
        self._assignment_changed = False
        self._joining_since = time.monotonic()
        if getattr(self, "_consumer", None) is not None:
            self.log.warning("%s: joining the group again with a new consumer", self.group.name)
            self._consumer.close()
            self._topics_checked = 0.0
            self._recreate_topics("rejoining")
        self._consumer = Consumer(
            kafka.consumer_config(self.settings, self.group.name, self._protocol, error_cb=self._broker.on_error)
        )
        self._consumer.subscribe(
            [self.group.input_topic()], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def _new_producer(self) -> Producer:
        settings = self.settings
        extra = {
            "message.timeout.ms": int(FLUSH_TIMEOUT * 1000),
            "message.max.bytes": settings.max_message_bytes + 64 * 1024,  # room for headers
            "error_cb": self._broker.on_error,
        }
        if not settings.exactly_once:
            return Producer(kafka.producer_config(settings, **extra))
        # One transactional id per member: zombies are fenced by the group's generation (KIP-447).
        extra["transactional.id"] = f"{settings.group_id(self.group.name)}-{uuid.uuid4().hex[:12]}"
        producer = Producer(kafka.producer_config(settings, **extra))
        producer.init_transactions(FLUSH_TIMEOUT)
        return producer

    def _fetch(self) -> list[Message]:
        """Up to a batch: wait for the first message only, then take what is already fetched."""
        first = self._consumer.poll(POLL_TIMEOUT)
        if first is None:
            return []
        return [first, *self._consumer.consume(self.settings.batch_size - 1, 0)]

    def _accept(self, messages: list[Message]) -> None:
        valid = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    if offsets := self._offsets.get((msg.topic(), msg.partition())):
                        offsets.eof = True
                elif err.fatal() or err.code() == KafkaError._FATAL:
                    # The client is unusable (e.g. its group vanished with a broker restarted empty): a new
                    # one rejoins; what was not committed is redone.
                    self.log.warning("%s: consumer failed for good (%s): replacing it", self.group.name, err.str())
                    self._resubscribe = True
                elif err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
                    self._recreate_topics(err.str())
                else:
                    self.log.warning("%s: consumer error: %s", self.group.name, err.str())
                continue
            offsets = self._offsets.get((msg.topic(), msg.partition()))
            if offsets is None:
                continue  # from a partition revoked since it was fetched
            offsets.take(msg.offset())
            key, value = msg.key(), msg.value()
            try:
                event = self.group.parse_event(self.schemas.decode(value, self.group.event_schema))
                if key != event.video_id.encode():
                    raise InvalidEvent(f"key {key!r:.40} does not match video_id {event.video_id!r}")
            except (DecodeError, InvalidEvent) as exc:
                item = Inbound(msg.topic(), msg.partition(), msg.offset(), key, value, msg.headers())
                self._judge_dead_letter_rate([True])  # raises before this one is published or committed
                self.log.warning(
                    "%s: dead-lettering %s/%d@%d: %s",
                    self.group.name,
                    *_where(item),
                    exc,
                    extra=logs.where(self.group.name, *_where(item)),
                )
                self._rejected.append(Outcome(item, failure=Failure.of(exc)))
                continue
            self._judge_dead_letter_rate([False])

            valid.append(Inbound(msg.topic(), msg.partition(), msg.offset(), key, value, msg.headers(), event))
        if messages:
            self._last_message = time.monotonic()
            self.metrics.consumed.labels(self.group.name).inc(sum(m.error() is None for m in messages))

        self._executor.submit(valid)

    def _checkpoint(self, sync: bool = False, in_callback: bool = False) -> None:
        """Make finished work durable (SQLite, then the broker), then commit past it.

        SQLite is written at once; the batch's results and dead letters are then in flight
        to the broker, and its offsets count as finished only when every one of them is
        acknowledged. Meanwhile the loop goes on with the next batch. ``sync`` waits for
        all acknowledgements and commits synchronously (shutdown), or, ``in_callback`` of the
        consumer (revocation), asynchronously: librdkafka completes the revocation only after
        commits under way, and a blocking call on a consumer from inside its own callback
        leaves confluent-kafka's call state broken (an abort in the next callback of that poll,
        seen with KIP-848, where one poll can serve several).
        """
        outcomes, self._rejected = self._rejected + self._executor.take_completed(), []
        outcomes = [o for o in outcomes if (o.inbound.topic, o.inbound.partition) in self._offsets]
        if outcomes:
            started = time.perf_counter()
            results = [o for o in outcomes if o.failure is None]
            if results:
                db.write_with_retry(self.group.conn, self.group.store, results, stopping=lambda: self._stopping)
            if self.settings.exactly_once:
                self._commit_in_transaction(outcomes)
                return
            batch = _InDelivery(outcomes)
            self._in_delivery.append(batch)
            for outcome in outcomes:
                self._publish(outcome, batch.acknowledge)
            self.metrics.batch_seconds.labels(self.group.name).observe(time.perf_counter() - started)
        if sync:
            self._producer.flush(FLUSH_TIMEOUT)
        else:
            self._producer.poll(0)  # serves delivery callbacks
        self._finish_delivered()
        if sync and self._in_delivery:
            raise ConsumerStopped(
                f"the broker did not acknowledge {sum(b.remaining for b in self._in_delivery)} result messages "
                f"within {FLUSH_TIMEOUT:g} s: stopping without committing them; they are processed again on restart"
            )
        self._commit(wait=sync and not in_callback)

    def _finish_delivered(self) -> None:
        for batch in [b for b in self._in_delivery if b.remaining == 0]:
            self._in_delivery.remove(batch)
            if batch.error is not None:
                self._deliver_again(batch)  # replaces every batch in flight
                return

            for outcome in batch.outcomes:
                if offsets := self._offsets.get((outcome.inbound.topic, outcome.inbound.partition)):
                    offsets.finish(outcome.inbound.offset)
            self._count(batch.outcomes)

    def _commit_in_transaction(self, outcomes: list[Outcome]) -> None:
        """Exactly-once for the results topic: results, dead letters and offsets in one transaction.

        Readers with ``isolation.level=read_committed`` see each result once. SQLite is written
        before the transaction; a transaction that fails is redone, and the SQLite upserts with it.
        """
        failed: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failed.append(err.str())

        self._producer.begin_transaction()
        for outcome in outcomes:
            self._publish(outcome, on_delivery)
        for outcome in outcomes:
            self._offsets[(outcome.inbound.topic, outcome.inbound.partition)].finish(outcome.inbound.offset)
        positions = [(tp, off) for tp, o in self._offsets.items() if (off := o.committable()) is not None]
        try:
            self._producer.send_offsets_to_transaction(
                [TopicPartition(t, p, off) for (t, p), off in positions],
                self._consumer.consumer_group_metadata(),
                FLUSH_TIMEOUT,
            )
            self._producer.commit_transaction(FLUSH_TIMEOUT)
            if failed:
                raise KafkaException(KafkaError(KafkaError._FAIL, failed[0]))
        except KafkaException as exc:
            with contextlib.suppress(KafkaException):
                self._producer.abort_transaction(FLUSH_TIMEOUT)
            raise ConsumerStopped(
                f"transaction failed ({exc.args[0].str()}): stopping; the batch is processed again on restart"
            ) from None
        for tp, off in positions:
            self._offsets[tp].committed = off
        self._count(outcomes)

    def _deliver_again(self, failed: _InDelivery) -> None:
        """After a refused batch, send everything still in flight again with a new producer.

        SQLite effects are already durable; a repeated result is harmless. A new producer,
        because an idempotent one never recovers once the broker has forgotten its producer id
        (tansu after a restart) or fenced it. The old producer's late callbacks update batches
        no longer watched.
        """
        if failed.attempt >= DELIVERY_ATTEMPTS:
            raise ConsumerStopped(
                f"the broker refused result messages {failed.attempt} times ({failed.error}): stopping without "
                "committing them; they are processed again on restart"
            )
        self._recreate_topics(f"result messages refused ({failed.error})")  # perhaps the topics are gone
        pending = [failed, *self._in_delivery]
        self.log.warning(
            "%s: the broker refused result messages (%s): sending %d again with a new producer",
            self.group.name,
            failed.error,
            sum(len(b.outcomes) for b in pending),
        )
        old, self._producer, self._in_delivery = self._producer, self._new_producer(), []
        old.purge(in_queue=True, in_flight=True)
        old.poll(0)
        for batch in pending:
            retry = _InDelivery(batch.outcomes, failed.attempt + 1)
            self._in_delivery.append(retry)
            for outcome in batch.outcomes:
                self._publish(outcome, retry.acknowledge)

    def _recreate_topics(self, why: str) -> bool:
        """A topic is gone (a broker restarted with empty storage, or someone deleted it): make it again.

        False when it was tried less than ``TOPIC_CHECK_INTERVAL`` ago.
        """
        if time.monotonic() - self._topics_checked < TOPIC_CHECK_INTERVAL:
            return False
        self._topics_checked = time.monotonic()
        self.log.warning("%s: %s: creating any missing topic of the project again", self.group.name, why)
        try:
            kafka.ensure_project_topics(kafka.admin(self.settings), self.settings, [self.group.name])
        except KafkaException as exc:
            self.log.warning("%s: could not create the topics yet: %s", self.group.name, exc.args[0].str())
        return True

    def _publish(self, outcome: Outcome, on_delivery: Callable[[KafkaError | None, Message], None]) -> None:
        item = outcome.inbound
        if outcome.failure is not None:
            headers = dead_letter_headers(self.group.name, item, outcome.failure)
            value = item.value
            if value is not None and len(value) > self.settings.max_message_bytes:
                # Too large to keep whole: the original stays on the source topic, named in the headers.
                headers.append((f"{HEADER_PREFIX}value.omitted", str(len(value)).encode()))
                value = None
            self._produce(self._dead_letter_topic, value, item.key, headers, on_delivery)
            return
        result = {
            "event_id": item.event.event_id,
            "group": self.group.name,
            "video_id": item.event.video_id,
            "processed_at": now_ms(),
            "detail": (self._detail_type, outcome.detail),
        }
        self._produce(self.settings.results_topic, self._encode_result(result), item.key, None, on_delivery)

    def _produce(self, topic: str, value: bytes | None, key: bytes | None, headers, on_delivery) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                return
            except BufferError:  # local queue full: let the broker catch up
                self._producer.poll(0.1)

    def _commit(self, wait: bool) -> None:
        positions = [(tp, off) for tp, o in self._offsets.items() if (off := o.committable()) is not None]
        if not positions:
            return
        started = time.perf_counter()
        try:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, off) for (t, p), off in positions], asynchronous=not wait
            )
            self.metrics.commit_seconds.labels(self.group.name).observe(time.perf_counter() - started)
        except KafkaException as exc:  # e.g. a rebalance under way: the new owner redoes the work
            self.log.warning("%s: commit failed: %s", self.group.name, exc.args[0].str())
            return
        for tp, off in positions:
            self._offsets[tp].committed = off

    def _count(self, outcomes: list[Outcome]) -> None:
        self.processed += len(outcomes)
        self.dead_lettered += sum(o.failure is not None for o in outcomes)
        self.metrics.count_outcomes(
            Counter(
                "dead_letter" if o.failure else str(o.detail.get("status") or o.detail.get("label")) for o in outcomes
            )
        )
        # Failures found by the work itself; bad input was noted as it arrived (_accept).
        self._judge_dead_letter_rate(o.failure is not None and o.inbound.event is not None for o in outcomes)

    def _judge_dead_letter_rate(self, dead: Iterable[bool]) -> None:
        """Stop, before publishing them, when too many recent events are dead letters.

        Called for every message: the window's dead count is kept as it slides, never re-summed.
        """
        window = self._recent_dead
        for is_dead in dead:
            if len(window) == window.maxlen:
                self._recent_dead_count -= window[0]
            window.append(is_dead)
            self._recent_dead_count += is_dead
        if len(window) < DLQ_MIN_SAMPLE:
            return
        ratio = self._recent_dead_count / len(window)
        if ratio > self.settings.dlq_max_ratio:
            raise ConsumerStopped(
                f"{ratio:.0%} of the last {len(self._recent_dead)} events were dead-lettered "
                f"(limit VVV_DLQ_MAX_RATIO={self.settings.dlq_max_ratio:g}): is a producer writing the wrong "
                f"format to {self.group.input_topic()}? See `vvv dlq list {self.group.name}`"
            )

    def _observe(self) -> None:
        """Loop-level metrics: alive, ready, partitions, lag, retries and rate-limit waits."""
        now = time.monotonic()
        m, name = self.metrics, self.group.name
        m.last_loop = now
        m.ready = self._assigned and self._broker.reachable
        if now - self._observed < OBSERVE_INTERVAL:
            return
        self._observed = now
        if self._joining_since is not None and now - self._joining_since >= STALLED_JOIN:
            self.log.warning(
                "%s: no assignment for %.0f s: the group's rebalance does not complete. On the embedded broker "
                "(tansu) members that leave while their group rebalances can wedge the group for good: restart "
                "the broker",
                self.group.name,
                now - self._joining_since,
            )
            self._joining_since = now  # said again in a minute, if still waiting
        m.partitions.labels(name).set(len(self._offsets))
        for (topic, partition), offsets in self._offsets.items():
            low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            position = next((p for p in (offsets.position, offsets.committed, low) if p is not None and p >= 0), None)
            if high >= 0 and position is not None:  # no fetch yet: no figure rather than a wrong one
                m.lag.labels(name, str(partition)).set(max(0, high - position))

        m.retries.labels(name).inc(self._executor.retries - self._retries_seen)
        self._retries_seen = self._executor.retries
        m.rate_limit_wait.labels(name).inc(self._executor.rate_limit_waited - self._waited_seen)
        self._waited_seen = self._executor.rate_limit_waited

    def _backpressure(self) -> None:
        busy = self._executor.in_flight() >= self.group.max_in_flight()
        if busy != self._paused and not (busy and not self._offsets):
            assignment = self._consumer.assignment()
            if busy:
                self._consumer.pause(assignment)
                for offsets in self._offsets.values():
                    offsets.eof = False  # unknown while paused: the fetch after resuming tells again
            else:
                self._consumer.resume(assignment)
                self._last_message = time.monotonic()
            self._paused = busy

    def _idle(self) -> bool:
        if self.until_idle is None or not self._assigned or self._executor.in_flight() or self._in_delivery:
            return False
        if not all(o.eof and not o.unfinished for o in self._offsets.values()):
            return False
        return time.monotonic() - self._last_message >= self.until_idle

    def _drain(self) -> None:
        """Graceful stop: fetch nothing new, let running work finish within the stop timeout, commit."""
        deadline = time.monotonic() + self.settings.stop_timeout
        self._consumer.pause(self._consumer.assignment())
        while self._executor.running() and time.monotonic() < deadline:
            self._consumer.consume(self.settings.batch_size, POLL_TIMEOUT)  # heartbeats go on; nothing arrives
            self._checkpoint()
        self._checkpoint(sync=True)
        if self._executor.in_flight():
            self.log.info(
                "%s: abandoned %d unfinished events; they are redelivered on restart",
                self.group.name,
                self._executor.in_flight(),
            )

    # -- rebalancing ------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:

        for tp in partitions:
            self._offsets[(tp.topic, tp.partition)] = PartitionOffsets()
        self._assigned = True
        self._joining_since = None
        # librdkafka keeps a partition's pause flag through revoke and re-assign: a partition paused
        # for backpressure may come back paused. Counting as paused makes the loop resume them all.
        self._paused = True
        self._last_message = time.monotonic()
        self._assignment_changed = True  # counted by the loop: no consumer call from its own callback
        self.log.info("%s: assigned %s", self.group.name, _names(partitions))

    def _take_assignment(self) -> None:
        """After an assignment: count the input topic's partitions, which the rate-limit shares divide."""
        self._assignment_changed = False
        topic = self.group.input_topic()
        self._total_partitions = len(self._consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        self.group.on_assignment(sorted(p for _t, p in self._offsets), self._total_partitions)
        if self._total_partitions == 0:
            self._recreate_topics(f"{topic} does not exist")
            self._resubscribe = True

        elif self._total_partitions != self.settings.partitions:
            self.log.warning(
                "%s: %s has %d partitions, not the configured %d: created by the broker itself (tansu does so "
                "when it restarts empty and a client writes)? Each video's events stay in order from here on",
                self.group.name,
                topic,
                self._total_partitions,
                self.settings.partitions,
            )

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if not self._broken:
            try:
                # finished work is committed; unfinished work is the next owner's
                self._checkpoint(sync=True, in_callback=True)
            except ConsumerStopped as exc:  # e.g. the broker is away: the next owner redoes what is uncommitted
                self.log.warning("%s: could not commit before giving up partitions: %s", self.group.name, exc)
                self._in_delivery.clear()
        self._release(partitions)
        self.log.info("%s: revoked %s", self.group.name, _names(partitions))

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._release(partitions)  # another member owns them already: commit nothing
        self.log.warning("%s: lost %s", self.group.name, _names(partitions))

    def _release(self, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._executor.forget(gone)
        for tp in gone:
            self._offsets.pop(tp, None)
        # With nothing left, a rebalance is under way: not idle, but waiting for the next assignment.
        self._assigned = bool(self._offsets)
        if not self._offsets:
            self._joining_since = time.monotonic()
        self.group.on_assignment(sorted(p for _t, p in self._offsets), self._total_partitions)


class _InDelivery:
    """One checkpoint's outcomes whose messages the broker has not all acknowledged yet."""

    __slots__ = ("attempt", "error", "outcomes", "remaining")

    def __init__(self, outcomes: list[Outcome], attempt: int = 1) -> None:
        self.outcomes = outcomes
        self.remaining = len(outcomes)
        self.attempt = attempt
        self.error: str | None = None

    def acknowledge(self, err: KafkaError | None, _msg: Message) -> None:  # librdkafka delivery callback
        self.remaining -= 1
        if err is not None and self.error is None:
            self.error = err.str()


def _where(item: Inbound) -> tuple[str, int, int]:
    return item.topic, item.partition, item.offset


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
