"""Which offset of a partition may be committed: the first one not finished yet."""

from __future__ import annotations

from collections import deque


class PartitionOffsets:
    """Offsets taken from one partition, in order, and which of them are finished.

    Work may finish out of order (concurrent checks, retries); the committable offset never
    passes an unfinished one, so a crash can repeat work but never skip it.
    """

    __slots__ = ("_done", "_next", "_open", "committed", "eof")

    def __init__(self) -> None:
        self._open: deque[int] = deque()
        self._done: set[int] = set()
        self._next: int | None = None  # one past the last offset taken
        self.committed: int | None = None
        self.eof = False

    def take(self, offset: int) -> None:
        self._open.append(offset)
        self._next = offset + 1
        self.eof = False

    def finish(self, offset: int) -> None:
        self._done.add(offset)
        while self._open and self._open[0] in self._done:
            self._done.discard(self._open.popleft())

    @property
    def position(self) -> int | None:
        """One past the last offset taken."""
        return self._next

    @property
    def unfinished(self) -> int:

        return len(self._open)

    def committable(self) -> int | None:
        """The offset to commit (the next one to process), or None when nothing new is finished."""
        position = self._open[0] if self._open else self._next
        return None if position is None or position == self.committed else position
