"""Which offset of a partition may be committed: the first one not finished yet."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence


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
        self.take_all((offset,))

    def take_all(self, offsets: Sequence[int]) -> None:
        """Offsets taken in order (a batch's, of this partition)."""
        self._open.extend(offsets)
        self._next = offsets[-1] + 1
        self.eof = False

    def finish(self, offset: int) -> None:
        self.finish_all((offset,))

    def finish_all(self, offsets: Iterable[int]) -> None:
        self._done.update(offsets)
        if len(self._done) == len(self._open) and self._done.issuperset(self._open):
            self._open.clear()  # all finished: a batch, at once
            self._done.clear()
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
