"""The outbox's files: segments of messages, kept records, what was delivered of them, and who may use them.

A segment is written whole under a temporary name, fsynced, renamed into place and its folder
fsynced: a reader sees all of it or nothing, and it survives a power cut. Once in place a file is
never rewritten: what a later send could not deliver goes to a new file, so no file ever changes
format under its name (a ``.records`` file holding segment bytes once stopped an outbox for good).

Names sort in delivery order: ``<order, 20 digits>-<pid>-<sequence>-<messages><suffix>``. The order
is the time the file was written (never going back within a process); a file that must be read
before the others (what a send left behind, see ``vvv_core.outbox``) is named below the first one.

A segment's messages are ``topic, key, value`` (format 1, ``VVVOUTBOX1``), or with their headers too
(format 2, ``VVVOUTBOX2``: a message's trace context, ``vvv_core.tracing``). A segment whose messages have no
headers is written in format 1, as before headers existed (a version before them reads it); both are read.

What was delivered of a segment is an append-only record, ``progress``: one line per acknowledged
piece, ``<segment name> <messages delivered>``, fsynced before the drain goes on. Appending costs one
small write and one fsync per piece, where rewriting the rest of a large segment after each piece
would cost its whole size again; a line torn by a crash is ignored or reads as a smaller count
(a prefix of a number is never larger), which can only repeat messages, never skip one.

Two users share the outbox through its folder's group: the hook runs in the cron's own Python, `vvv
publish` perhaps as another user. Files are created 0660 and folders 2770, whatever the umask:
the group may read and write everything (both sides create, append to, rename and delete files),
others nothing (the events are the cron's data). The setgid bit makes every file take the folder's
group, which is the group of the cron database's directory when that directory is setgid (how the
operator chooses it), else the primary group of whoever created the folder; no file is ever
``chgrp``-ed. A file created 0600 by an older version is opened up by its owner on next use.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import stat
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

FILE_MODE = 0o660
DIR_MODE = 0o2770  # setgid: files take the folder's group
MAGIC = b"VVVOUTBOX1\n"  # messages without headers
MAGIC_HEADERS = b"VVVOUTBOX2\n"  # each message followed by its headers
RECORD = struct.Struct(">HiI")  # topic length, key length (-1: no key), value length
HEADERS = struct.Struct(">H")  # format 2, after each message: how many headers, then each as HEADER and its bytes
HEADER = struct.Struct(">HI")  # a header's name length, value length
SEGMENT = ".seg"
RECORDS = ".records"  # records kept before they could be encoded: {"new": [...], "stale": [...]}
SEGMENT_MESSAGES = 10_000  # per file: the hook's usual call; a large backlog is read a file at a time
PROGRESS_COMPACT_BYTES = 1 << 20  # a progress record longer than this is rewritten with its live lines
LOCK_POLL = 0.01  # seconds between attempts at the drain lock
_sequence = itertools.count()
_last_order = 0


class Message(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] | None = None


Encode = Callable[[dict[str, list[dict]]], list[Message]]  # records kept unencoded -> messages, now


class Damaged(Exception):
    """A file of the outbox that cannot be read as what its name says."""


def _messages(body: bytes, framed: bool) -> list[Message]:
    """A segment's body as messages; ``framed``: format 2, headers after each message."""
    messages, at, unpack, size = [], 0, RECORD.unpack_from, RECORD.size
    while at < len(body):
        topic_len, key_len, value_len = unpack(body, at)
        at += size
        topic = body[at : at + topic_len].decode()
        at += topic_len
        key = None if key_len < 0 else body[at : at + key_len]
        at += max(key_len, 0)
        value = body[at : at + value_len]
        at += value_len
        headers = None
        if framed:
            (count,) = HEADERS.unpack_from(body, at)
            at += HEADERS.size
            headers = []
            for _ in range(count):
                label_len, data_len = HEADER.unpack_from(body, at)
                at += HEADER.size
                headers.append((body[at : at + label_len].decode(), body[at + label_len : at + label_len + data_len]))
                at += label_len + data_len
        messages.append(Message(topic, key, value, headers))
    if at != len(body):
        raise struct.error("a message runs past the end of the segment")
    return messages


def open_shared(path: Path, flags: int) -> int:
    """A file descriptor on ``path``, created if missing, that the folder's group can use too."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    try:
        st = os.fstat(fd)
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != FILE_MODE:  # the umask took bits away
            os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_shared_dir(path: Path) -> None:
    """``path`` as a folder its group shares (see the module's docstring); its parent must exist."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, DIR_MODE)
    st = os.stat(path)
    if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & DIR_MODE != DIR_MODE:
        os.chmod(path, stat.S_IMODE(st.st_mode) | DIR_MODE)


def _next_order() -> int:
    """The time now in ns, never the same nor going back within this process."""
    global _last_order
    _last_order = max(time.time_ns(), _last_order + 1)
    return _last_order


class Spool:
    """Segment files in one folder, read and removed only under the drain lock."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.progress_path = folder / "progress"

    def segments(self) -> list[Path]:
        """Segments and kept records, oldest first."""
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.suffix in (SEGMENT, RECORDS))

    @contextlib.contextmanager
    def drain_lock(self, deadline: float) -> Iterator[bool]:
        """Yields True while this process holds the drain lock, False if it could not be had by ``deadline``."""
        make_shared_dir(self.folder)
        fd = open_shared(self.folder / "lock", os.O_RDWR)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(LOCK_POLL)
            yield True
        finally:
            os.close(fd)  # releases the lock

    # -- reading --------------------------------------------------------------------------------

    def read(self, segment: Path, encode: Encode) -> list[Message]:
        """A file's messages; kept records are encoded now (which may raise). Damaged: it cannot be read."""
        try:
            data = segment.read_bytes()
        except OSError as exc:
            raise Damaged(f"outbox file {segment} cannot be read ({exc.strerror})") from None
        if segment.suffix == RECORDS:
            return encode(self._records(segment, data))
        body, crc = data[len(MAGIC) : -4], data[-4:]
        framed = data.startswith(MAGIC_HEADERS)
        if (
            not (framed or data.startswith(MAGIC))
            or len(data) < len(MAGIC) + 4
            or zlib.crc32(body).to_bytes(4, "big") != crc
        ):
            raise Damaged(f"outbox segment {segment} is damaged")
        try:
            return _messages(body, framed)
        except (struct.error, UnicodeDecodeError):  # a checksum that matches a body that does not parse
            raise Damaged(f"outbox segment {segment} is damaged") from None

    @staticmethod
    def _records(segment: Path, data: bytes) -> dict[str, list[dict]]:
        try:
            records = json.loads(data)
        except ValueError:
            raise Damaged(f"outbox records {segment} are not the JSON they were written as") from None
        if not (isinstance(records, dict) and all(isinstance(records.get(k), list) for k in ("new", "stale"))):
            raise Damaged(f"outbox records {segment} are not {{'new': [...], 'stale': [...]}}")
        return records

    def count(self, segment: Path) -> int:
        """How many messages a file holds: from its name (files written before the count was named: read)."""
        parts = segment.stem.split("-")
        if len(parts) == 4 and parts[3].isdigit():
            return int(parts[3])
        try:
            if segment.suffix == RECORDS:
                records = self._records(segment, segment.read_bytes())
                return len(records["new"]) + len(records["stale"])
            return len(self.read(segment, lambda kept: []))
        except (Damaged, OSError):
            return 0

    def delivered(self) -> dict[str, int]:
        """Messages delivered from the start of each segment, by name (the progress record folded)."""
        try:
            text = self.progress_path.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return {}
        done: dict[str, int] = {}
        for line in text.split("\n")[:-1]:  # the last part has no newline: torn or empty
            match line.split(" "):
                case [name, count] if count.isdigit():
                    done[name] = max(done.get(name, 0), int(count))
        return done

    def waiting(self) -> int:
        """Messages in the outbox not delivered yet."""
        done = self.delivered()
        return sum(max(0, self.count(s) - done.get(s.name, 0)) for s in self.segments())

    # -- writing --------------------------------------------------------------------------------

    def write(self, messages: list[Message], order: int | None = None) -> list[Path]:
        """New segments holding ``messages``, at most SEGMENT_MESSAGES each, durable on return.

        ``order``: the first file's place in the order (later files follow it); by default after every file.
        """
        paths = []
        for start in range(0, len(messages), SEGMENT_MESSAGES):
            chunk = messages[start : start + SEGMENT_MESSAGES]
            framed = any(m.headers for m in chunk)
            parts = []
            for topic, key, value, headers in chunk:
                name = topic.encode()
                parts += [RECORD.pack(len(name), -1 if key is None else len(key), len(value)), name, key or b"", value]
                if framed:
                    parts.append(HEADERS.pack(len(headers or ())))
                    for header, data in headers or ():
                        label, data = header.encode(), data or b""
                        parts += [HEADER.pack(len(label), len(data)), label, data]
            body = b"".join(parts)
            at = _next_order() if order is None else order + start // SEGMENT_MESSAGES
            magic = MAGIC_HEADERS if framed else MAGIC
            paths.append(self._put(magic + body + zlib.crc32(body).to_bytes(4, "big"), at, len(chunk), SEGMENT))
        self._sync_folder()
        return paths

    def write_records(self, records: dict[str, list[dict]]) -> Path:
        """Validated records that cannot be encoded yet, kept whole, durable on return."""
        count = len(records["new"]) + len(records["stale"])
        path = self._put(json.dumps(records).encode(), _next_order(), count, RECORDS)
        self._sync_folder()
        return path

    def _put(self, data: bytes, order: int, count: int, suffix: str) -> Path:
        """``data`` under its final name, all or nothing: written to a temporary file, fsynced, renamed."""
        make_shared_dir(self.folder)
        target = self.folder / f"{order:020d}-{os.getpid()}-{next(_sequence)}-{count}{suffix}"
        tmp = target.with_suffix(".tmp")
        fd = open_shared(tmp, os.O_WRONLY | os.O_EXCL)
        try:
            with open(fd, "wb", closefd=False) as f:
                f.write(data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        return target

    def _sync_folder(self) -> None:
        """Renames and new names survive a power cut once their folder is fsynced."""
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def record_delivered(self, segment: Path, count: int) -> None:
        """The first ``count`` messages of ``segment`` are acknowledged: durable on return."""
        fd = open_shared(self.progress_path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, f"\n{segment.name} {count}\n".encode())  # led by a newline: a torn line stays its own
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove(self, segment: Path) -> None:
        """A segment wholly delivered (a crash before this repeats it, never loses it)."""
        segment.unlink(missing_ok=True)

    def set_aside(self, segment: Path) -> Path:
        """A file that cannot be read is renamed, never deleted: an operator can still look at it."""
        damaged = segment.with_suffix(".damaged")
        segment.rename(damaged)
        return damaged

    def tidy(self) -> None:
        """The progress record kept short: gone once the outbox is empty, rewritten with its live lines when long;
        temporary files a crash left behind removed (a writer still writing one is never an hour at it)."""
        for tmp in self.folder.glob("*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                if time.time() - tmp.stat().st_mtime > 3600:
                    tmp.unlink()
        segments = self.segments()
        if not segments:
            self.progress_path.unlink(missing_ok=True)
            return
        with contextlib.suppress(FileNotFoundError):
            if self.progress_path.stat().st_size > PROGRESS_COMPACT_BYTES:
                done = self.delivered()
                live = "".join(f"{s.name} {done[s.name]}\n" for s in segments if s.name in done)
                tmp = self.progress_path.with_suffix(".tmp")
                fd = open_shared(tmp, os.O_WRONLY | os.O_TRUNC)
                try:
                    os.write(fd, live.encode())
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, self.progress_path)
