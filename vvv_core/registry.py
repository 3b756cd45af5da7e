"""Confluent Schema Registry wire format, as an option (``VVV_SCHEMA_REGISTRY_URL``).

A message in that format is a zero byte, the schema's 4-byte id (big-endian), then the Avro body:
what Kafka UIs, Connect's converters and other services' serializers expect. Producers register
the project's ``.avsc`` schemas under their topic's subject (``<topic>-value``, compatibility
BACKWARD) and frame messages with the id; readers take both this and Avro single-object encoding
(``C3 01`` + fingerprint), telling them apart by the first byte, so a topic can migrate.

Registration and lookups go through confluent-kafka's own ``SchemaRegistryClient`` (which caches
them); the framing is the five bytes its ``AvroSerializer`` writes, put before the body this
project's encoders already make, so encoding stays as fast as without a registry.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from vvv_core import avro
from vvv_core.avro import REGISTRY_MAGIC, SchemaStore
from vvv_core.config import Settings
from vvv_core.errors import Fatal

COMPATIBILITY = "BACKWARD"
# The registry client's HTTP library logs every request at INFO: a line per registration and lookup in
# every member's log, and before the one line that says why a registration was refused.
HTTP_LOGGERS = ("httpx", "httpx2")


class RegistryError(Fatal):
    """The schema registry could not be used; the message says which and why."""


class Registry:
    def __init__(self, url: str) -> None:
        try:
            from confluent_kafka.schema_registry import SchemaRegistryClient
        except ImportError as exc:  # its HTTP client comes with the registry extra
            raise RegistryError(
                f"VVV_SCHEMA_REGISTRY_URL needs the registry extra ({exc.name} is missing): "
                "pip install 'viralvidvault-streams[registry]'"
            ) from None
        for name in HTTP_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        self.url = url
        self._client = SchemaRegistryClient({"url": url})
        self._writers: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()  # consumers and the hook may ask from several threads

    def header(self, topic: str, schema: dict[str, Any]) -> bytes:
        """Register ``schema`` for ``topic``'s values (idempotent); the five bytes that frame its messages."""
        from confluent_kafka.schema_registry import Schema

        subject = f"{topic}-value"
        try:
            self._client.set_compatibility(subject_name=subject, level=COMPATIBILITY)
            schema_id = self._client.register_schema(subject, Schema(json.dumps(schema), "AVRO"))
        except Exception as exc:  # the client raises its own errors and httpx's
            raise RegistryError(f"schema registry {self.url}: cannot register {subject}: {exc}") from None
        return REGISTRY_MAGIC + schema_id.to_bytes(4, "big")

    def writer(self, schema_id: int) -> dict[str, Any]:
        """The writer schema of ``schema_id``, parsed once.

        An id the registry answers it does not have, or a schema that does not parse, is the message's
        fault (a dead letter, ``DecodeError``); a registry that cannot be asked stops the member."""
        with self._lock:
            if schema_id not in self._writers:
                try:
                    text = self._client.get_schema(schema_id).schema_str
                except Exception as exc:
                    if getattr(exc, "http_status_code", None) == 404:
                        raise avro.DecodeError(f"schema id {schema_id} is not in the schema registry") from None
                    raise RegistryError(f"schema registry {self.url}: no schema {schema_id}: {exc}") from None
                try:
                    self._writers[schema_id] = avro.parse(json.loads(text))
                except Exception as exc:  # fastavro raises several types for schemas it cannot parse
                    raise avro.DecodeError(f"schema id {schema_id} is not a usable Avro schema: {exc}") from None
            return self._writers[schema_id]


def schema_store(settings: Settings) -> SchemaStore:
    """The schemas, with the registry when ``VVV_SCHEMA_REGISTRY_URL`` names one."""
    return SchemaStore(registry=Registry(settings.schema_registry_url) if settings.schema_registry_url else None)
