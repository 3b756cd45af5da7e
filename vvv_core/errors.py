"""One error taxonomy, used alike by the runtime, the command line and the dead-letter headers.

- ``Transient``: another attempt may succeed (a timeout, a 5xx, a broker away). The runtime
  retries it while attempts remain; the command line exits 1.
- ``InvalidInput``: the input is wrong and no attempt will succeed (an undecodable event, a
  refused URL, a bad setting). The runtime dead-letters it; the command line exits 2.
- ``Fatal``: continuing would lose or corrupt work, or something in the world must be fixed
  first (no broker, a locked database, a port in use). The process stops; exit 1.

Each carries ``kind``, which dead letters record in ``vvv.dlq.error.kind``. Any other exception
is a bug: a check that raises one has its event dead-lettered as ``unexpected``, never retried.
"""

from __future__ import annotations

from typing import ClassVar


class VvvError(Exception):
    """A failure this project raises on purpose; its message is one line an operator can act on."""

    kind: ClassVar[str] = "error"
    exit_code: ClassVar[int] = 1


class Transient(VvvError):
    """Another attempt may succeed."""

    kind = "transient"


class InvalidInput(VvvError, ValueError):
    """The input is wrong; no attempt will succeed with it."""

    kind = "invalid"
    exit_code = 2


class Fatal(VvvError):
    """Stop: continuing would lose or corrupt work, or the operator must fix something first."""

    kind = "fatal"


def kind_of(exc: BaseException) -> str:
    """The taxonomy's name for ``exc``: ``unexpected`` for anything outside it (a bug)."""
    return exc.kind if isinstance(exc, VvvError) else "unexpected"
