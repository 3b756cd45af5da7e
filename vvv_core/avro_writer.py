"""Avro binary writers compiled from a schema: the same bytes as fastavro, a few times faster.

fastavro interprets the schema for every record it writes; the hook writes 10,000 events per
call and every consumer a result per event, so that interpretation was most of their encoding
time. ``compile_writer`` turns a schema into one Python function that writes its records
directly. It covers what the project's schemas use (records, enums, unions, null, boolean,
int, long, double, string); for anything else it returns None and fastavro is used.
``tests/test_avro.py`` checks it byte for byte against fastavro.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import datetime
from typing import Any

Writer = Callable[[dict[str, Any]], bytes]
_SMALL = [bytes([n]) for n in range(128)]
_double = struct.Struct("<d").pack


class Unsupported(Exception):
    """A schema construct the compiler leaves to fastavro."""


def _long(n: int) -> bytes:
    """Zig-zag, then base-128 varint: Avro's int and long."""
    n = (n << 1) ^ (n >> 63)
    if n < 128:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _millis(value: int | datetime) -> int:
    return value if type(value) is int else int(value.timestamp() * 1000)  # type: ignore[union-attr]


def compile_writer(schema: dict[str, Any], prefix: bytes = b"") -> Writer | None:
    """A function writing ``prefix`` then ``schema``'s records as Avro binary, or None if unsupported."""
    constants: dict[str, Any] = {"_SMALL": _SMALL, "_long": _long, "_double": _double, "_millis": _millis}
    constants["PREFIX"] = prefix
    lines: list[str] = []
    counter = iter(range(1_000_000))

    def name_of(t: dict[str, Any], namespace: str) -> str:
        name = t["name"]
        return name if "." in name else f"{t.get('namespace', namespace)}.{name}".lstrip(".")

    def emit(t: Any, value: str, indent: str, namespace: str) -> None:
        kind = t if isinstance(t, str) else t["type"] if isinstance(t, dict) else "union"
        if isinstance(t, dict) and isinstance(kind, (dict, list)):
            return emit(kind, value, indent, namespace)
        if kind == "null":
            return
        if kind == "boolean":
            lines.append(f"{indent}out += b'\\x01' if {value} else b'\\x00'")
        elif kind in ("int", "long"):
            millis = isinstance(t, dict) and t.get("logicalType") in ("timestamp-millis", "time-millis")
            v = f"n{next(counter)}"
            lines.append(f"{indent}{v} = _millis({value})" if millis else f"{indent}{v} = {value}")
            lines.append(f"{indent}out += _SMALL[{v} << 1] if 0 <= {v} < 64 else _long({v})")  # most counts: no call
        elif kind == "double":
            lines.append(f"{indent}out += _double({value})")
        elif kind == "string":
            v = f"s{next(counter)}"
            lines.append(f"{indent}{v} = {value}.encode()")
            lines.append(f"{indent}out += _SMALL[len({v}) << 1] if len({v}) < 64 else _long(len({v}))")
            lines.append(f"{indent}out += {v}")
        elif kind == "enum":
            table = f"enum{next(counter)}"
            constants[table] = {symbol: _long(i) for i, symbol in enumerate(t["symbols"])}
            lines.append(f"{indent}out += {table}[{value}]")
        elif kind == "record":
            v = f"r{next(counter)}"
            lines.append(f"{indent}{v} = {value}")
            inner = t.get("namespace", namespace) if "." not in t["name"] else t["name"].rpartition(".")[0]
            for f in t["fields"]:
                key = repr(f["name"])
                if "default" in f:
                    default = f"d{next(counter)}"
                    constants[default] = f["default"]
                    emit(f["type"], f"{v}.get({key}, {default})", indent, inner)
                else:
                    emit(f["type"], f"{v}[{key}]", indent, inner)
        elif kind == "union":
            branches = list(t)
            v = f"u{next(counter)}"
            lines.append(f"{indent}{v} = {value}")
            if len(branches) == 2 and "null" in branches:
                index = branches.index("null")
                lines.append(f"{indent}if {v} is None:")
                lines.append(f"{indent}    out += {_long(index)!r}")
                lines.append(f"{indent}else:")
                lines.append(f"{indent}    out += {_long(1 - index)!r}")
                emit(branches[1 - index], v, indent + "    ", namespace)
            elif all(isinstance(b, dict) and b.get("type") == "record" for b in branches):
                # fastavro's notation for a union of records: (full name, record)
                lines.append(f"{indent}name{v}, {v} = {v}")
                for i, branch in enumerate(branches):
                    full = name_of(branch, namespace)
                    short = full.rpartition(".")[2]
                    lines.append(f"{indent}{'if' if i == 0 else 'elif'} name{v} in ({full!r}, {short!r}):")
                    lines.append(f"{indent}    out += {_long(i)!r}")
                    emit(branch, v, indent + "    ", namespace)
                lines.append(f"{indent}else:")
                lines.append(f"{indent}    raise ValueError(f'{{name{v}!r}} is not in the union')")
            else:
                raise Unsupported(f"union {branches}")
        else:
            raise Unsupported(str(kind))
        return None

    try:
        emit(schema, "record", "    ", "")
    except Unsupported:
        return None
    source = "def write(record):\n    out = bytearray(PREFIX)\n" + "\n".join(lines) + "\n    return bytes(out)\n"
    exec(compile(source, f"<avro writer {schema.get('name')}>", "exec"), constants)
    return constants["write"]
