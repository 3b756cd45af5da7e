"""The runtime without a broker: topics in memory, driven by the test that owns them.

A ``MemoryBroker`` holds topics (a list of records per partition), committed offsets and
transactions. A ``MemoryBackend`` is one member on it; the test decides, from its own thread,
when partitions are assigned, revoked or lost, and whether produced messages are acknowledged
(``auto_ack``) or refused (``refuse``). Rebalances and delivery reports are served inside the
runtime's own calls (``poll``, ``deliver``), as librdkafka does. Only what the runtime relies on
is modelled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from vvv_core.runtime.backends import Headers, OnDelivery, Polled, Rebalance
from vvv_core.runtime.model import ConsumerStopped, Inbound, Partition


@dataclass
class Stored:
    key: bytes | None
    value: bytes | None
    headers: Headers | None
    transaction: int | None = None  # produced inside this transaction
    visible: bool = True  # False while its transaction is open, and for ever once it was aborted


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

    def publish(self, topic: str, key: bytes | None, value: bytes | None, headers: Headers | None = None) -> Partition:
        self.log(topic)[self.partition_for(key)].append(Stored(key, value, headers))
        return topic, self.partition_for(key)

    def read(self, topic: str) -> list[Stored]:
        """What a read_committed reader sees, partition by partition."""
        return [r for part in self.log(topic) for r in part if r.visible]


@dataclass
class _Pending:
    topic: str
    record: Stored
    on_delivery: OnDelivery


class MemoryBackend:
    def __init__(self, broker: MemoryBroker, *, auto_ack: bool = True) -> None:
        self.broker = broker
        self.auto_ack = auto_ack  # answer every message at the next ``deliver``; False: leave them unanswered
        self.refuse = 0  # the next this many messages are refused
        self.reachable = True
        self.commits: list[dict[Partition, int]] = []  # every commit, in order (transactions' included)
        self.transactions: list[str] = []  # "commit" or "abort", in order
        self._listener: Rebalance | None = None
        self._topic = ""
        self._positions: dict[Partition, int] = {}
        self._at_end: set[Partition] = set()  # EOF already reported, nothing new since
        self._events: list[tuple[str, list[int]]] = []  # rebalances, served by the next poll
        self._pending: list[_Pending] = []
        self._transaction: int | None = None
        self._transactions = 0
        self.paused = False
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
                p.on_delivery("refused by the test")
                continue
            self.broker.log(p.topic)[self.broker.partition_for(p.record.key)].append(p.record)
            p.on_delivery(None)

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
        polled = Polled([])
        if self.paused:
            return polled
        for (topic, partition), position in self._positions.items():
            log = self.broker.log(topic)[partition]
            while position < len(log) and len(polled.records) < max_records:
                r = log[position]
                if r.visible:
                    polled.records.append(Inbound(topic, partition, position, r.key, r.value, r.headers))
                position += 1
            self._positions[(topic, partition)] = position
            if position == len(log) and (topic, partition) not in self._at_end:
                self._at_end.add((topic, partition))
                polled.eof.add((topic, partition))
            elif position < len(log):
                self._at_end.discard((topic, partition))
        return polled

    def pause(self, paused: bool) -> None:
        self.paused = paused

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None, headers: Headers | None, on_delivery: OnDelivery
    ) -> None:
        visible = self._transaction is None
        with self._lock:
            self._pending.append(_Pending(topic, Stored(key, value, headers, self._transaction, visible), on_delivery))

    def deliver(self, timeout: float) -> None:
        if self.auto_ack:
            with self._lock:
                self._answer()

    def commit(self, offsets: dict[Partition, int], wait: bool) -> bool:
        with self._lock:
            self.commits.append(dict(offsets))
            self.broker.committed.update(offsets)
        return True

    def begin_transaction(self) -> None:
        self._transactions += 1
        self._transaction = self._transactions

    def commit_transaction(self, offsets: dict[Partition, int]) -> None:
        if self._pending:
            self.abort_transaction()
            raise ConsumerStopped("transaction failed: messages unanswered at commit")
        self._end_transaction(True)
        self.commit(offsets, True)

    def abort_transaction(self) -> None:
        self._pending.clear()
        self._end_transaction(False)

    def _end_transaction(self, committed: bool) -> None:
        for part in (p for log in self.broker.topics.values() for p in log):
            for r in part:
                if r.transaction == self._transaction:
                    r.visible = committed
        self.transactions.append("commit" if committed else "abort")
        self._transaction = None

    def replace_producer(self, why: str) -> None:
        self._pending.clear()

    def high_watermark(self, partition: Partition) -> int | None:
        return len(self.broker.log(partition[0])[partition[1]])

    def watch(self) -> None:
        pass

    def close(self) -> None:
        pass
