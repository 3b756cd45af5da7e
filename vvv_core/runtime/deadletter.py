"""Dead-letter policy: what a dead letter holds, and when too many of them stop the consumer.

A dead letter is the source message's key and value untouched, with the reason in headers
(``vvv.dlq.*``); a value too large to keep whole is left on the source topic, named in the
headers. A consumer whose recent events are mostly dead letters stops instead: a producer
writing the wrong format would otherwise empty the topic into the dead-letter topic.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime

from vvv_core.runtime.model import ConsumerStopped, Failure, Inbound

HEADER_PREFIX = "vvv.dlq."
WINDOW = 1000  # recent events the ratio is taken over
# A dead letter is VVV_MAX_MESSAGE_BYTES plus 64 KiB at most (Settings.dead_letter_bytes): the source's key and
# its headers get 16 KiB each (a video id is 64 bytes), ours take under 4 KiB. Beyond, they are left on the
# source topic, like a value too large.
SOURCE_ROOM = 16 * 1024
MIN_SAMPLE = 100  # events seen before the ratio can stop the consumer


class TooManyDeadLetters(ConsumerStopped):
    """Most recent events were dead letters: a producer is probably writing the wrong format."""


def dead_letter_headers(group: str, item: Inbound, failure: Failure) -> list[tuple[str, bytes]]:
    """The source message's own headers, then ours (``vvv.dlq.*``), all UTF-8."""
    ours = {
        "group": group,
        "error.kind": failure.kind,
        "error.class": failure.error_class,
        "error.message": failure.message[:2000],
        "source.topic": item.topic,
        "source.partition": str(item.partition),
        "source.offset": str(item.offset),
        "attempts": str(failure.attempts),
        "failed.at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    own = [(k, v) for k, v in (item.headers or []) if not k.startswith(HEADER_PREFIX)]
    return own + [(HEADER_PREFIX + k, v.encode()) for k, v in ours.items()]


def read_headers(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    """Our ``vvv.dlq.*`` headers of a dead-letter record, without the prefix."""
    return {
        k.removeprefix(HEADER_PREFIX): (v or b"").decode(errors="replace")
        for k, v in headers or []
        if k.startswith(HEADER_PREFIX)
    }


class DeadLetterPolicy:
    def __init__(self, group: str, topic: str, input_topic: str, max_ratio: float, max_bytes: int) -> None:
        self.group = group
        self.topic = topic
        self._input_topic = input_topic
        self._max_ratio = max_ratio
        self._max_bytes = max_bytes
        self._recent: deque[bool] = deque(maxlen=WINDOW)
        self._recent_dead = 0  # how many of _recent are True, kept as the window slides

    def message(self, item: Inbound, failure: Failure) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
        """The dead letter's key, value and headers: the source's own, but what the producer could not send
        (a value over VVV_MAX_MESSAGE_BYTES; a key or headers over their room, which no video needs)."""
        headers = dead_letter_headers(self.group, item, failure)
        key, value = item.key, item.value
        own = sum(len(k) + len(v or b"") for k, v in headers if not k.startswith(HEADER_PREFIX))
        if own > SOURCE_ROOM:
            headers = [(k, v) for k, v in headers if k.startswith(HEADER_PREFIX)]
            headers.append((f"{HEADER_PREFIX}headers.omitted", str(own).encode()))
        if key is not None and len(key) > SOURCE_ROOM:
            headers.append((f"{HEADER_PREFIX}key.omitted", str(len(key)).encode()))
            key = None
        if value is not None and len(value) > self._max_bytes:
            headers.append((f"{HEADER_PREFIX}value.omitted", str(len(value)).encode()))
            value = None
        return key, value, headers

    def judge(self, dead: Iterable[bool]) -> None:
        """Count events as dead letters or not; raise before publishing them when too many are."""
        window = self._recent
        window.extend(dead)
        self._recent_dead = sum(window)  # a thousand at most, once a batch
        if len(window) < MIN_SAMPLE:
            return
        ratio = self._recent_dead / len(window)
        if ratio > self._max_ratio:
            raise TooManyDeadLetters(
                f"{ratio:.0%} of the last {len(window)} events were dead-lettered "
                f"(limit VVV_DLQ_MAX_RATIO={self._max_ratio:g}): is a producer writing the wrong "
                f"format to {self._input_topic}? See `vvv dlq list {self.group}`"
            )
