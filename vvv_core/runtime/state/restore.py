"""Restore on assignment: a partition newly owned is caught up from its changelog before its input is read.

Its input is paused (other partitions go on: incremental assignment), its changelog read from the
store's own position (0 for a new or damaged store) with ``read_committed``, and applied a batch at
a time, until the reader's position reaches the changelog's high watermark: after the last record
come transaction markers, and the records of a transaction still open, which it waits for (a dead
member's is aborted within ``transaction.timeout.ms``). "Last offset = high watermark - 1" would hang
on a marker. Then the input is resumed. A partition given up mid-restore just stops: its store keeps
what it restored (committed data, with its position), and the next owner goes on from there.

A changelog shorter than the store's position, or one that starts again below it, is not the one the
store came from (deleted and created again): the store is wiped and restored from the start.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from vvv_core.runtime.backends import Backend
from vvv_core.runtime.model import Inbound, Partition
from vvv_core.runtime.state import State


class Restorer:
    def __init__(self, state: State, backend: Backend, log: logging.LoggerAdapter, batch_size: int) -> None:
        self.state = state
        self.backend = backend
        self.log = log
        self.batch_size = batch_size

    def start(self, partitions: list[Partition]) -> None:
        for tp in partitions:
            if tp in self.state.stores:
                continue  # owned already: an assignment repeated changes nothing
            position = self.state.open(tp)
            self.backend.pause(True, [tp])
            self.backend.restore(self.state.changelog_partition(tp), position)
            self.state.restoring.add(tp)
            self.log.info("restoring %s[%d] from %s@%d", tp[0], tp[1], self.state.changelog, position)

    def stop(self, partitions: list[Partition]) -> None:
        """Given up (restoring or not): stop reading their changelogs, close their stores."""
        restoring = [tp for tp in partitions if tp in self.state.restoring]
        self.backend.stop_restore([self.state.changelog_partition(tp) for tp in restoring])
        self.state.close(partitions)

    def step(self, timeout: float) -> list[Partition]:
        """Read and apply what came; the partitions whose restore finished now (their input resumed)."""
        if not self.state.restoring:
            return []
        by_partition: dict[Partition, list[Inbound]] = defaultdict(list)
        for record in self.backend.read_restore(self.batch_size, timeout):
            by_partition[(record.topic, record.partition)].append(record)
        for (_changelog, number), records in by_partition.items():
            tp = next((t for t in self.state.restoring if t[1] == number), None)
            if tp is not None:
                self._apply(tp, records)
        return [tp for tp in list(self.state.restoring) if self._finished(tp)]

    def _apply(self, tp: Partition, records: list[Inbound]) -> None:
        store = self.state.stores[tp]
        if records[0].offset < store.position:  # read from the start again: a changelog made anew
            self.log.warning("%s[%d]: its changelog starts again below the store's position: wiping it", *tp)
            self.state.wipe(tp)
            store = self.state.stores[tp]
        rows = {r.key.decode(): r.value for r in records if r.key is not None and r.value is not None}
        store.write(rows.items(), records[-1].offset + 1)

    def _finished(self, tp: Partition) -> bool:
        store, changelog = self.state.stores[tp], self.state.changelog_partition(tp)
        position, high = self.backend.restore_position(changelog)
        if high is None:
            return False  # not fetched yet
        if store.position > high:  # the changelog is shorter than the store: not the one it came from
            self.log.warning("%s[%d]: the store is past its changelog's end: wiping it, restoring from 0", *tp)
            self.backend.stop_restore([changelog])
            self.state.wipe(tp)
            self.backend.restore(changelog, 0)
            return False
        position = store.position if position is None else position
        if position < high:
            return False
        if position > store.position:  # markers (and aborted records) past the last record read
            store.write((), position)
        self.backend.stop_restore([changelog])
        self.backend.pause(False, [tp])
        self.state.restoring.discard(tp)
        self.log.info("restored %s[%d]: %d keys, changelog position %d", tp[0], tp[1], len(store), position)
        return True

    def left(self) -> int | None:
        """Changelog records still to read, over every partition restoring; None until each is known."""
        left = 0
        for tp in self.state.restoring:
            position, high = self.backend.restore_position(self.state.changelog_partition(tp))
            if high is None:
                return None
            left += max(0, high - (self.state.stores[tp].position if position is None else position))
        return left
