"""The runtime on confluent-kafka (librdkafka), with every broker and client workaround in one place.

- A consumer that failed for good, or whose input topic vanished, is replaced by a new one that
  joins again: an old one can stay stuck on what it knew (librdkafka's assignor keeps treating a
  topic it once saw missing as missing, as after tansu restarted empty), and a KIP-848 member
  whose group vanished is failed for good (Apache Kafka restarted empty).
- A producer whose messages were refused is replaced: an idempotent producer never recovers once
  the broker has forgotten its producer id (tansu after a restart) or fenced it.
- Missing topics are created again, at most every ``TOPIC_CHECK_INTERVAL``, never auto-created
  by the broker with its own partition count.
- No blocking consumer call runs inside a consumer callback: a commit there is asynchronous
  (librdkafka completes the revocation after commits under way), and partitions are counted
  after ``poll`` returns. A blocking call from inside a callback leaves confluent-kafka's call
  state broken (an abort in the next callback of the same poll, seen with KIP-848).
- librdkafka keeps a partition's pause flag through revoke and re-assign: every assignment is
  set explicitly to the paused state the runtime asked for.
- A transaction left open by a member that died blocks every ``read_committed`` reader of its
  partitions (results, changelogs) at the last stable offset until the broker aborts it:
  ``transaction.timeout.ms`` is 10 s, as Kafka Streams sets it, not the client's 60 s.
- Changelogs are read back by a consumer of their own, outside the group (``assign``, no commits),
  as Kafka Streams' restore consumer: the group's consumer keeps its subscription and heartbeats.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from vvv_core import kafka
from vvv_core.config import Settings
from vvv_core.runtime.backends import FLUSH_TIMEOUT, ISOLATION, Headers, OnDelivery, Polled, Rebalance
from vvv_core.runtime.backends.brokerwatch import BrokerWatch
from vvv_core.runtime.model import ConsumerStopped, Inbound, Partition, TransactionAborted

TOPIC_CHECK_INTERVAL = 5.0  # seconds between attempts to recreate a vanished topic
STATISTICS_INTERVAL_MS = 15_000  # librdkafka's statistics, with metrics on (VVV_KAFKA_STATISTICS_INTERVAL_MS)
# A message purged (by an abort, or a producer replaced) was dropped on purpose: its report is no refusal.
PURGED = {KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT}
TRANSACTION_TIMEOUT_MS = 10_000  # an open transaction of a member that died is aborted by the broker after this


class KafkaBackend:
    def __init__(
        self,
        settings: Settings,
        group: str,
        log: logging.LoggerAdapter,
        *,
        transactional: bool,
        stateful: bool = False,
        client_id: str = "rdkafka",
        statistics: Callable[[str], Callable[[str], None]] | None = None,
    ) -> None:
        """``statistics``: makes librdkafka's ``stats_cb`` for a client role (metrics on), or None."""
        self.settings = settings
        self._statistics = statistics
        self._client_id = client_id
        self.group = group
        self.log = log
        self.transactional = transactional
        self._stateful = [group] if stateful else []  # has a changelog topic
        self._broker = BrokerWatch(settings.bootstrap, settings.broker_timeout, log)
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self.on_delivery: OnDelivery = lambda *_answer: None
        self._topic = ""
        self._listener: Rebalance | None = None
        self._new: list[Partition] | None = None  # assigned in a callback (maybe nothing), announced after poll
        self._in_callback = False
        self._resubscribe = False
        self._paused = False
        self._paused_partitions: set[Partition] = set()
        self._restorer: Consumer | None = None  # reads changelogs back, outside the group
        self._topics_checked = 0.0

    @property
    def reachable(self) -> bool:
        return self._broker.reachable

    def subscribe(self, topic: str, listener: Rebalance) -> None:
        kafka.ensure_project_topics(
            kafka.check_broker(self.settings), self.settings, [self.group], stateful=self._stateful
        )
        self._protocol = kafka.group_protocol(self.settings)
        self._topic, self._listener = topic, listener
        self._producer = self._new_producer()
        self._join()
        self.log.info(
            "%s: consuming %s as group %s (%s group protocol) as %s%s",
            self.group,
            topic,
            self.settings.group_id(self.group),
            self._protocol,
            self._client_id,
            ", exactly-once" if self.transactional else "",
        )

    def _join(self) -> None:
        self._resubscribe = False
        if self._consumer is not None:
            self.log.warning("%s: joining the group again with a new consumer", self.group)
            self._consumer.close()
            self._topics_checked = 0.0
            self._recreate_topics("rejoining")
        self._consumer = Consumer(
            kafka.consumer_config(
                self.settings,
                self.group,
                self._protocol,
                error_cb=self._broker.on_error,
                **{"client.id": self._client_id},
                **self._stats("consumer"),
            )
        )
        self._consumer.subscribe(
            [self._topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def _new_producer(self) -> Producer:
        def report(err: KafkaError | None, msg: Message) -> None:
            """The answers, in one callback of the producer (a closure per message cost 2 µs of CPU more a
            message, measured); an old producer's late answers are no longer anyone's."""
            if self._producer is producer and (err is None or err.code() not in PURGED):
                self.on_delivery(None if err is None else err.str(), msg.topic(), msg.partition(), msg.offset())

        extra = {
            "on_delivery": report,
            # Refusals only, but where a state store needs its changelog's offsets: an empty queue says the
            # rest were taken (``unanswered``), and a report per message cost 1.5 µs more a message
            "delivery.report.only.error": not self._stateful,
            "message.timeout.ms": int(FLUSH_TIMEOUT * 1000),
            "message.max.bytes": self.settings.dead_letter_bytes,
            "error_cb": self._broker.on_error,
            **self._stats("producer"),
        }
        if not self.transactional:
            producer = Producer(kafka.producer_config(self.settings, **extra))
            return producer
        # One transactional id per member: zombies are fenced by the group's generation (KIP-447).
        extra["transactional.id"] = f"{self.settings.group_id(self.group)}-{uuid.uuid4().hex[:12]}"
        extra["transaction.timeout.ms"] = TRANSACTION_TIMEOUT_MS
        producer = Producer(kafka.producer_config(self.settings, **extra))
        producer.init_transactions(FLUSH_TIMEOUT)
        return producer

    def _stats(self, role: str) -> dict[str, Any]:
        if self._statistics is None:
            return {}
        interval = self.settings.kafka.get("statistics.interval.ms", STATISTICS_INTERVAL_MS)
        return {"statistics.interval.ms": interval, "stats_cb": self._statistics(role)}

    # -- consuming ------------------------------------------------------------------------

    def poll(self, max_records: int, timeout: float) -> Polled:
        if self._resubscribe:
            self._join()
        first = self._consumer.poll(timeout)
        messages = [] if first is None else [first, *self._consumer.consume(max_records - 1, 0)]
        if self._new is not None:
            self._announce()
        polled = Polled([])
        records, eof_at = polled.records, {}
        for msg in messages:
            err = msg.error()
            if err is None:
                records.append(
                    Inbound(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), msg.headers())
                )
            elif err.code() == KafkaError._PARTITION_EOF:
                eof_at[(msg.topic(), msg.partition())] = len(records)
            elif err.fatal() or err.code() == KafkaError._FATAL:
                # The client is unusable (e.g. its group vanished with a broker restarted empty): a new
                # one rejoins; what was not committed is redone.
                self.log.warning("%s: consumer failed for good (%s): replacing it", self.group, err.str())
                self._resubscribe = True
            elif err.code() in kafka.MISSING:
                self._recreate_topics(err.str())
            else:
                self.log.warning("%s: consumer error: %s", self.group, err.str())
        for tp, at in eof_at.items():  # unless more of the partition arrived after its end was reported
            if not any((r.topic, r.partition) == tp for r in records[at:]):
                polled.eof.add(tp)
        return polled

    def _announce(self) -> None:
        """After an assignment, outside the callback: count the topic's partitions, set the pause flags."""
        new, self._new = self._new, None
        topic = self._topic
        total = len(self._consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        if total == 0:
            self._recreate_topics(f"{topic} does not exist")
            self._resubscribe = True
        elif total != self.settings.partitions:
            self.log.warning(
                "%s: %s has %d partitions, not the configured %d: created by the broker itself (tansu does so "
                "when it restarts empty and a client writes)? Each video's events stay in order from here on",
                self.group,
                topic,
                total,
                self.settings.partitions,
            )
        partitions = [TopicPartition(t, p) for t, p in new]
        (self._consumer.pause if self._paused else self._consumer.resume)(partitions)
        self._listener.assigned(new, total)

    def pause(self, paused: bool, partitions: Iterable[Partition] | None = None) -> None:
        if partitions is None:
            if paused == self._paused:
                return
            self._paused = paused
            changed = [(tp.topic, tp.partition) for tp in self._consumer.assignment()]
        else:
            changed = list(partitions)
            (self._paused_partitions.update if paused else self._paused_partitions.difference_update)(changed)
        stop = [TopicPartition(*tp) for tp in changed if self._paused or tp in self._paused_partitions]
        go = [TopicPartition(*tp) for tp in changed if not (self._paused or tp in self._paused_partitions)]
        if stop:
            self._consumer.pause(stop)
        if go:
            self._consumer.resume(go)

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._new = [*(self._new or []), *((tp.topic, tp.partition) for tp in partitions)]
        self.log.info("%s: assigned %s", self.group, _names(partitions))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._in_callback = True
        try:
            self._listener.revoked(self._forget_unannounced(partitions))
        finally:
            self._in_callback = False
        self.log.info("%s: revoked %s", self.group, _names(partitions))

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._listener.lost(self._forget_unannounced(partitions))
        self.log.warning("%s: lost %s", self.group, _names(partitions))

    def _forget_unannounced(self, partitions: list[TopicPartition]) -> list[Partition]:
        gone = [(tp.topic, tp.partition) for tp in partitions]
        self._paused_partitions.difference_update(gone)
        if self._new is not None:
            self._new = [p for p in self._new if p not in gone]
        return gone

    def commit(self, offsets: dict[Partition, int], wait: bool) -> bool:
        try:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                asynchronous=not wait or self._in_callback,
            )
        except KafkaException as exc:  # e.g. a rebalance under way: the new owner redoes the work
            self.log.warning("%s: commit failed: %s", self.group, exc.args[0].str())
            return False
        return True

    def high_watermark(self, partition: Partition) -> int | None:
        _low, high = self._consumer.get_watermark_offsets(TopicPartition(*partition), cached=True)
        return high if high >= 0 else None

    def watch(self) -> None:
        self._broker.check(lambda timeout: self._consumer.list_topics(timeout=timeout))

    # -- producing ------------------------------------------------------------------------

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        where = {} if partition is None else {"partition": partition}
        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers, **where)
                return
            except BufferError:  # local queue full: let the broker catch up
                self._producer.poll(0.1)

    def produce_many(self, topic: str, values: list[bytes], keys: list[bytes | None]) -> None:
        produce = self._producer.produce
        for value, key in zip(values, keys, strict=True):
            try:
                produce(topic, value, key)
            except BufferError:
                self.produce(topic, value, key)

    def deliver(self, timeout: float) -> None:
        if timeout:
            self._producer.flush(timeout)
        else:
            self._producer.poll(0)

    def unanswered(self) -> int:
        return len(self._producer)

    def begin_transaction(self) -> None:
        self._producer.begin_transaction()

    def send_offsets_to_transaction(self, offsets: dict[Partition, int]) -> None:
        positions, group = [TopicPartition(t, p, o) for (t, p), o in offsets.items()], self._consumer
        try:
            self._producer.send_offsets_to_transaction(positions, group.consumer_group_metadata(), FLUSH_TIMEOUT)
        except KafkaException as exc:
            self._failed(exc.args[0])

    def commit_transaction(self) -> None:
        try:
            self._producer.commit_transaction(FLUSH_TIMEOUT)
        except KafkaException as exc:
            self._failed(exc.args[0])

    def _failed(self, error: KafkaError) -> NoReturn:
        """A transaction that failed is aborted. An abortable failure leaves the producer usable: with KIP-848 the
        broker refuses the offsets of a member whose epoch moved on a moment before its client heard (a member
        joining or leaving elsewhere in the group), and the member is to start again from the committed offsets.
        Anything else (fenced for good, fatal) stops it."""
        self.abort_transaction()
        if error.txn_requires_abort() and not error.fatal():
            raise TransactionAborted(f"transaction aborted ({error.str()})")
        raise ConsumerStopped(f"transaction failed ({error.str()}): stopping; the batch is processed again on restart")

    def abort_transaction(self) -> None:
        with contextlib.suppress(KafkaException):
            self._producer.abort_transaction(FLUSH_TIMEOUT)

    def rejoin(self) -> None:
        self._resubscribe = True  # ``poll`` closes this consumer (its partitions revoked) and joins with a new one

    def replace_producer(self, why: str) -> None:
        self._recreate_topics(why)  # perhaps the topics are gone
        old, self._producer = self._producer, self._new_producer()
        old.purge(in_queue=True, in_flight=True)
        old.poll(0)  # its late reports reach batches no longer watched

    # -- restoring --------------------------------------------------------------------------

    def restore(self, partition: Partition, start: int) -> None:
        if self._restorer is None:
            self._restorer = Consumer(
                kafka.consumer_config(
                    self.settings,
                    f"{self.group}.restore",  # librdkafka wants a group id; it never joins nor commits
                    error_cb=self._broker.on_error,
                    **{"client.id": f"{self._client_id}-restore", "isolation.level": ISOLATION},
                )
            )
        self._restorer.incremental_assign([TopicPartition(*partition, start)])

    def read_restore(self, max_records: int, timeout: float) -> list[Inbound]:
        if self._restorer is None or not self._restorer.assignment():
            return []
        records = []
        for msg in self._restorer.consume(max_records, timeout):
            err = msg.error()
            if err is None:
                records.append(Inbound(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), None))
            elif err.code() in kafka.MISSING:
                self._recreate_topics(err.str())
            elif err.code() != KafkaError._PARTITION_EOF:
                self.log.warning("%s: reading a changelog: %s", self.group, err.str())
        return records

    def restore_position(self, partition: Partition) -> tuple[int | None, int | None]:
        if self._restorer is None:
            return None, None
        tp = TopicPartition(*partition)
        [position] = self._restorer.position([tp])
        _low, high = self._restorer.get_watermark_offsets(tp, cached=True)
        return (position.offset if position.offset >= 0 else None), (high if high >= 0 else None)

    def stop_restore(self, partitions: list[Partition]) -> None:
        if self._restorer is not None and partitions:
            self._restorer.incremental_unassign([TopicPartition(*tp) for tp in partitions])

    def _recreate_topics(self, why: str) -> None:
        """A topic is gone (a broker restarted with empty storage, or someone deleted it): make it again."""
        if time.monotonic() - self._topics_checked < TOPIC_CHECK_INTERVAL:
            return
        self._topics_checked = time.monotonic()
        self.log.warning("%s: %s: creating any missing topic of the project again", self.group, why)
        try:
            kafka.ensure_project_topics(
                kafka.admin(self.settings), self.settings, [self.group], stateful=self._stateful
            )
        except KafkaException as exc:
            self.log.warning("%s: could not create the topics yet: %s", self.group, exc.args[0].str())

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()  # leaves the group at once, so the others take over without waiting
        if self._restorer is not None:  # after: closing the consumer revokes, which stops restores
            self._restorer.close()
        if self._producer is not None:
            self._producer.flush(5)


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
