"""Logging set-up: readable lines by default, one JSON object per line with ``--log-json``."""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import threading
import time
from datetime import UTC, datetime

NUMBERS = re.compile(r"\d+")
CONTEXT = ("group", "topic", "partition", "offset")  # passed as ``extra=`` where they apply


class JsonFormatter(logging.Formatter):
    def __init__(self, process: bool = False) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            **({"process": record.process} if self.process else {}),
            "message": record.getMessage(),
            **{name: getattr(record, name) for name in CONTEXT if hasattr(record, name)},
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def where(group: str, topic: str | None = None, partition: int | None = None, offset: int | None = None) -> dict:
    """The ``extra=`` for a log line about a group, and a message's place when there is one."""
    return {
        k: v
        for k, v in (("group", group), ("topic", topic), ("partition", partition), ("offset", offset))
        if v is not None
    }


def configure(verbose: bool = False, as_json: bool = False, process: bool = False) -> None:
    """``process``: each line names its process (`vvv consume --processes`' members share one stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    name = "%(name)s[%(process)d]" if process else "%(name)s"
    handler.setFormatter(
        JsonFormatter(process) if as_json else logging.Formatter(f"%(asctime)s %(levelname)-7s {name}: %(message)s")
    )
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)


class ContextLog(logging.LoggerAdapter):
    """Adds fixed context (a group) to every line, merged with the line's own ``extra=``."""

    def process(self, msg, kwargs):  # type: ignore[override]
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


class OncePerInterval(logging.Filter):
    """Lets each kind of line through once per ``interval`` seconds, then says how many it held back.

    A line's kind is its text with the numbers blanked: librdkafka logs a failed connection
    attempt up to twenty times a second while a broker is away, which would bury everything.
    """

    def __init__(self, interval: float = 60.0, kinds: int = 1000) -> None:
        super().__init__()
        self.interval = interval
        self.kinds = kinds
        self._seen: dict[str, tuple[float, int]] = {}  # kind -> (let through at, held back since)
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        kind = NUMBERS.sub("#", text)
        now = time.monotonic()
        with self._lock:
            shown, held = self._seen.get(kind, (-math.inf, 0))
            if now - shown < self.interval:
                self._seen[kind] = (shown, held + 1)
                return False
            if len(self._seen) >= self.kinds:
                self._seen.clear()
            self._seen[kind] = (now, 0)
        if held:
            record.msg, record.args = f"{text} ({held} more like it held back in {self.interval:g} s)", ()
        return True
