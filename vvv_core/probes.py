"""What each member says about itself on its probes: ready or not, and what it is waiting for.

A member serving metrics (``VVV_METRICS_PORT``) names the port in its client id; the broker
names the host it connects from. ``vvv status`` and the console ask each such member's
``/readyz`` and ``/metrics`` directly, with a short timeout: a member that does not answer is
shown as such, never waited for.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from vvv_core.runtime.group import metrics_address

TIMEOUT = 1.0  # seconds per request
RETRIES_WAITING = "vvv_retries_waiting"  # gauges every member exports (vvv_core.runtime.metrics)
SLOTS_WAITING = "vvv_rate_limit_waiting"
RESTORING = "vvv_restoring_partitions"  # a member keeping state: partitions being restored, changelog records left
RESTORE_LEFT = "vvv_restore_records_left"


@dataclass
class MemberProbe:
    member: str  # client_id@host, as the broker names it
    address: str | None  # where it serves its probes; None: it serves none
    ready: bool | None = None  # None: not known (no probes, or no answer)
    retries_waiting: int | None = None
    slots_waiting: int | None = None
    restoring: int | None = None  # None also for a member that keeps no state
    restore_left: int | None = None
    error: str | None = None  # why it could not be asked


def probe(member: str) -> MemberProbe:
    client, _, host = member.rpartition("@")
    found = MemberProbe(member, metrics_address(client, host))
    if found.address is None:
        return found
    try:
        found.ready = _get(f"{found.address}/readyz")[0] == 200
        status, text = _get(f"{found.address}/metrics")
        gauges = _gauges(text) if status == 200 else {}
        found.retries_waiting = gauges.get(RETRIES_WAITING)
        found.slots_waiting = gauges.get(SLOTS_WAITING)
        found.restoring, found.restore_left = gauges.get(RESTORING), gauges.get(RESTORE_LEFT)
    except OSError as exc:
        found.error = str(getattr(exc, "reason", exc))
    return found


def probe_all(members: list[str]) -> list[MemberProbe]:
    if not members:
        return []
    with ThreadPoolExecutor(min(16, len(members))) as pool:
        return list(pool.map(probe, members))


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:  # a 503 from /readyz is an answer
        return exc.code, exc.read().decode(errors="replace")


def _gauges(text: str) -> dict[str, int]:
    """The waiting and restoring gauges' values from Prometheus' text format (one series per member)."""
    values = {}
    for line in text.splitlines():
        name = line.partition("{")[0]
        if name in (RETRIES_WAITING, SLOTS_WAITING, RESTORING, RESTORE_LEFT):
            values[name] = int(float(line.rsplit(" ", 1)[1]))
    return values
