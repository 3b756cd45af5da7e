"""Is the broker still there? A consumer without one says so once per interval, reports itself
not ready, and after ``VVV_BROKER_TIMEOUT`` exits non-zero so that an orchestrator restarts it,
rather than log connection errors for ever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException

from vvv_core.errors import Fatal

PROBE_EVERY = 2.0  # seconds between metadata requests while the broker is away
PROBE_TIMEOUT = 1.0
REPORT_EVERY = 30.0  # seconds between "still unreachable" lines
# what librdkafka's error callback says when no connection to any broker is left
DOWN = {KafkaError._ALL_BROKERS_DOWN}


class BrokerLost(Fatal):
    """No broker answered for longer than the consumer may wait."""


class BrokerWatch:
    """Fed by librdkafka's error callback (``on_error``); ``check`` runs once per loop turn."""

    def __init__(self, bootstrap: str, give_up_after: float, log: logging.LoggerAdapter) -> None:
        self.bootstrap = bootstrap
        self.give_up_after = give_up_after
        self.log = log
        self.down_since: float | None = None
        self._probed = 0.0
        self._reported = 0.0

    @property
    def reachable(self) -> bool:
        return self.down_since is None

    def on_error(self, err: KafkaError) -> None:
        if err.code() in DOWN and self.down_since is None:
            self.down_since = self._reported = time.monotonic()
            self.log.warning("broker %s unreachable (%s): retrying", self.bootstrap, err.str())

    def check(self, probe: Callable[[float], object]) -> None:
        """While the broker is away: probe it, report once per interval, give up after the limit."""
        if self.down_since is None:
            return
        now = time.monotonic()
        if now - self._probed >= PROBE_EVERY:
            self._probed = now
            try:
                probe(PROBE_TIMEOUT)
            except KafkaException:
                pass
            else:
                self.log.info("broker %s reachable again after %.0f s", self.bootstrap, now - self.down_since)
                self.down_since = None
                return
        away = time.monotonic() - self.down_since
        if away >= self.give_up_after:
            raise BrokerLost(
                f"no broker reachable at {self.bootstrap} for {away:.0f} s (VVV_BROKER_TIMEOUT="
                f"{self.give_up_after:g}): exiting so that the consumer is restarted; uncommitted work is redone"
            )
        if now - self._reported >= REPORT_EVERY:
            self._reported = now
            self.log.warning(
                "broker %s unreachable for %.0f s; exiting after %.0f s", self.bootstrap, away, self.give_up_after
            )
