"""A group's result detail as a reader of the results topic decodes it: through the ``Result`` schema."""

from __future__ import annotations

from vvv_core.avro import SchemaStore
from vvv_core.runtime.checkpoint import RESULT_NAMESPACE

SCHEMAS = SchemaStore()


def published(detail_schema: str, detail: dict[str, object]) -> dict[str, object]:
    """``detail`` written as the ``detail_schema`` branch of a result (as the checkpoint writes it), then read."""
    result = {
        "event_id": "e1",
        "group": "scoring",
        "video_id": "J78aPJ3VyNs",
        "processed_at": 0,
        "detail": (f"{RESULT_NAMESPACE}.{detail_schema}", detail),
    }
    return SCHEMAS.decode(SCHEMAS.encoder("Result")(result), "Result")["detail"]
