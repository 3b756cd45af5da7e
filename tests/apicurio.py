"""Apicurio Registry, the tests' real Schema Registry: its Confluent-compatible API (``/apis/ccompat/v7``).

The runner jar and its libraries come from Maven Central (``registry/pom.xml``; ``make registry``
unpacks them into the ignored ``registry/lib/``). It starts on Java 17 in a few seconds with in-memory
storage, on a free port of 127.0.0.1, and is killed when the test session ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from vvv_core.broker import die_with_parent, free_port

LIB = Path(__file__).resolve().parent.parent / "registry" / "lib"
CCOMPAT = "/apis/ccompat/v7"


class RegistryNotInstalled(Exception):
    """No Java or no Apicurio jars here."""


def runner_jar() -> Path:
    if not shutil.which("java"):
        raise RegistryNotInstalled("Apicurio Registry needs Java 17 or later: no `java` on PATH")
    jars = sorted(LIB.glob("apicurio-registry-app-*-runner.jar"))
    if not jars:
        raise RegistryNotInstalled(f"no Apicurio Registry in {LIB}: fetch it with `make registry` (needs Maven)")
    return jars[-1]


class Apicurio:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{CCOMPAT}"
        self.log = Path(os.environ.get("TMPDIR", "/tmp")) / f"vvv-apicurio-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Apicurio:
        command = [
            "java",
            "-Xmx384m",
            f"-Dquarkus.http.port={self.port}",
            "-Dquarkus.http.host=127.0.0.1",
            "-jar",
            str(runner_jar()),
        ]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        deadline = time.monotonic() + 90
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"Apicurio Registry did not start: see {self.log}")
            time.sleep(0.2)
        return self

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/subjects", timeout=2) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
