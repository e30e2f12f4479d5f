"""Prefixed object ids (`evt_…`, `cus_…`): time-ordered, so ids sort roughly by creation."""

from __future__ import annotations

import os
import time
from functools import lru_cache

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Random bytes → alphabet characters in one C-level `translate` (ids are minted per delivery
# attempt, on the dispatcher's hot path). Bytes 248 to 255 make '0' to '7' slightly likelier: each
# character still carries 5.95 of log2(62) = 5.954 bits.
_BYTE_TO_CHAR = bytes(ord(_ALPHABET[b % 62]) for b in range(256))


@lru_cache(maxsize=4)
def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        chars.append(_ALPHABET[rest])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """`prefix_` + 8 chars of milliseconds + 14 random chars (~83 bits)."""
    millis = int(time.time() * 1000)
    return f"{prefix}_{_base62(millis, 8)}{os.urandom(14).translate(_BYTE_TO_CHAR).decode()}"
