"""Prefixed object ids (`evt_…`, `cus_…`): time-ordered, so ids sort roughly by creation."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        chars.append(_ALPHABET[rest])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """`prefix_` + 8 chars of milliseconds + 14 random chars (~83 bits)."""
    millis = int(time.time() * 1000)
    return f"{prefix}_{_base62(millis, 8)}{_base62(int.from_bytes(os.urandom(11), 'big'), 14)}"
