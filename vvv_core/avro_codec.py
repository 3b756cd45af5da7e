"""Avro binary for the project's schemas, run by a small compiled extension (``_avro.c``).

A schema is compiled here into a *program*, nested tuples the extension interprets; what it
covers is what the project's schemas use (records, enums, unions of null and one type or of
records, null, boolean, int, long, double, string, timestamp-millis), and any other construct is
refused when the schema is loaded, not met on the hot path. One implementation: the hook, every
consumer and the sink write through ``writer``; the runtime reads whole batches through ``reader``
(fastavro reads the rest: other writer schemas, the registry's wire format, damaged records).
``tests/test_avro.py`` checks both byte for byte against fastavro over every schema.

Why compiled, with the figures, in the README's Benchmarks section: a record costs a few hundred
nanoseconds here, against microseconds in fastavro or in a writer compiled to Python.

A program node is ``(kind, ...)``: ``(RECORD, names, types, defaults)`` (a default is ``(value,)``, or
None for a required field), ``(UNION, branches, {record name: index}, index of null or -1)``,
``(ENUM, symbols, {symbol: index})``, ``(MILLIS, to_millis)``, and ``(kind,)`` for the other primitives.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from vvv_core._avro import Reader, Writer

NULL, BOOLEAN, INT, LONG, DOUBLE, STRING, ENUM, RECORD, UNION, MILLIS = range(10)
PRIMITIVES = {"null": NULL, "boolean": BOOLEAN, "int": INT, "long": LONG, "double": DOUBLE, "string": STRING}
MILLIS_TYPES = ("timestamp-millis", "local-timestamp-millis")


class Unsupported(ValueError):
    """A schema construct the project's codec does not cover."""


def to_millis(value: datetime) -> int:
    """A timestamp given as a datetime, as fastavro writes it (naive is UTC)."""
    return int(value.timestamp() * 1000)


def program(schema: Any) -> tuple:
    """The program the extension runs for ``schema`` (a schema as written, or parsed by ``avro.parse``)."""
    named: dict[str, tuple] = {}

    def full_name(t: dict[str, Any], namespace: str) -> str:
        name = t["name"]
        return name if "." in name else f"{t.get('namespace', namespace)}.{name}".lstrip(".")

    def node(t: Any, namespace: str) -> tuple:
        if isinstance(t, list):
            branches = [node(b, namespace) for b in t]
            by_name: dict[str, int] = {}
            for i, b in enumerate(t):
                if isinstance(b, dict) and b.get("type") == "record":
                    name = full_name(b, namespace)
                    by_name[name] = by_name[name.rpartition(".")[2]] = i
            null = next((i for i, b in enumerate(branches) if b[0] == NULL), -1)
            if not by_name and not (len(t) == 2 and null >= 0):
                raise Unsupported(f"union {t}")
            if by_name and len(by_name) != 2 * (len(t) - (null >= 0)):
                raise Unsupported(f"union of records and other types {t}")
            return (UNION, tuple(branches), by_name, null)
        if isinstance(t, str):
            if t in PRIMITIVES:
                return (PRIMITIVES[t],)
            name = t if "." in t or not namespace else f"{namespace}.{t}"
            if name in named or t in named:
                return named.get(name) or named[t]
            raise Unsupported(t)
        kind = t["type"]
        if isinstance(kind, (dict, list)):
            return node(kind, namespace)
        if kind in ("int", "long") and t.get("logicalType") in MILLIS_TYPES:
            return (MILLIS, to_millis)
        if kind in PRIMITIVES:
            return (PRIMITIVES[kind],)
        if kind == "enum":
            made = (ENUM, tuple(t["symbols"]), {s: i for i, s in enumerate(t["symbols"])})
        elif kind == "record":
            inner = full_name(t, namespace).rpartition(".")[0]
            fields = t["fields"]
            made = (
                RECORD,
                tuple(f["name"] for f in fields),
                tuple(node(f["type"], inner) for f in fields),
                tuple((f["default"],) if "default" in f else None for f in fields),
            )
        else:
            raise Unsupported(str(kind))
        named[full_name(t, namespace)] = named[t["name"].rpartition(".")[2]] = made
        return made

    return node(schema, "")


def writer(schema: dict[str, Any], prefix: bytes = b"") -> Writer:
    """Writes ``prefix`` then a record as Avro binary: ``writer(record)`` (a dict, or a tuple in the schema's
    field order), or ``writer.columns(columns, count)`` for ``count`` records given field by field."""
    return Writer(program(schema), prefix)


def reader(schema: dict[str, Any], header: bytes) -> Reader:
    """Reads batches of records written with ``schema`` behind ``header`` into columns (``Reader.columns``)."""
    return Reader(program(schema), header)
