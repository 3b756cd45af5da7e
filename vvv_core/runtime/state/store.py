"""One partition's local store: key -> value in an lmdb environment, and how far into the changelog it is.

lmdb was chosen by measurement (``bench/store.py``; the README's state-store section has the figures):
on scoring's own pattern (a batch's keys read, then written with the changelog position in one
transaction) it was about three times as fast per key as SQLite and twice as fast as RocksDB
(rocksdict), and it is one small wheel. A batch's rows and the changelog position they reached go in
one transaction, so the two never disagree whatever the crash. ``metasync=False``: one fsync per
transaction, and a power cut may undo the last transaction but never damages the file; a store that
lost it is only behind, which a restore catches up. A killed process loses nothing (the page cache).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import lmdb

POSITION = b"\x00position"  # no video id starts with a NUL: where the changelog position lives
MAP_SIZE = 1 << 30  # address space, not disk (the file grows as it fills); doubled when full


class StoreDamaged(Exception):
    """The files are not a store this code can trust: it is wiped and restored from the changelog's start."""


class PartitionStore:
    """``position``: the changelog offset the store holds everything before (0: nothing yet)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._env = lmdb.open(str(path), map_size=MAP_SIZE, metasync=False)
            with self._env.begin() as txn:
                raw = txn.get(POSITION)
            self.position = int(raw) if raw is not None else 0
        except (lmdb.Error, ValueError) as exc:
            raise StoreDamaged(f"{path}: {exc}") from None

    def get(self, keys: Iterable[str]) -> dict[str, bytes]:
        with self._env.begin() as txn:
            return {k: v for k in keys if (v := txn.get(k.encode())) is not None}

    def write(self, rows: Iterable[tuple[str, bytes]], position: int) -> None:
        """``rows`` and the changelog position they reached, in one transaction."""
        rows = [(k.encode(), v) for k, v in rows]
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    for key, value in rows:
                        txn.put(key, value)
                    txn.put(POSITION, str(position).encode())
                break
            except lmdb.MapFullError:  # the transaction was aborted: more room, and again
                self._env.set_mapsize(self._env.info()["map_size"] * 2)
        self.position = position

    def items(self) -> dict[str, bytes]:
        with self._env.begin() as txn:
            return {k.decode(): v for k, v in txn.cursor() if k != POSITION}

    def __len__(self) -> int:
        return self._env.stat()["entries"] - (self.position > 0)

    def close(self) -> None:
        self._env.close()

    @staticmethod
    def wipe(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)
