"""A group's state: a local store per input partition, every change also written to a compacted changelog.

Reads and writes happen a batch at a time in the poll thread (``get``, ``put``). Each change goes to
the changelog partition of the input message it came from, in the same batch as the results (and,
with exactly-once, the same transaction as them and the offsets: ``checkpoint.py`` owns that order).
**The local store is never ahead of what was committed**: a change is kept in memory (``_unsaved``,
which reads see first) until its changelog record is acknowledged (at-least-once) or its transaction
committed (exactly-once), and only then written to the store with the changelog position it reached
(``save``). So after any crash a store can only be behind, and a restore from its own position
catches it up: nothing is ever wiped for having run ahead. At-least-once stays correct because
applying the same change twice is a no-op. ``restore.py`` restores a partition on assignment.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from vvv_core.runtime.model import Partition
from vvv_core.runtime.state.store import PartitionStore, StoreDamaged

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Change:
    partition: Partition  # the input partition it came from: its changelog partition has the same number
    key: str
    value: bytes


class State:
    def __init__(self, directory: Path, changelog: str) -> None:
        """``directory``: this group's stores, one file per input partition; ``changelog``: its topic."""
        self.directory = directory
        self.changelog = changelog
        self.stores: dict[Partition, PartitionStore] = {}  # owned input partitions, restoring or ready
        self.restoring: set[Partition] = set()
        self._unsaved: dict[Partition, dict[str, bytes]] = defaultdict(dict)  # newest value not in the store yet
        self._changes: list[Change] = []  # made since the last ``take``

    def changelog_partition(self, partition: Partition) -> Partition:
        return self.changelog, partition[1]

    # -- the assignment -------------------------------------------------------------------

    def open(self, partition: Partition) -> int:
        """Open ``partition``'s store, or a new one in place of a damaged one; its changelog position."""
        path = self.directory / f"{partition[0]}-{partition[1]}.lmdb"
        try:
            store = PartitionStore(path)
        except StoreDamaged as exc:
            log.warning("state store %s cannot be trusted (%s): restoring it from the changelog's start", path, exc)
            PartitionStore.wipe(path)
            store = PartitionStore(path)
        self.stores[partition] = store
        return store.position

    def wipe(self, partition: Partition) -> None:
        store = self.stores.pop(partition)
        store.close()
        PartitionStore.wipe(store.path)
        self.open(partition)

    def close(self, partitions: list[Partition]) -> None:
        """Given up: the store closed as it is (behind or even), what it did not save dropped."""
        gone = set(partitions)
        for tp in gone:
            if (store := self.stores.pop(tp, None)) is not None:
                store.close()
            self._unsaved.pop(tp, None)
            self.restoring.discard(tp)
        self._changes = [c for c in self._changes if c.partition not in gone]

    # -- a batch --------------------------------------------------------------------------

    def get(self, partition: Partition, keys: set[str]) -> dict[str, bytes]:
        """The current values of ``keys`` in ``partition``: changes not saved yet first, then the store."""
        unsaved = self._unsaved.get(partition, {})
        found = self.stores[partition].get(k for k in keys if k not in unsaved)
        found.update((k, unsaved[k]) for k in keys if k in unsaved)
        return found

    def put(self, partition: Partition, key: str, value: bytes) -> None:
        self._unsaved[partition][key] = value
        self._changes.append(Change(partition, key, value))

    def take(self) -> list[Change]:
        """The changes made since the last call, for the changelog."""
        changes, self._changes = self._changes, []
        return changes

    def save(self, changes: list[Change], positions: dict[int, int]) -> None:
        """Changes now in the changelog for good: into the store, with the position they reached (``positions``:
        per changelog partition, one past the last offset this member wrote there, every write before answered)."""
        by_partition: dict[Partition, list[Change]] = defaultdict(list)
        for change in changes:
            if change.partition in self.stores:  # else given up since: the next owner restores it
                by_partition[change.partition].append(change)
        for tp, saved in by_partition.items():
            self.stores[tp].write([(c.key, c.value) for c in saved], positions[tp[1]])
            unsaved = self._unsaved[tp]
            for c in saved:
                if unsaved.get(c.key) is c.value:  # no newer change of the key waits
                    del unsaved[c.key]
