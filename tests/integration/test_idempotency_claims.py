"""Concurrent first uses of one Idempotency-Key: one runs, every other answer is its replay or a 409."""

from __future__ import annotations

import asyncio

from tests.conftest import Server


async def test_concurrent_first_uses_of_a_key_write_once(server: Server) -> None:
    clients = [server.client() for _ in range(8)]
    headers = {"Idempotency-Key": "together"}
    try:
        answers = await asyncio.gather(
            *(client.post("/api/customers", json={"name": "once"}, headers=headers) for client in clients)
        )
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    ran = [a for a in answers if a.status_code == 200 and "idempotent-replayed" not in a.headers]
    assert len(ran) == 1, [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 200:
            assert answer.json() == ran[0].json()
        else:
            assert answer.status_code == 409 and answer.json()["error"]["code"] == "idempotency_key_in_use"
    async with server.client() as client:
        assert (await client.get("/api/customers")).json()["count"] == 1
