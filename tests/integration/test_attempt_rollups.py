"""Attempt rollups (`webhooks/rollups.py`): kept by the real dispatcher as it records attempts,
equal to a rebuild from the attempts log, read by the dashboard's figures and the API's attempt
totals, kept equal to the stored attempts by retention."""

from __future__ import annotations

import time

import sqlalchemy as sa

from paywire.db.schema import webhook_attempt_rollups, webhook_attempts
from paywire.ops.retention import Policy, prune
from paywire.webhooks import rollups
from tests.integration import test_delivery
from tests.integration.delivery_receiver import until
from tests.integration.test_delivery import Hooks

r = webhook_attempt_rollups
hooks = test_delivery.hooks  # the fixture: a real server, dispatcher and receiver


async def _totals(hooks: Hooks) -> dict[str, tuple[int, ...]]:
    """Per endpoint: the rollups' counts summed over hours and slots."""
    sums = [sa.func.sum(r.c[name]) for name in rollups.COUNTS]
    async with hooks.app.db.read() as conn:
        rows = await conn.execute(sa.select(r.c.endpoint_id, *sums).group_by(r.c.endpoint_id))
        return {row[0]: tuple(int(v) for v in row[1:]) for row in rows}


async def test_recorded_attempts_are_rolled_up_as_a_rebuild_would(hooks: Hooks) -> None:
    hooks.receiver.failures["/flaky"] = 2
    flaky = await hooks.endpoint("/flaky")
    ok = await hooks.endpoint("/ok")
    for _ in range(3):
        await hooks.customer()
    await until(lambda: len(hooks.receiver.on("/flaky")) == 5)  # 2 failures, then 3 successes
    await hooks.wait_attempts(3 + 5)  # recorded (with their rollups, in the same transaction)
    live = await _totals(hooks)
    succeeded, failed = live[flaky["id"]][:2]
    assert (succeeded, failed) == (3, 2) and live[ok["id"]][:2] == (3, 0)
    assert sum(live[flaky["id"]][2:]) == 5  # every attempt in one latency bucket

    async with hooks.app.db.read() as conn:
        figures = await rollups.health(conn, [flaky["id"], ok["id"], "we_none"], time.time())
        chart = await rollups.hourly(conn, False, time.time())
    assert figures[flaky["id"]].attempts == 5 and figures[flaky["id"]].success_rate == 60.0
    assert figures["we_none"].attempts == 0 and figures["we_none"].p50 is None
    assert figures[ok["id"]].p50 is not None and figures[ok["id"]].p95 is not None
    assert sum(b["succeeded"] for b in chart) == 6 and sum(b["failed"] for b in chart) == 2
    assert chart[-1]["start"] == rollups.hour_of(time.time())

    async with hooks.app.db.transaction() as tx:  # the same figures from the attempts log alone
        await rollups.rebuild(tx.conn)
    assert await _totals(hooks) == live

    # The API's totals come from the rollups: the same as counting the attempts.
    for params, expected in (
        ({}, 8),
        ({"webhook_endpoint_id": flaky["id"]}, 5),
        ({"webhook_endpoint_id": flaky["id"], "status": "failed"}, 2),
        ({"status": "succeeded"}, 6),
    ):
        listed = (await hooks.api.get("/api/webhook-attempts", params={**params, "size": 1})).json()
        assert listed["count"] == expected, params
    assert (await hooks.live.get("/api/webhook-attempts")).json()["count"] == 0


async def test_rollup_hours_go_with_their_attempts(hooks: Hooks) -> None:
    now = time.time()
    old, young = now - 40 * 86_400, now - 3600
    rows = [
        {
            "id": f"wha_r{i}", "livemode": False, "delivery_seq": i, "event_id": f"evt_{i}", "endpoint_id": "we_r",
            "status": "succeeded", "response_status": 200, "response_body": "", "retry_count": 0,
            "duration_ms": 30, "error": None, "error_type": None, "next_retry": None, "created": at,
        }
        for i, at in enumerate((old, young))
    ]  # fmt: skip
    async with hooks.app.db.transaction() as tx:
        await tx.conn.execute(webhook_attempts.insert(), rows)
        await rollups.add(tx.conn, rows, owner="wkr_test")
    assert (await hooks.api.get("/api/webhook-attempts")).json()["count"] == 2
    result = await prune(hooks.app.db, Policy(attempts_days=30), now=now, kinds=("attempts",))
    assert result.removed["attempts"] == 1
    async with hooks.app.db.read() as conn:
        hours = list((await conn.execute(sa.select(r.c.hour).where(r.c.endpoint_id == "we_r"))).scalars())
    assert hours == [rollups.hour_of(young)]  # the old hour subtracted to zero, then removed
    assert (await hooks.api.get("/api/webhook-attempts")).json()["count"] == 1
