"""What a consumer group declares; the runtime (``loop.py``) does the rest."""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, ClassVar

from vvv_core.config import Settings
from vvv_core.runtime.executors import Executor
from vvv_core.runtime.model import Effect, Outcome, Partition

if TYPE_CHECKING:  # the store needs lmdb, of the consumers extra: the cron host imports the groups without it
    from vvv_core.runtime.state import State


class ConsumerGroup(ABC):
    """One consumer group: what it reads, how it works, where its results go.

    The class attributes are the declaration; ``store`` runs inside the turn's write
    transaction, after which the runtime publishes each detail as a ``Result`` on the results
    topic and commits offsets. Subclasses stay short.
    """

    name: ClassVar[str]  # "scoring": the group id is "<namespace>.<name>", and its metrics' label
    reads: ClassVar[str]  # which of the project's topics it consumes: "videos" or "stale"
    event_schema: ClassVar[str]  # the Avro record name read from the input topic
    detail_schema: ClassVar[str]  # the Avro record name of this group's result detail
    # validates a batch of decoded records, given as columns: an event or an InvalidEvent for each (events.py)
    parse_events: ClassVar[Callable[[dict[str, list]], list]]
    needs_db: ClassVar[bool] = True  # False: may run without the cron database, publishing results only
    publishes: ClassVar[bool] = True  # False: its outcomes are stored only, never published as results
    stateful: ClassVar[bool] = False  # True: without the cron database it keeps a state store (``keeps_state``)
    state: State | None = None  # the member's state store, set by the runtime before ``executor`` where kept

    def __init__(self, settings: Settings, conn: sqlite3.Connection | None) -> None:
        """``conn``: the cron database, or None to publish results only (where ``needs_db`` is False)."""
        self.settings = settings
        self.conn = conn

    @classmethod
    def input_topic(cls, settings: Settings) -> str:
        return settings.topic(cls.reads)

    @abstractmethod
    def prepare(self) -> None:
        """Idempotent migrations; runs once at start-up."""

    @abstractmethod
    def executor(self) -> Executor: ...

    @abstractmethod
    def store(self, conn: sqlite3.Connection, outcomes: list[Outcome]) -> None:
        """Inside the turn's write transaction: the outcomes that carry a detail (never a failure)."""

    @property
    def keeps_state(self) -> bool:
        """Whether this member keeps a state store: restored on assignment, every change to a changelog."""
        return self.stateful and self.conn is None

    def start_offsets(self, partitions: list[Partition]) -> dict[Partition, int]:
        """Where each partition's work is already done, for a group that keeps its offsets with its effects."""
        return {}

    def messages(self, outcomes: list[Outcome]) -> tuple[str, list[bytes | None]] | None:
        """A group publishing no results may publish something else for its outcomes, in the same checkpoint, each
        keyed as its event: (topic, a value per outcome or None for none), or None for no message at all."""
        return None

    def max_in_flight(self) -> int:
        """Unfinished events this member holds before it pauses fetching."""
        return self.settings.max_in_flight

    def close(self) -> None:  # noqa: B027 - optional hook
        """Called once when the member stops, after its work was drained: cut what still runs."""

    def on_assignment(self, owned: list[int], total: int) -> None:  # noqa: B027 - optional hook
        """Called after every rebalance with the input partitions this member owns, of ``total``."""


class EffectGroup(ConsumerGroup):
    """A group whose results are effects on the cron database, stored by its member (direct mode) or the sink."""

    @classmethod
    @abstractmethod
    def apply(cls, conn: sqlite3.Connection, effects: list[Effect]) -> None:
        """Store results in the cron database: the one definition, for direct mode and the sink alike."""

    def store(self, conn: sqlite3.Connection, outcomes: list[Outcome]) -> None:
        self.apply(conn, [Effect.of(o) for o in outcomes])


Groups = Mapping[str, type[ConsumerGroup]]  # the registry the command line hands to the core, by name


def mode(group: ConsumerGroup) -> str:
    """Direct: the member stores its results in the cron database; results-only: the sink does."""
    return "direct" if group.conn is not None else "results-only"


def client_id(group: ConsumerGroup) -> str:
    """The client id a member runs under: how ``vvv status`` and the console tell which mode each member
    runs in and, when it serves them, the port of its metrics and probes (``vvv-scoring-direct:9400``)."""
    port = group.settings.metrics_port
    return f"vvv-{group.name}-{mode(group)}" + (f":{port}" if port else "")


def client_mode(group: str, client: str) -> str:
    """The mode in a member's client id (``client_id``), or unknown for a client that is not ours."""
    client = client.partition(":")[0]
    return client.removeprefix(f"vvv-{group}-") if client.startswith(f"vvv-{group}-") else "unknown"


def metrics_address(client: str, host: str) -> str | None:
    """Where a member (its client id and the host the broker saw) serves its probes, if it does."""
    _, colon, port = client.partition(":")
    host = host.strip("/[]")
    return f"http://{f'[{host}]' if ':' in host else host}:{port}" if colon and port.isdigit() else None
