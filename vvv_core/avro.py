"""Avro single-object encoding (Avro spec, "Single object encoding") on fastavro.

Each message value is ``C3 01`` + the writer schema's 8-byte little-endian CRC-64-AVRO
fingerprint + the Avro binary body, so any Avro library can decode it from the ``.avsc``
files alone. Readers resolve the writer schema by fingerprint and project it onto the
current (reader) schema of the same name, which is how old and new versions coexist.

With a schema registry (``vvv_core.registry``) encoders write its wire format instead, and
``decode`` reads both, by the first byte.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from vvv_core import avro_codec
from vvv_core.config import ConfigError
from vvv_core.errors import InvalidInput

if TYPE_CHECKING:
    from vvv_core.registry import Registry

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8
REGISTRY_MAGIC = b"\x00"  # Confluent Schema Registry wire format: 0, the 4-byte schema id, the body
REGISTRY_HEADER_SIZE = 5
MILLIS = ("timestamp-millis", "local-timestamp-millis")
Encoder = avro_codec.Writer  # writer(record) -> bytes; writer.columns(columns, count) -> [bytes]

# The package's own schemas (package data, wherever it is installed); VVV_SCHEMA_DIR points elsewhere.
DEFAULT_SCHEMA_DIR: Traversable = (
    Path(os.environ["VVV_SCHEMA_DIR"]) if os.environ.get("VVV_SCHEMA_DIR") else files("vvv_core") / "schemas"
)


class DecodeError(InvalidInput):
    """A message value that is not a readable single-object-encoded record."""


def parse(schema: dict[str, Any]) -> dict[str, Any]:
    """fastavro's parsed form of ``schema``, reading timestamps as what the project writes: milliseconds
    (an int), not datetimes (each cost a consumer about a microsecond per event to make and undo).
    The parsing canonical form, and so the fingerprint, has no logical types: it is the same."""
    plain = json.loads(json.dumps(schema), object_hook=lambda t: "long" if t.get("logicalType") in MILLIS else t)
    return fastavro.parse_schema(plain)


def schema_fingerprint(parsed: dict[str, Any]) -> bytes:
    """The 8 bytes the single-object header carries for ``parsed``."""
    # fastavro renders CRC-64-AVRO as the hex of its little-endian bytes: exactly the header's order.
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


class SchemaStore:
    """Current schemas by full name, and every known writer schema by fingerprint.

    ``directory`` holds the current schemas (``*.avsc``); ``history`` adds older writer
    versions that may still be on a topic. A schema that names an older version of a
    record goes in ``history``, never in place of the current one.
    """

    def __init__(
        self,
        directory: Traversable = DEFAULT_SCHEMA_DIR,
        history: Iterable[Path | dict] = (),
        registry: Registry | None = None,
    ) -> None:
        self.registry = registry
        self._encoders: dict[tuple[str, str | None], Encoder] = {}
        self._sources: dict[str, dict[str, Any]] = {}  # each current schema as written, for the registry
        self._current: dict[str, dict[str, Any]] = {}
        self._writers: dict[bytes, dict[str, Any]] = {}
        try:
            self._load(directory, history)
        except FileNotFoundError:
            raise
        except Exception as exc:  # a folder that is not one, a file that is not a schema: a bad VVV_SCHEMA_DIR
            raise ConfigError(f"the Avro schemas in {directory} (VVV_SCHEMA_DIR) cannot be used: {exc}") from None

    def _load(self, directory: Traversable, history: Iterable[Path | dict]) -> None:
        paths = sorted((p for p in directory.iterdir() if p.name.endswith(".avsc")), key=lambda p: p.name)
        if not paths:
            raise FileNotFoundError(f"no Avro schemas (*.avsc) in {directory}")
        for path in paths:
            source = json.loads(path.read_text())
            parsed = self._add_writer(source)
            name = parsed["name"].rpartition(".")[2]  # short names are unique here
            self._current[name], self._sources[name] = parsed, source
        # Older versions still on topics, shipped beside the current ones (history/), and any given.
        shipped = directory / "history"
        older = [p for p in shipped.iterdir() if p.name.endswith(".avsc")] if shipped.is_dir() else []
        for old in [*older, *history]:
            self._add_writer(json.loads(old.read_text()) if not isinstance(old, dict) else old)

    def _add_writer(self, schema: dict[str, Any]) -> dict[str, Any]:
        parsed = parse(schema)  # keeps fastavro's "already parsed" mark: no re-parse per call
        self._writers[schema_fingerprint(parsed)] = parsed
        return parsed

    def encoder(self, name: str, topic: str | None = None) -> Encoder:
        """Encodes records of schema ``name``; with a registry, in its wire format for ``topic``.

        Made once per schema and subject (registered once per process), then reused."""
        subject = topic if self.registry is not None else None
        if (name, subject) not in self._encoders:
            parsed = self._current[name]
            header = (
                MAGIC + schema_fingerprint(parsed)
                if subject is None
                else self.registry.header(subject, self._sources[name])
            )
            self._encoders[(name, subject)] = avro_codec.writer(self._sources[name], header)
        return self._encoders[(name, subject)]

    def fields(self, name: str) -> list[str]:
        """The field names of the current schema ``name``, in order."""
        return [f["name"] for f in self._sources[name]["fields"]]

    def in_order(self, name: str, columns: dict[str, Any]) -> list[Any]:
        """``columns`` (by field name) in the current schema ``name``'s order, for ``Encoder.columns``; a field not
        given is its default for every record, as a record without it would have (KeyError where it has none)."""
        return [columns[f["name"]] if f["name"] in columns else f["default"] for f in self._sources[name]["fields"]]

    def reader(self, name: str) -> avro_codec.Reader:
        """Reads batches of records of the current schema ``name`` into columns (``Reader.columns``): those
        written with it in single-object encoding; ``decode`` reads the others, or says why it cannot."""
        parsed = self._current[name]
        return avro_codec.reader(self._sources[name], MAGIC + schema_fingerprint(parsed))

    def decode(self, data: bytes | None, reader: str) -> dict[str, Any]:
        """Decode ``data`` into a record of the current schema ``reader``; raise DecodeError if it can't be."""
        writer, start = self._writer(data)
        reader_schema = self._current[reader]
        body = io.BytesIO(data)
        body.seek(start)
        try:
            record = fastavro.schemaless_reader(body, writer, reader_schema if writer is not reader_schema else None)
        except Exception as exc:  # fastavro raises many types for damaged bodies; some quote whole schemas
            raise DecodeError(f"undecodable {writer['name']} body: {type(exc).__name__}: {str(exc)[:200]}") from None
        if body.tell() != len(data):
            raise DecodeError(f"{len(data) - body.tell()} trailing bytes after the {writer['name']} record")
        return record

    def _writer(self, data: bytes | None) -> tuple[dict[str, Any], int]:
        """The writer schema named by ``data``'s header, and where its body starts."""
        if data and data[:1] == REGISTRY_MAGIC and len(data) >= REGISTRY_HEADER_SIZE:
            if self.registry is None:
                raise DecodeError("schema registry wire format (magic byte 0): set VVV_SCHEMA_REGISTRY_URL to read it")
            return self.registry.writer(int.from_bytes(data[1:REGISTRY_HEADER_SIZE], "big")), REGISTRY_HEADER_SIZE
        if not data or len(data) < HEADER_SIZE or data[:2] != MAGIC:
            raise DecodeError("not Avro single-object encoded (missing C3 01 header) nor in the registry wire format")
        writer = self._writers.get(bytes(data[2:HEADER_SIZE]))
        if writer is None:
            raise DecodeError(f"unknown writer schema fingerprint {bytes(data[2:HEADER_SIZE]).hex()}")
        return writer, HEADER_SIZE
