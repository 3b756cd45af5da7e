"""A Confluent-compatible schema registry, in memory, that records every request it answers.

The registry tests run against a real one (Apicurio, ``apicurio.py``); this stand-in is kept for the one
thing a real registry cannot show: how many requests a producer makes (each schema registered once per
process). It answers only what a producer and a reader use (register a schema under a subject, set its
compatibility, fetch a schema by id), the way the Confluent API answers it."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class RegistryStandIn:
    def __init__(self) -> None:
        self.schemas: list[str] = []  # id - 1 -> schema text
        self.subjects: dict[str, list[int]] = {}  # subject -> ids of its versions
        self.compatibility: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict:
                return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                registry.requests.append(("GET", path))
                if m := re.fullmatch(r"/schemas/ids/(\d+)", path):
                    index = int(m[1]) - 1
                    if 0 <= index < len(registry.schemas):
                        return self._reply(200, {"schema": registry.schemas[index], "schemaType": "AVRO"})
                    return self._reply(404, {"error_code": 40403, "message": "Schema not found"})
                if m := re.fullmatch(r"/config/(.+)", path):
                    if m[1] in registry.compatibility:
                        return self._reply(200, {"compatibilityLevel": registry.compatibility[m[1]]})
                    return self._reply(404, {"error_code": 40408, "message": "Subject has no compatibility level"})
                return self._reply(404, {"error_code": 404, "message": "not found"})

            def do_PUT(self) -> None:
                path = self.path.split("?")[0]
                registry.requests.append(("PUT", path))
                if m := re.fullmatch(r"/config/(.+)", path):
                    level = self._body()["compatibility"]
                    registry.compatibility[m[1]] = level
                    return self._reply(200, {"compatibility": level})
                return self._reply(404, {"error_code": 404, "message": "not found"})

            def do_POST(self) -> None:
                path = self.path.split("?")[0]
                registry.requests.append(("POST", path))
                if m := re.fullmatch(r"/subjects/(.+)/versions", path):
                    text = json.dumps(json.loads(self._body()["schema"]), sort_keys=True)
                    if text not in registry.schemas:
                        registry.schemas.append(text)
                    schema_id = registry.schemas.index(text) + 1
                    versions = registry.subjects.setdefault(m[1], [])
                    if schema_id not in versions:
                        versions.append(schema_id)
                    return self._reply(200, {"id": schema_id})
                return self._reply(404, {"error_code": 404, "message": "not found"})

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> RegistryStandIn:
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
