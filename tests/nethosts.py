"""Several "hosts" on one machine: network namespaces on a bridge (iproute2, as root).

Each host is a namespace with one veth link to a bridge in the root namespace, which has an
address on it too (for the test process itself: stand-in servers, readiness checks). Taking a
host's link down cuts it off from every other host, as a pulled cable does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from types import TracebackType

SUBNET = "10.77.{}.{}"


def available() -> str | None:
    """Why namespaces cannot be used here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "network namespaces need iproute2 (ip)"
    return None


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Hosts:
    def __init__(self, names: list[str]) -> None:
        tag = uuid.uuid4().hex[:4]
        self.subnet = int(tag[:2], 16) % 200 + 20  # 10.77.<20..219>.0/24, one per test run
        self.bridge = f"vvvbr{tag}"
        self.gateway = SUBNET.format(self.subnet, 254)  # the root namespace's address on the bridge
        self.namespaces = {name: f"vvv{tag}{name}" for name in names}
        self.links = {name: f"vv{tag}{name}"[:15] for name in names}
        self.addresses = {name: SUBNET.format(self.subnet, i + 1) for i, name in enumerate(names)}

    def __enter__(self) -> Hosts:
        try:
            ip("link", "add", self.bridge, "type", "bridge")
            ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
            for name, namespace in self.namespaces.items():
                ip("netns", "add", namespace)
                ip("-n", namespace, "link", "set", "lo", "up")
                ip("link", "add", self.links[name], "type", "veth", "peer", "name", "eth0", "netns", namespace)
                ip("link", "set", self.links[name], "master", self.bridge, "up")
                ip("-n", namespace, "addr", "add", f"{self.addresses[name]}/24", "dev", "eth0")
                ip("-n", namespace, "link", "set", "eth0", "up")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def command(self, name: str, *args: str) -> list[str]:
        """``args`` run on host ``name``."""
        return ["ip", "netns", "exec", self.namespaces[name], *args]

    def link(self, name: str, up: bool) -> None:
        """Plug or pull host ``name``'s cable."""
        ip("link", "set", self.links[name], "up" if up else "down")

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for name, namespace in self.namespaces.items():
            subprocess.run(["ip", "link", "del", self.links[name]], capture_output=True)
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
