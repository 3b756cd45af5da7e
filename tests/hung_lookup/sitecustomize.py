"""A name lookup that hangs, as an offline resolver's does: loaded (through PYTHONPATH) by the processes a test
starts, it makes getaddrinfo for any ``*.invalid`` host wait TEST_LOOKUP_SECONDS, then fail as a resolver would.
No deadline of the project's reaches inside getaddrinfo."""

import os
import socket
import time

_getaddrinfo = socket.getaddrinfo


def _hanging(host, *args, **kwargs):
    if isinstance(host, str) and host.endswith(".invalid"):
        time.sleep(float(os.environ.get("TEST_LOOKUP_SECONDS", "10")))
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _hanging
