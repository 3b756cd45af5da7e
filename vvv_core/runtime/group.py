"""What a consumer group declares; the runtime (``loop.py``) does the rest."""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from vvv_core.config import Settings
from vvv_core.runtime.executors import Executor
from vvv_core.runtime.model import Outcome


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
    parse_event: ClassVar[Callable[[dict[str, Any]], Any]]  # validates a decoded record

    def __init__(self, settings: Settings, conn: sqlite3.Connection) -> None:
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
        """Write the outcomes that carry a detail (never a failure) to SQLite."""

    def max_in_flight(self) -> int:
        """Unfinished events this member holds before it pauses fetching."""
        return self.settings.max_in_flight

    def close(self) -> None:  # noqa: B027 - optional hook
        """Called once when the member stops, after its work was drained: cut what still runs."""

    def on_assignment(self, owned: list[int], total: int) -> None:  # noqa: B027 - optional hook
        """Called after every rebalance with the input partitions this member owns, of ``total``."""


Groups = Mapping[str, type[ConsumerGroup]]  # the registry the command line hands to the core, by name
