"""How a call's arguments become parts of a request, shared by the async and the sync resources."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote


def segment(id: str) -> str:
    """`/{id}`, refusing an empty id (which would silently address the list instead)."""
    if not isinstance(id, str) or not id:
        raise ValueError(f"an object id is needed, got {id!r}")
    return "/" + quote(id, safe="")


def compact(values: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments left at None are not sent: the server applies its own default."""
    return {name: value for name, value in values.items() if value is not None}
