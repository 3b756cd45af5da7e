"""Logging set-up: readable lines by default, one JSON object per line with ``--log-json``."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

CONTEXT = ("group", "topic", "partition", "offset")  # passed as ``extra=`` where they apply


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
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


def configure(verbose: bool = False, as_json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)


class ContextLog(logging.LoggerAdapter):
    """Adds fixed context (a group) to every line, merged with the line's own ``extra=``."""

    def process(self, msg, kwargs):  # type: ignore[override]
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs
