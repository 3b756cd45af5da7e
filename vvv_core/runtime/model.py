"""The values that flow through the runtime: an event in, an outcome out.

Those made per event are not frozen: a frozen dataclass sets each field through
``object.__setattr__``, four times the cost (0.8 against 0.2 µs for seven fields), and a
scoring member makes half a dozen such values per event. Nothing changes them once made,
but ``Inbound.event``, set once when the message is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vvv_core.errors import Fatal, InvalidInput, kind_of

Partition = tuple[str, int]  # (topic, partition)


class ConsumerStopped(Fatal):
    """The consumer stopped because continuing would lose or corrupt work; the message says why."""


class TransactionAborted(ConsumerStopped):
    """Exactly-once: the open transaction failed with an error librdkafka calls abortable (a group epoch moved
    on under it, a member fenced) and was aborted. Nothing of it happened: a member that catches it starts its
    work again from the committed offsets; one that does not, stops, as for any ``ConsumerStopped``."""


@dataclass(slots=True)
class Inbound:
    """One consumed message: where it came from, its raw bytes, and the event decoded from them."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None
    event: Any = None  # None when the bytes could not be decoded into a valid event


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an event is dead-lettered: the error's kind in the taxonomy (``vvv_core.errors``), class and text."""

    kind: str
    error_class: str
    message: str
    attempts: int = 1

    @classmethod
    def of(cls, exc: BaseException, attempts: int = 1) -> Failure:
        return cls(kind_of(exc), type(exc).__name__, str(exc) or repr(exc), attempts)


@dataclass(slots=True)
class Outcome:
    """A finished event: a result ``detail`` (an Avro detail record) or a dead-letter ``failure``."""

    inbound: Inbound
    detail: dict[str, Any] | None = None
    failure: Failure | None = None


class Rejected(InvalidInput):
    """Raised by a group's ``store`` for the outcomes it will not store, each with its reason: they are
    dead-lettered and the rest stored (the sink's results for videos the cron database does not know)."""

    def __init__(self, refused: list[tuple[Outcome, str]]) -> None:
        super().__init__(f"{len(refused)} refused by the store")
        self.refused = refused


@dataclass(slots=True)
class Effect:
    """What one result does to the cron database: the one input of a group's ``apply``, whether the
    member that made it stores it (direct mode) or the sink does, from the results topic."""

    video_id: str
    detail: dict[str, Any]
    event_at: int  # the source event's created_at, ms since the epoch: orders one video's effects
    event_id: str  # the source event's: a repeated result of the same event is not applied again

    @classmethod
    def of(cls, outcome: Outcome) -> Effect:
        event = outcome.inbound.event
        return cls(event.video_id, outcome.detail, event.created_at, event.event_id)


@dataclass(frozen=True, slots=True)
class Checked:
    """What one attempt at a per-event check concluded.

    ``transient`` marks a verdict that another attempt may change (timeouts, 5xx, 429); the
    runtime retries it later while attempts remain, and otherwise keeps ``detail`` as final.
    """

    detail: dict[str, Any]
    transient: bool = False
