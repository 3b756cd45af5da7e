"""The runtime without a broker: topics in memory, driven by the test that owns them.

A ``MemoryBroker`` holds topics (a list of records per partition), the group's committed offsets
and transactions. A ``MemoryBackend`` is one member on it; the test decides, from its own thread,
when partitions are assigned, revoked or lost, and whether produced messages are acknowledged
(``auto_ack``) or refused (``refuse``). Rebalances and delivery reports are served inside the
runtime's own calls (``poll``, ``deliver``), as librdkafka does.

Only what the runtime relies on is modelled, but that faithfully, or a test would pass where
Kafka fails: a transactional member's records are open until its transaction ends, then committed
or aborted; offsets sent to a transaction become the group's only when it commits (a consumer's
``commit`` is another thing, at once); a reader's isolation is its own (``read_committed`` stops at
the first record of an open transaction and skips aborted ones, ``read_uncommitted`` sees all).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from vvv_core.runtime.backends import ISOLATION, Headers, OnDelivery, Polled, Rebalance
from vvv_core.runtime.model import ConsumerStopped, Inbound, Partition, TransactionAborted

OPEN, COMMITTED, ABORTED = "open", "committed", "aborted"


@dataclass
class Stored:
    key: bytes | None
    value: bytes | None
    headers: Headers | None
    transaction: int | None = None  # produced inside this transaction
    state: str = COMMITTED  # OPEN while its transaction is, then COMMITTED or ABORTED


@dataclass
class MemoryBroker:
    partitions: int = 2
    topics: dict[str, list[list[Stored]]] = field(default_factory=dict)
    committed: dict[Partition, int] = field(default_factory=dict)  # one group per broker is enough here

    def log(self, topic: str) -> list[list[Stored]]:
        return self.topics.setdefault(topic, [[] for _ in range(self.partitions)])

    def partition_for(self, key: bytes | None) -> int:
        from vvv_core.kafka import java_partition  # the producers' partitioner (murmur2), as on a real broker

        return java_partition(key or b"", self.partitions)

    def publish(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers | None = None, state: str = COMMITTED
    ) -> Partition:
        """A record from a producer outside the runtime: ``state`` OPEN or ABORTED for one of a transaction."""
        self.log(topic)[self.partition_for(key)].append(Stored(key, value, headers, state=state))
        return topic, self.partition_for(key)

    def read(self, topic: str, isolation: str = ISOLATION) -> list[Stored]:
        """Every record a reader with this isolation sees now, partition by partition."""
        return [r for part in self.log(topic) for _offset, r in readable(part, 0, isolation)[0]]


def readable(log: list[Stored], position: int, isolation: str, limit: int = 1 << 62) -> tuple[list, int]:
    """(offset, record) pairs a reader at ``position`` gets, and its position after them. read_committed stops
    at the first record of a transaction still open (the last stable offset) and steps over aborted ones."""
    found = []
    while position < len(log) and len(found) < limit:
        record = log[position]
        if isolation == ISOLATION and record.state == OPEN:
            break
        if isolation != ISOLATION or record.state == COMMITTED:
            found.append((position, record))
        position += 1
    return found, position


@dataclass
class _Pending:
    topic: str
    partition: int
    record: Stored


class MemoryBackend:
    def __init__(
        self, broker: MemoryBroker, *, auto_ack: bool = True, transactional: bool = False, isolation: str = ISOLATION
    ) -> None:
        self.broker = broker
        self.auto_ack = auto_ack  # answer every message at the next ``deliver``; False: leave them unanswered
        self.transactional = transactional
        self.isolation = isolation
        self.refuse = 0  # the next this many messages are refused
        self.fail_commit = False  # the next transaction fails at its commit (is aborted), as a broker may
        self.abortable_commit = False  # the same, with an error the member may start over from (a group epoch moved)
        self.rejoins = 0  # times the member joined again
        self._rejoining = False
        self.reachable = True
        self.on_delivery: OnDelivery = lambda *_answer: None
        self.commits: list[dict[Partition, int]] = []  # every consumer commit, in order (not the transactions')
        self.transactions: list[str] = []  # "commit" or "abort", in order
        self._listener: Rebalance | None = None
        self._topic = ""
        self._positions: dict[Partition, int] = {}
        self._at_end: set[Partition] = set()  # EOF already reported, nothing new since
        self._events: list[tuple[str, list[int]]] = []  # rebalances, served by the next poll
        self._pending: list[_Pending] = []
        self._transaction: int | None = None
        self._transactions = 0
        self._transaction_offsets: dict[Partition, int] = {}
        self._restoring: dict[Partition, int] = {}  # changelog partition -> position
        self.paused = False  # every partition
        self.paused_partitions: set[Partition] = set()
        self._lock = threading.RLock()  # the test's thread and the runtime's

    # -- what the test drives -------------------------------------------------------------

    def assign(self, partitions: Iterable[int]) -> None:
        with self._lock:
            self._events.append(("assign", list(partitions)))

    def revoke(self, partitions: Iterable[int], lost: bool = False) -> None:
        with self._lock:
            self._events.append(("lost" if lost else "revoke", list(partitions)))

    def _answer(self) -> None:
        """Answer every message sent so far: refused while ``refuse`` lasts, else written."""
        pending, self._pending = self._pending, []
        for p in pending:
            if self.refuse:
                self.refuse -= 1
                self.on_delivery("refused by the test", p.topic, p.partition, -1)
                continue
            log = self.broker.log(p.topic)[p.partition]
            log.append(p.record)
            self.on_delivery(None, p.topic, p.partition, len(log) - 1)

    # -- the Backend interface ------------------------------------------------------------

    def subscribe(self, topic: str, listener: Rebalance) -> None:
        self._topic, self._listener = topic, listener
        self.broker.log(topic)

    def poll(self, max_records: int, timeout: float) -> Polled:
        with self._lock:
            polled = self._poll(max_records)
        if not polled.records:
            time.sleep(min(timeout, 0.005))
        return polled

    def _poll(self, max_records: int) -> Polled:
        events, self._events = self._events, []
        if self._rejoining:  # as a new consumer: what the old one owned revoked, then assigned again
            self._rejoining, self.rejoins = False, self.rejoins + 1
            owned = sorted(p for _t, p in self._positions)
            events = [("revoke", owned), ("assign", owned), *events]
        for kind, numbers in events:
            partitions = [(self._topic, p) for p in numbers]
            if kind == "assign":
                for tp in partitions:
                    self._positions[tp] = self.broker.committed.get(tp, 0)
                    self._at_end.discard(tp)
                self._listener.assigned(partitions, self.broker.partitions)
            else:
                (self._listener.revoked if kind == "revoke" else self._listener.lost)(partitions)
                for tp in partitions:
                    self._positions.pop(tp, None)
                    self.paused_partitions.discard(tp)
        polled = Polled([])
        if self.paused:
            return polled
        for (topic, partition), position in self._positions.items():
            if (topic, partition) in self.paused_partitions:
                continue
            log = self.broker.log(topic)[partition]
            found, position = readable(log, position, self.isolation, max_records - len(polled.records))
            polled.records += [Inbound(topic, partition, o, r.key, r.value, r.headers) for o, r in found]
            self._positions[(topic, partition)] = position
            if position == len(log) and (topic, partition) not in self._at_end:
                self._at_end.add((topic, partition))
                polled.eof.add((topic, partition))
            elif position < len(log):
                self._at_end.discard((topic, partition))
        return polled

    def pause(self, paused: bool, partitions: Iterable[Partition] | None = None) -> None:
        with self._lock:
            if partitions is None:
                self.paused = paused
            elif paused:
                self.paused_partitions.update(partitions)
            else:
                self.paused_partitions.difference_update(partitions)

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        if self.transactional and self._transaction is None:
            raise RuntimeError("a transactional producer produced outside a transaction")  # as librdkafka refuses
        state = COMMITTED if self._transaction is None else OPEN
        record = Stored(key, value, headers, self._transaction, state)
        target = self.broker.partition_for(key) if partition is None else partition
        with self._lock:
            self._pending.append(_Pending(topic, target, record))

    def produce_many(self, topic: str, values: list[bytes], keys: list[bytes | None]) -> None:
        for value, key in zip(values, keys, strict=True):
            self.produce(topic, value, key)

    def deliver(self, timeout: float) -> None:
        if self.auto_ack:
            with self._lock:
                self._answer()

    def unanswered(self) -> int:
        return len(self._pending)

    def commit(self, offsets: dict[Partition, int], wait: bool) -> bool:
        with self._lock:
            self.commits.append(dict(offsets))
            self.broker.committed.update(offsets)
        return True

    def begin_transaction(self) -> None:
        if self._transaction is not None:
            raise RuntimeError("a transaction is open already")
        self._transactions += 1
        self._transaction = self._transactions

    def send_offsets_to_transaction(self, offsets: dict[Partition, int]) -> None:
        if self._transaction is None:
            raise RuntimeError("offsets sent outside a transaction")
        self._transaction_offsets.update(offsets)

    def commit_transaction(self) -> None:
        if self.abortable_commit:
            self.abortable_commit = False
            self.abort_transaction()
            raise TransactionAborted("transaction aborted (the test's abortable error)")
        if self._pending or self.fail_commit:
            self.fail_commit = False
            self.abort_transaction()
            raise ConsumerStopped("transaction failed at its commit: aborted")
        with self._lock:
            self.broker.committed.update(self._transaction_offsets)
        self._end_transaction(COMMITTED)

    def abort_transaction(self) -> None:
        self._pending.clear()
        self._end_transaction(ABORTED)

    def _end_transaction(self, state: str) -> None:
        for part in (p for log in self.broker.topics.values() for p in log):
            for r in part:
                if r.transaction == self._transaction and r.state == OPEN:
                    r.state = state
        self.transactions.append("commit" if state == COMMITTED else "abort")
        self._transaction, self._transaction_offsets = None, {}

    def replace_producer(self, why: str) -> None:
        self._pending.clear()

    def rejoin(self) -> None:
        self._rejoining = True

    def high_watermark(self, partition: Partition) -> int | None:
        return len(self.broker.log(partition[0])[partition[1]])

    def restore(self, partition: Partition, start: int) -> None:
        self._restoring[partition] = start

    def read_restore(self, max_records: int, timeout: float) -> list[Inbound]:
        records: list[Inbound] = []
        with self._lock:
            for (topic, partition), position in self._restoring.items():
                log = self.broker.log(topic)[partition]
                found, position = readable(log, position, ISOLATION, max_records - len(records))
                records += [Inbound(topic, partition, o, r.key, r.value, r.headers) for o, r in found]
                self._restoring[(topic, partition)] = position
        if not records:
            time.sleep(min(timeout, 0.005))
        return records

    def restore_position(self, partition: Partition) -> tuple[int | None, int | None]:
        return self._restoring.get(partition), self.high_watermark(partition)

    def stop_restore(self, partitions: list[Partition]) -> None:
        for tp in partitions:
            self._restoring.pop(tp, None)

    def watch(self) -> None:
        pass

    def close(self) -> None:
        pass
