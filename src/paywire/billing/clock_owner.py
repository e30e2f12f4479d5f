"""Who is advancing a test clock, and whether that process is still alive.

An advancing clock records its owner (`host:pid:start`) and a lease it renews as it goes. Another
process may take the advance over when the owner is known dead — on this host, its pid is gone
or belongs to a process started later (pid reuse) — or, for an owner on another host, when its
lease has run out.
"""

from __future__ import annotations

import os
import socket
from functools import cache

LEASE = 30.0  # seconds an advance is held without a renewal
RENEW_EVERY = 5.0


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (Linux): state first."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, to tell a reused pid apart."""
    fields = _stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


@cache
def this_process() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or '?'}"


def known_dead(owner: str | None) -> bool:
    """True only when the owner is certainly gone; an owner on another host is never 'known'."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    fields = _stat(pid)
    if fields is None:
        return False
    if fields[0] in ("Z", "X"):  # killed, not yet reaped by its parent
        return True
    return started not in ("?", "") and len(fields) > 19 and fields[19] != started
