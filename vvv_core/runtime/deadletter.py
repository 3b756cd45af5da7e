"""The dead-letter record: the original key and value untouched, the reason in headers."""

from __future__ import annotations

from datetime import UTC, datetime

from vvv_core.runtime.model import Failure, Inbound

HEADER_PREFIX = "vvv.dlq."


def dead_letter_headers(group: str, item: Inbound, failure: Failure) -> list[tuple[str, bytes]]:
    """The source message's own headers, then ours (``vvv.dlq.*``), all UTF-8."""
    ours = {
        "group": group,
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
