"""``vvv consume GROUP --processes N``: N members of one group on this host, run and stopped as one unit.

Each member is `vvv consume` itself, run again in a process of its own (the same command line with
``--processes 1``): a full member with its own client, as if started N times, so the broker balances the
partitions among them and the runtime does not know. A new interpreter, not a fork: librdkafka's
threads must never be forked, and a member shares nothing with its parent.

The parent owns no client. Each member runs in a process group of its own, so that a Ctrl-C at a
terminal reaches the parent alone, which forwards every SIGTERM/SIGINT it gets to each member: the first
stops them gracefully, a second at once, as for one member. A member that ends by itself while the others
are meant to go on (with a non-zero code, or at all without --until-idle) stops the unit: the parent asks
the others to stop and exits non-zero, for its supervisor to restart the whole unit. Each member also
stops (SIGTERM) when the parent dies, even by kill -9 (Linux): no member is left running alone.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

log = logging.getLogger("vvv")
MOST = 64  # members per host at most: more than a host's cores gains nothing
PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies


def processes(text: str) -> int:
    """An argparse type: how many members to run, 1 to MOST."""
    if not text.isdigit() or not 1 <= int(text) <= MOST:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number from 1 to {MOST}")
    return int(text)


def member_commands(argv: Sequence[str], count: int, metrics_port: int) -> list[list[str]]:
    """Each member's command line: the parent's, as one process (the last --processes wins) that stops
    with the parent; with metrics on, member i serves them on ``metrics_port + i``."""
    own = [sys.executable, "-m", "vvv_core.cli", *argv, "--processes", "1", "--parent", str(os.getpid())]
    return [own + (["--metrics-port", str(metrics_port + i)] if metrics_port else []) for i in range(count)]


def run(commands: list[list[str]], until_idle: bool) -> int:
    """Run one member per command until all have ended; the worst member's exit code (non-zero when one
    ended by itself while the others were meant to go on)."""
    members: list[subprocess.Popen[bytes]] = []
    stopping = False

    def forward(signum: int, _frame: object = None) -> None:
        nonlocal stopping
        stopping = True
        for member in members:
            if member.poll() is None:
                member.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for command in commands:
        if not stopping:
            members.append(subprocess.Popen(command, process_group=0))
    log.info("%d members started, processes %s", len(members), ", ".join(str(m.pid) for m in members))
    codes: dict[int, int] = {}
    unexpected = False
    while len(codes) < len(members):
        time.sleep(0.1)
        for member in members:
            if member.pid in codes or member.poll() is None:
                continue
            code = codes[member.pid] = 128 - member.returncode if member.returncode < 0 else member.returncode
            if not stopping and (code != 0 or not until_idle):
                log.error("member %d exited by itself (code %d): stopping the others", member.pid, code)
                unexpected = True
                forward(signal.SIGTERM)
    worst = max(codes.values(), default=0)
    return max(worst, 1) if unexpected else worst


def stop_with_parent(parent: int) -> bool:
    """Have this member sent SIGTERM when ``parent`` dies; False if it is gone already."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    return os.getppid() == parent
