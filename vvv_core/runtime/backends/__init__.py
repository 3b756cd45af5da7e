"""Where the runtime meets a broker: one small interface, and two implementations of it.

``kafka.KafkaBackend`` is confluent-kafka with every broker workaround the runtime needs;
``memory.MemoryBackend`` keeps topics in memory, so that the runtime's ordering, commit,
revoke, drain, retry, time-limit, dead-letter, transaction and restore logic can be tested
without a broker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from vvv_core.runtime.model import Inbound, Partition

Headers = list[tuple[str, bytes]]
# The broker's answer to one message: None or why it was refused; the topic, partition and offset it was written at
# (-1 if refused). One callback for every message a backend produces (``Backend.on_delivery``), not one per message.
OnDelivery = Callable[[str | None, str, int, int], None]
FLUSH_TIMEOUT = 10.0  # seconds the broker may take to acknowledge a message (and a transaction)
# What every member reads: records of an aborted transaction never reach a group, and those of an open one
# only once it commits. A property of the reader (librdkafka's isolation.level), not of the writer.
ISOLATION = "read_committed"


@dataclass
class Polled:
    records: list[Inbound]  # not decoded yet (``event`` is None)
    eof: set[Partition] = field(default_factory=set)  # partitions at their end after this poll's records


class Rebalance(Protocol):
    """What the runtime does when the group's assignment changes (called from inside ``poll``)."""

    def assigned(self, partitions: list[Partition], total: int) -> None:
        """``total``: how many partitions the input topic has (rate-limit shares divide it)."""

    def revoked(self, partitions: list[Partition]) -> None:
        """Given up in order: finished work may still be committed here."""

    def lost(self, partitions: list[Partition]) -> None:
        """Taken away: another member may own them already, so nothing may be committed."""


class Backend(Protocol):
    # Told inside ``deliver`` of each message the broker refused, and of each it took where the offsets are needed
    # (a group with a state store: its changelog's positions); set before anything is produced.
    on_delivery: OnDelivery

    @property
    def reachable(self) -> bool: ...

    @property
    def transactional(self) -> bool:
        """Exactly-once: every message is produced inside a transaction, with the offsets it consumed."""

    def subscribe(self, topic: str, listener: Rebalance) -> None: ...

    def poll(self, max_records: int, timeout: float) -> Polled:
        """Wait up to ``timeout`` for the first record only, then take what is already fetched."""

    def pause(self, paused: bool, partitions: Iterable[Partition] | None = None) -> None:
        """Stop (or resume) fetching: from every owned partition, including ones assigned later (None), or from
        these alone (until resumed by name or given up). A partition is fetched when neither pauses it."""

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        """``partition``: where it goes; None: the partition of its key."""

    def produce_many(self, topic: str, values: list[bytes], keys: list[bytes | None]) -> None:
        """Each value with its key, to the partition of its key, in order: a batch's results in one call."""

    def deliver(self, timeout: float) -> None:
        """Serve delivery reports; wait up to ``timeout`` for every message still unanswered."""

    def unanswered(self) -> int:
        """Messages produced and not answered yet (their reports served): 0 when the broker has taken them all."""

    def commit(self, offsets: dict[Partition, int], wait: bool) -> bool:
        """Commit consumed offsets; False when the broker refused (e.g. a rebalance is under way)."""

    def begin_transaction(self) -> None: ...

    def send_offsets_to_transaction(self, offsets: dict[Partition, int]) -> None:
        """The group's offsets, to become its committed offsets when (and only if) the transaction commits; on
        failure abort it and raise ``TransactionAborted`` (abortable) or ``ConsumerStopped``."""

    def commit_transaction(self) -> None:
        """Commit the open transaction; on failure abort it and raise ``TransactionAborted`` (abortable) or
        ``ConsumerStopped``."""

    def abort_transaction(self) -> None: ...

    def replace_producer(self, why: str) -> None:
        """Drop every unanswered message and send with a new producer from now on."""

    def rejoin(self) -> None:
        """Join the group again as a new member (at the next ``poll``): every partition given up, then whatever the
        group assigns fetched from its committed offsets."""

    def high_watermark(self, partition: Partition) -> int | None: ...

    # -- reading a changelog back (restoring a state store), beside the group's own fetching --------------

    def restore(self, partition: Partition, start: int) -> None:
        """Start reading ``partition`` (of a changelog) from ``start``, committed records only."""

    def read_restore(self, max_records: int, timeout: float) -> list[Inbound]:
        """What was read of the partitions being restored; waits up to ``timeout`` for the first record."""

    def restore_position(self, partition: Partition) -> tuple[int | None, int | None]:
        """How far the read of ``partition`` is, and its high watermark; None where not known yet. It is
        caught up when the position reaches the high watermark: past the last record come transaction
        markers, and records of a transaction still open, which it must wait for."""

    def stop_restore(self, partitions: list[Partition]) -> None: ...

    def watch(self) -> None:
        """Once per loop turn: raise when the broker has been away for too long."""

    def close(self) -> None: ...
