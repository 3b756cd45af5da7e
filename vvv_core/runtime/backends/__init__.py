"""Where the runtime meets a broker: one small interface, and two implementations of it.

``kafka.KafkaBackend`` is confluent-kafka with every broker workaround the runtime needs;
``memory.MemoryBackend`` keeps topics in memory, so that the runtime's ordering, commit,
revoke, drain, retry, time-limit and dead-letter logic can be tested without a broker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from vvv_core.runtime.model import Inbound, Partition

Headers = list[tuple[str, bytes]]
OnDelivery = Callable[[str | None], None]  # the broker's answer to one message: None, or why it was refused
FLUSH_TIMEOUT = 10.0  # seconds the broker may take to acknowledge a message (and a transaction)


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
    @property
    def reachable(self) -> bool: ...

    def subscribe(self, topic: str, listener: Rebalance) -> None: ...

    def poll(self, max_records: int, timeout: float) -> Polled:
        """Wait up to ``timeout`` for the first record only, then take what is already fetched."""

    def pause(self, paused: bool) -> None:
        """Stop (or resume) fetching from every owned partition, including ones assigned later."""

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None, headers: Headers | None, on_delivery: OnDelivery
    ) -> None: ...

    def deliver(self, timeout: float) -> None:
        """Serve delivery reports; wait up to ``timeout`` for every message still unanswered."""

    def commit(self, offsets: dict[Partition, int], wait: bool) -> bool:
        """Commit consumed offsets; False when the broker refused (e.g. a rebalance is under way)."""

    def begin_transaction(self) -> None: ...

    def commit_transaction(self, offsets: dict[Partition, int]) -> None:
        """Commit the open transaction with these offsets; on failure abort it and raise ConsumerStopped."""

    def abort_transaction(self) -> None: ...

    def replace_producer(self, why: str) -> None:
        """Drop every unanswered message and send with a new producer from now on."""

    def high_watermark(self, partition: Partition) -> int | None: ...

    def watch(self) -> None:
        """Once per loop turn: raise when the broker has been away for too long."""

    def close(self) -> None: ...
