"""Resident memory and CPU time of a process, read from /proc (what psutil reads; not needed)."""

from __future__ import annotations


def memory_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of `pid` in MiB, from `VmRSS` and `VmHWM`; (0, 0) once it is gone."""
    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in values:
                    values[key] = int(rest.split()[0]) / 1024  # kB
    except (FileNotFoundError, ProcessLookupError):
        pass
    return values["VmRSS"], values["VmHWM"]


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of `pid` (default: this process) so far, in seconds; 0 once it is
    gone. From `/proc/<pid>/stat` (fields 14 and 15, in clock ticks)."""
    import os

    try:
        with open(f"/proc/{pid or os.getpid()}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def die_with_parent() -> None:
    """`preexec_fn` for benchmark subprocesses: SIGTERM them when the benchmark dies (Linux)."""
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
