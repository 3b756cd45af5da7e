"""The errors an operator acts on: the command line prints their message as one line.

``OperatorError`` (exit 1) is something in the world to fix or wait for: no broker, a missing
topic, a locked or foreign database, a port in use. ``ConfigError`` (exit 2, in
``vvv_core.config``) is a setting to correct; nothing was connected to.
"""

from __future__ import annotations


class OperatorError(RuntimeError):
    """A failure the operator can act on; the message says what and, where it can, what to do."""
