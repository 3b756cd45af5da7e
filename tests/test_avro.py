"""Avro single-object encoding: the bytes on the wire, fingerprints, schema evolution, bad bytes."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import fastavro
import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from vvv_core.avro import DEFAULT_SCHEMA_DIR, DecodeError, SchemaStore
from vvv_core.avro_writer import compile_writer
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


SOURCES = {
    name: json.loads((Path(__file__).resolve().parent.parent / "vvv_core" / "schemas" / file).read_text())
    for name, file in (
        ("VideoEvent", "video_event.avsc"),
        ("StaleCheckEvent", "stale_event.avsc"),
        ("Result", "result.avsc"),
    )
}
texts = st.one_of(st.none(), st.text(max_size=40))
longs = st.integers(-(2**63), 2**63 - 1)


@st.composite
def records(draw, name: str) -> dict:
    base = {"event_id": draw(st.text(max_size=20)), "video_id": draw(st.text(max_size=20))}
    if name == "StaleCheckEvent":
        return {**base, "created_at": draw(longs)}
    if name == "VideoEvent":
        counts = {k: draw(st.one_of(st.none(), longs)) for k in ("view_count", "likes", "comments")}
        extra = {k: draw(texts) for k in ("region", "title", "thumbnail_url")}
        return {**base, "created_at": draw(longs), **extra, **counts}
    detail = draw(
        st.sampled_from(
            [
                (
                    "com.viralvidvault.results.ScoreDetail",
                    {
                        "score": draw(st.floats(allow_nan=False)),
                        "label": "VIRAL",
                        "velocity": draw(longs),
                        "engagement": 1.5,
                        "region": draw(texts),
                        "reason": draw(texts),
                    },
                ),
                (
                    "com.viralvidvault.results.ThumbnailDetail",
                    {
                        "status": "broken",
                        "width": None,
                        "height": 9,
                        "http_status": draw(st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1))),
                        "reason": draw(texts),
                        "attempts": 3,
                    },
                ),
                (
                    "com.viralvidvault.results.LivenessDetail",
                    {"status": "unknown", "http_status": None, "reason": draw(texts), "attempts": 1},
                ),
            ]
        )
    )
    return {
        **base,
        "group": draw(st.sampled_from(["scoring", "thumbnails", "liveness"])),
        "processed_at": draw(longs),
        "event_at": draw(longs),
        "stored": draw(st.booleans()),
        "detail": detail,
    }


@pytest.mark.parametrize("name", sorted(SOURCES))
@examples(max_examples=300, derandomize=True, deadline=None)
@given(data=st.data())
def test_the_compiled_writers_write_what_fastavro_writes(name, data):
    record = data.draw(records(name))
    parsed = fastavro.parse_schema(SOURCES[name])
    expected = io.BytesIO()
    fastavro.schemaless_writer(expected, parsed, record)
    assert compile_writer(SOURCES[name])(record) == expected.getvalue()
