"""Resident memory of another process, read from /proc (no psutil needed)."""

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


def die_with_parent() -> None:
    """`preexec_fn` for benchmark subprocesses: SIGTERM them when the benchmark dies (Linux)."""
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
