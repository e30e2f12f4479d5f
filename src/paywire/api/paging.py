"""The `page`/`size` (alias `pageSize`) query parameters of every list."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from paywire.pagination import DEFAULT_SIZE, MAX_SIZE, Page


def page_params(
    page: Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1.")] = 1,
    size: Annotated[int | None, Query(ge=1, le=MAX_SIZE, description="Items per page.")] = None,
    page_size: Annotated[int | None, Query(alias="pageSize", ge=1, le=MAX_SIZE, description="Alias of size.")] = None,
) -> Page:
    return Page(page=page, size=size or page_size or DEFAULT_SIZE)
