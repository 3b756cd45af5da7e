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

from vvv_core import avro_codec
from vvv_core.avro import DEFAULT_SCHEMA_DIR, DecodeError, SchemaStore, parse
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


def test_the_older_schemas_shipped_in_history_are_read_with_their_defaults(tmp_path: Path):
    """Results written before ``event_at`` and ``stored`` existed, and video events before ``fetched_at``, are still
    on topics: every reader knows their writer schemas (``schemas/history/``) and reads them with the defaults."""
    for name in ("result", "video_event"):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.avsc").write_text((DEFAULT_SCHEMA_DIR / "history" / f"{name}.v1.avsc").read_text())
    detail = {"status": "valid", "width": 320, "height": 180, "http_status": 200, "reason": None, "attempts": 1}
    result = {"event_id": "e1", "group": "thumbnails", "video_id": "J78aPJ3VyNs", "processed_at": now_ms()}
    branch = "com.viralvidvault.results.ThumbnailDetail"
    old_result = SchemaStore(tmp_path / "result").encoder("Result")({**result, "detail": (branch, detail)})
    read = SchemaStore().decode(old_result, "Result")
    assert (read["event_at"], read["stored"], read["detail"], read["video_id"]) == (0, False, detail, "J78aPJ3VyNs")
    event = {"event_id": "e2", "video_id": "J78aPJ3VyNs", "created_at": now_ms(), "region": "PL", "view_count": 5}
    event |= {"title": None, "thumbnail_url": None, "likes": None, "comments": None}
    old_event = SchemaStore(tmp_path / "video_event").encoder("VideoEvent")(event)
    read = SchemaStore().decode(old_event, "VideoEvent")
    assert read["fetched_at"] is None and read["view_count"] == 5 and read["region"] == "PL"


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


SOURCES = {  # every current schema, by name
    json.loads(path.read_text())["name"]: json.loads(path.read_text())
    for path in sorted((Path(__file__).resolve().parent.parent / "vvv_core" / "schemas").glob("*.avsc"))
}
longs = st.integers(-(2**63), 2**63 - 1)


def values(t, namespace: str = "") -> st.SearchStrategy:
    """Any value of Avro type ``t`` as fastavro takes it (a union of records as (name, record))."""
    if isinstance(t, list):
        if all(isinstance(b, dict) and b.get("type") == "record" for b in t):
            return st.one_of(*(st.tuples(st.just(f"{namespace}.{b['name']}"), values(b, namespace)) for b in t))
        return st.one_of(*(values(b, namespace) for b in t))
    kind = t if isinstance(t, str) else t["type"]
    if isinstance(kind, (dict, list)):
        return values(kind, namespace)
    if kind == "record":
        inner = t.get("namespace", namespace)
        return st.fixed_dictionaries({f["name"]: values(f["type"], inner) for f in t["fields"]})
    if kind == "enum":
        return st.sampled_from(t["symbols"])
    return {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": longs,
        "double": st.floats(allow_nan=False),
        "string": st.text(max_size=40),
    }[kind]


def fastavro_bytes(name: str, record: dict) -> bytes:
    expected = io.BytesIO()
    fastavro.schemaless_writer(expected, fastavro.parse_schema(SOURCES[name]), record)
    return expected.getvalue()


@pytest.mark.parametrize("name", sorted(SOURCES))
@examples(max_examples=300, derandomize=True, deadline=None)
@given(data=st.data())
def test_the_compiled_writers_write_what_fastavro_writes(name, data):
    """Each record as a dict, as a tuple in field order, and a batch given as columns: fastavro's bytes."""
    batch = data.draw(st.lists(values(SOURCES[name]), min_size=1, max_size=4))
    expected = [b"H" + fastavro_bytes(name, record) for record in batch]
    writer = avro_codec.writer(SOURCES[name], b"H")
    fields = [f["name"] for f in SOURCES[name]["fields"]]
    assert [writer(record) for record in batch] == expected
    assert [writer(tuple(record[f] for f in fields)) for record in batch] == expected
    assert writer.columns([[record[f] for record in batch] for f in fields], len(batch)) == expected


@pytest.mark.parametrize("name", sorted(SOURCES))
@examples(max_examples=300, derandomize=True, deadline=None)
@given(data=st.data())
def test_the_batch_reader_reads_what_fastavro_reads_and_leaves_it_the_rest(name, data):
    """Whole records behind the header become columns, fastavro's values; any other bytes (cut short, padded,
    another header, None) are left for fastavro to read or refuse, in their place."""
    batch = data.draw(st.lists(values(SOURCES[name]), min_size=1, max_size=4))
    bodies = [fastavro_bytes(name, record) for record in batch]
    parsed = parse(SOURCES[name])  # timestamps as the milliseconds the project reads them as
    wire = [b"H" + body for body in bodies]
    spoilt = data.draw(st.sets(st.integers(0, len(wire) - 1)))
    for i in spoilt:
        wire[i] = data.draw(st.sampled_from([wire[i][:-1], wire[i] + b"\x00", b"X" + wire[i][1:], None]))
    columns, others = avro_codec.reader(SOURCES[name], b"H").columns(wire)
    assert others == sorted(
        i
        for i in spoilt
        if wire[i] is None or not wire[i].startswith(b"H" + bodies[i]) or len(wire[i]) != len(bodies[i]) + 1
    )
    fields = [f["name"] for f in SOURCES[name]["fields"]]
    for i, body in enumerate(bodies):
        row = {f: column[i] for f, column in zip(fields, columns, strict=True)}
        if i in others:
            assert set(row.values()) == {None}
        else:
            assert row == fastavro.schemaless_reader(io.BytesIO(body), parsed, None)


def test_a_schema_the_codec_does_not_cover_is_refused_when_loaded():
    with pytest.raises(avro_codec.Unsupported):
        avro_codec.writer(
            {"type": "record", "name": "R", "fields": [{"name": "a", "type": {"type": "map", "values": "long"}}]}
        )
