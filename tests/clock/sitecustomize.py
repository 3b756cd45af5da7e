"""Every Python process a test starts sees the test session's clock (``pytest --clock-ahead DAYS``).

On ``PYTHONPATH`` only in such a session, which sets ``TEST_CLOCK_AHEAD_DAYS``: Python imports this
module at start-up, before the program's own code, so its wall clock (``time.time``, ``datetime.now``
and the like) runs that many days ahead, ticking; the monotonic clock is left alone.
"""

import os

if days := os.environ.get("TEST_CLOCK_AHEAD_DAYS"):
    from datetime import UTC, datetime, timedelta

    import time_machine

    time_machine.travel(datetime.now(UTC) + timedelta(days=float(days)), tick=True).start()
    os.environ["TEST_CLOCK_MOVED_IN"] = str(os.getpid())  # once per process (a pytest-xdist worker imports both)
