"""Avro single-object encoding: the bytes on the wire, fingerprints, schema evolution, bad bytes."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import fastavro
import pytest

from vvv_core.avro import DEFAULT_SCHEMA_DIR, DecodeError, SchemaStore
from vvv_core.events import now_ms

EMPTY = 0xC15D213AA4D7A795


def reference_fingerprint(canonical: bytes) -> bytes:
    """CRC-64-AVRO exactly as the Avro specification writes it, little-endian."""
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY & -(fp & 1))
        table.append(fp)
    fp = EMPTY
    for byte in canonical:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return struct.pack("<Q", fp)


def video(**changes):
    return {"event_id": "e1", "video_id": "J78aPJ3VyNs", "created_at": now_ms(), "region": "PL", **changes}


def test_header_is_magic_then_spec_fingerprint(schemas):
    data = schemas.encoder("VideoEvent")(video())
    schema = json.loads((DEFAULT_SCHEMA_DIR / "video_event.avsc").read_text())
    canonical = fastavro.schema.to_parsing_canonical_form(fastavro.parse_schema(schema)).encode()
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == reference_fingerprint(canonical)


def test_reference_fingerprint_matches_the_spec_vector():
    # The Avro specification's test vector: fingerprint64("null") = 7195948357588979594 (signed).
    assert struct.unpack("<q", reference_fingerprint(b'"null"'))[0] == 7195948357588979594


def test_any_avro_reader_decodes_the_body_from_the_avsc_alone(schemas):
    data = schemas.encoder("VideoEvent")(video(title="Ünïcode ✓"))
    schema = fastavro.parse_schema(json.loads((DEFAULT_SCHEMA_DIR / "video_event.avsc").read_text()))
    record = fastavro.schemaless_reader(io.BytesIO(data[10:]), schema, None)
    assert record["title"] == "Ünïcode ✓" and record["video_id"] == "J78aPJ3VyNs"


def test_round_trip(schemas):
    record = schemas.decode(schemas.encoder("VideoEvent")(video(view_count=2**40)), "VideoEvent")
    assert record["view_count"] == 2**40 and record["comments"] is None


def test_old_writer_schema_is_resolved_by_fingerprint(tmp_path: Path):
    """An event written with an older VideoEvent (no title, no counts) still reads, with defaults."""
    current = json.loads((DEFAULT_SCHEMA_DIR / "video_event.avsc").read_text())
    old = dict(current, fields=[f for f in current["fields"] if f["name"] in ("event_id", "video_id", "created_at")])
    (tmp_path / "video_event.v1.avsc").write_text(json.dumps(old))
    old_writer = SchemaStore(tmp_path)  # a producer still on version 1
    data = old_writer.encoder("VideoEvent")({"event_id": "e", "video_id": "abc", "created_at": now_ms()})

    with pytest.raises(DecodeError, match="unknown writer schema fingerprint"):
        SchemaStore().decode(data, "VideoEvent")
    reader = SchemaStore(history=[tmp_path / "video_event.v1.avsc"])
    record = reader.decode(data, "VideoEvent")
    assert record["video_id"] == "abc" and record["title"] is None and record["region"] is None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "missing C3 01 header"),
        (b"plain text, not avro", "missing C3 01 header"),
        (b"\xc3\x01" + b"\x00" * 8 + b"\x02", "unknown writer schema fingerprint"),
    ],
)
def test_bad_bytes_raise_decode_error(schemas, data, reason):
    with pytest.raises(DecodeError, match=reason):
        schemas.decode(data, "VideoEvent")


def test_truncated_and_padded_bodies_are_rejected(schemas):
    data = schemas.encoder("VideoEvent")(video(title="x" * 50))
    with pytest.raises(DecodeError, match="undecodable"):
        schemas.decode(data[:-20], "VideoEvent")
    with pytest.raises(DecodeError, match="trailing bytes"):
        schemas.decode(data + b"\x00\x00", "VideoEvent")


def test_every_schema_file_parses_and_is_distinct(schemas):
    for name in ("VideoEvent", "StaleCheckEvent", "Result"):
        assert schemas.encoder(name)
