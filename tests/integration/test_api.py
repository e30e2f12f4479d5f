"""The HTTP API on a real server, on SQLite and PostgreSQL: auth, modes, lists, errors, idempotency."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Server


async def _event_count(api: httpx.AsyncClient) -> int:
    return int((await api.get("/api/events")).json()["count"])


async def test_missing_and_wrong_keys_are_401_with_the_contract_body(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        missing = await anonymous.get("/api/customers")
        wrong = await anonymous.get("/api/customers", headers={"Authorization": "Bearer sk_test_nope"})
        basic = await anonymous.get("/api/customers", headers={"Authorization": "Basic abc"})
    for response in (missing, wrong, basic):
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
        assert set(response.json()["error"]) == {"type", "code", "message", "param"}


async def test_test_and_live_data_never_mix(server: Server) -> None:
    async with server.client(server.test_key) as test, server.client(server.live_key) as live:
        live_customer = (await live.post("/api/customers", json={"name": "Live"})).json()
        test_customer = (await test.post("/api/customers", json={"name": "Test"})).json()
        assert live_customer["livemode"] is True and test_customer["livemode"] is False
        assert (await test.get(f"/api/customers/{live_customer['id']}")).status_code == 404
        assert (await live.put(f"/api/customers/{test_customer['id']}", json={"name": "x"})).status_code == 404
        assert [c["id"] for c in (await test.get("/api/customers")).json()["list"]] == [test_customer["id"]]
        assert [e["object_id"] for e in (await live.get("/api/events")).json()["list"]] == [live_customer["id"]]


async def test_pagination_newest_first_with_size_and_page_size(api: httpx.AsyncClient) -> None:
    ids = [(await api.post("/api/products", json={"name": f"p{i}"})).json()["id"] for i in range(25)]
    page2 = (await api.get("/api/products", params={"page": 2, "size": 10})).json()
    assert page2["count"] == 25 and page2["paging"] == {"page": 2, "size": 10}
    assert [p["id"] for p in page2["list"]] == list(reversed(ids))[10:20]
    alias = (await api.get("/api/products", params={"page": 3, "pageSize": 10})).json()
    assert [p["id"] for p in alias["list"]] == list(reversed(ids))[20:]
    assert (await api.get("/api/products")).json()["paging"] == {"page": 1, "size": 20}
    for bad in ({"size": 101}, {"page": 0}, {"size": "ten"}):
        response = await api.get("/api/products", params=bad)
        assert response.status_code == 400, bad


async def test_customer_product_price_flow_emits_events(api: httpx.AsyncClient) -> None:
    customer = (await api.post("/api/customers", json={"email": "a@example.com", "metadata": {"plan": "pro"}})).json()
    updated = (await api.put(f"/api/customers/{customer['id']}", json={"name": "Ada", "metadata": {"plan": ""}})).json()
    assert updated["name"] == "Ada" and updated["metadata"] == {}
    product = (await api.post("/api/products", json={"name": "Pro"})).json()
    price = (
        await api.post(
            "/api/prices",
            json={
                "product_id": product["id"],
                "unit_amount": "19.99",
                "currency": "usd",
                "recurring": {"interval": "month"},
            },
        )
    ).json()
    assert price["unit_amount"] == "19.99" and price["type"] == "recurring"
    assert price["recurring"] == {"interval": "month", "interval_count": 1}
    assert (await api.get(f"/api/prices/{price['id']}")).json() == price

    events = (await api.get("/api/events")).json()["list"]
    assert [e["type"] for e in reversed(events)] == [
        "customer.created",
        "customer.updated",
        "product.created",
        "price.created",
    ]
    customer_updated = events[2]
    assert customer_updated["data"]["previous_attributes"] == {"name": None, "metadata": {"plan": "pro"}}
    assert customer_updated["data"]["object"] == updated
    assert customer_updated["request"]["id"].startswith("req_")
    # Filters: exact type, prefix, object id.
    assert (await api.get("/api/events", params={"type": "customer.*"})).json()["count"] == 2
    assert (await api.get("/api/events", params={"type": "price.created"})).json()["count"] == 1
    assert (await api.get("/api/events", params={"object_id": customer["id"]})).json()["count"] == 2
    assert (await api.get(f"/api/events/{events[0]['id']}")).json() == events[0]
    # An update that changes nothing emits nothing.
    await api.put(f"/api/customers/{customer['id']}", json={"name": "Ada"})
    assert await _event_count(api) == 4


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/api/customers", {"email": 5}, "email"),
        ("/api/customers", {"metadata": {"k": 1}}, "metadata.k"),
        ("/api/customers", {"colour": "red"}, "colour"),
        ("/api/products", {}, "name"),
        ("/api/products", {"name": "x", "active": "yes"}, "active"),
        ("/api/prices", {"product_id": "prod_x", "unit_amount": 5, "currency": "usd"}, "unit_amount"),
        ("/api/webhook-endpoints", {"url": "ftp://example.com", "enabled_events": ["*"]}, "url"),
        ("/api/webhook-endpoints", {"url": "javascript:alert(1)", "enabled_events": ["*"]}, "url"),
        (
            "/api/webhook-endpoints",
            {"url": "https://example.com", "enabled_events": ["invoice.exploded"]},
            "enabled_events",
        ),
        ("/api/webhook-endpoints", {"url": "https://example.com", "enabled_events": []}, "enabled_events"),
        ("/api/webhook-endpoints", {"url": "https://example.com", "enabled_events": "*"}, "enabled_events"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(
    api: httpx.AsyncClient, path: str, body: dict[str, object], param: str
) -> None:
    response = await api.post(path, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["message"]
    assert await _event_count(api) == 0


async def test_price_validation_names_the_problem(api: httpx.AsyncClient) -> None:
    product = (await api.post("/api/products", json={"name": "Pro"})).json()
    cases = {
        ("1.999", "usd"): "unit_amount",
        ("-1", "usd"): "unit_amount",
        ("1e3", "usd"): "unit_amount",
        ("5", "zzz"): "currency",
        ("5", "USD"): "currency",
    }
    for (amount, currency), param in cases.items():
        response = await api.post(
            "/api/prices", json={"product_id": product["id"], "unit_amount": amount, "currency": currency}
        )
        assert response.status_code == 400 and response.json()["error"]["param"] == param, (amount, currency)
    missing = await api.post("/api/prices", json={"product_id": "prod_nope", "unit_amount": "5", "currency": "usd"})
    assert missing.status_code == 404
    assert await _event_count(api) == 1  # only product.created


async def test_malformed_json_oversize_and_unknown_routes(server: Server, api: httpx.AsyncClient) -> None:
    malformed = await api.post("/api/customers", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and "JSON" in malformed.json()["error"]["message"]
    not_object = await api.post("/api/customers", json=[1, 2])
    assert not_object.status_code == 400
    huge = await api.post("/api/customers", json={"description": "x" * (2 << 20)})
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "payload_too_large"
    form = await api.post(
        "/api/customers", content=b'{"name": "Curl"}', headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert form.status_code == 200 and form.json()["name"] == "Curl"
    unknown = await api.get("/api/nothing-here")
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "invalid_request_error"
    assert (await api.get("/api/customers/cus_missing")).status_code == 404
    assert (await api.delete("/api/customers")).status_code == 405


async def test_idempotency_key_replays_and_refuses_another_body(api: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = await api.post("/api/customers", json={"email": "a@example.com"}, headers=headers)
    again = await api.post("/api/customers", json={"email": "a@example.com"}, headers=headers)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    other = await api.post("/api/customers", json={"email": "b@example.com"}, headers=headers)
    assert other.status_code == 409 and other.json()["error"]["type"] == "idempotency_error"
    assert (await api.get("/api/customers")).json()["count"] == 1
    events = (await api.get("/api/events")).json()["list"]
    assert len(events) == 1 and events[0]["request"]["idempotency_key"] == "order-42"
    # A 4xx is remembered too (the same bad request stays bad), a fresh key runs again.
    bad = {"Idempotency-Key": "bad-1"}
    assert (await api.post("/api/customers", json={"email": 1}, headers=bad)).status_code == 400
    assert (await api.post("/api/customers", json={"email": 1}, headers=bad)).status_code == 400
    too_long = await api.post("/api/customers", json={}, headers={"Idempotency-Key": "k" * 256})
    assert too_long.status_code == 400


async def test_idempotency_keys_are_per_mode(server: Server) -> None:
    async with server.client(server.test_key) as test, server.client(server.live_key) as live:
        headers = {"Idempotency-Key": "same"}
        a = (await test.post("/api/customers", json={}, headers=headers)).json()
        b = (await live.post("/api/customers", json={}, headers=headers)).json()
        assert a["id"] != b["id"] and b["livemode"] is True


async def test_webhook_endpoint_lifecycle_and_secret_visibility(api: httpx.AsyncClient) -> None:
    created = (
        await api.post(
            "/api/webhook-endpoints",
            json={
                "url": "https://example.com/hook",
                "enabled_events": ["customer.subscription.started", "customer.subscription.renewed"],
                "description": "billing",
            },
        )
    ).json()
    secret = created["secret"]
    assert secret.startswith("whsec_") and created["status"] == "enabled" and created["created_via"] == "api"
    for field in (
        "id",
        "object",
        "url",
        "enabled_events",
        "status",
        "description",
        "metadata",
        "livemode",
        "api_version",
        "created_via",
        "created_at",
        "updated_at",
    ):
        assert field in created
    retrieved = await api.get(f"/api/webhook-endpoints/{created['id']}")
    listed = await api.get("/api/webhook-endpoints", params={"page": 1, "size": 100})
    assert "secret" not in retrieved.json()
    assert secret not in retrieved.text and secret not in listed.text
    assert listed.json()["count"] == 1
    assert (await api.get(f"/api/webhook-endpoints/{created['id']}/secret")).json() == {"secret": secret}

    updated = (
        await api.put(
            f"/api/webhook-endpoints/{created['id']}", json={"url": "https://example.org/h", "status": "disabled"}
        )
    ).json()
    assert updated["url"] == "https://example.org/h" and updated["status"] == "disabled"
    assert (await api.put(f"/api/webhook-endpoints/{created['id']}", json={"status": "paused"})).status_code == 400
    assert (await api.put(f"/api/webhook-endpoints/{created['id']}", json={"url": None})).status_code == 400

    rotated = (await api.post(f"/api/webhook-endpoints/{created['id']}/rotate-secret", json={"expires_in": 60})).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != secret
    assert (await api.get(f"/api/webhook-endpoints/{created['id']}/secret")).json() == rotated
    assert (await api.post(f"/api/webhook-endpoints/{created['id']}/rotate-secret")).status_code == 200

    deleted = await api.delete(f"/api/webhook-endpoints/{created['id']}")
    assert deleted.json() == {"id": created["id"], "object": "webhook_endpoint", "deleted": True}
    assert (await api.get(f"/api/webhook-endpoints/{created['id']}")).status_code == 404
    assert secret not in (await api.get("/api/events")).text


async def test_openapi_document_is_served(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        document = (await client.get("/openapi.json")).json()
    for path in ("/api/webhook-endpoints", "/api/events", "/api/events/stream", "/api/customers", "/api/prices"):
        assert path in document["paths"]


async def test_a_write_whose_response_was_lost_is_never_run_twice(
    server: Server, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies after the write commits but before the response is stored."""
    import sqlalchemy as sa

    from paywire.api import idempotency
    from paywire.api.idempotency import ABANDONED_AFTER
    from paywire.db.schema import idempotency_keys

    async def crash(*_args: object) -> None:
        raise RuntimeError("killed before the response was stored")

    monkeypatch.setattr(idempotency, "_write_ends", crash)
    headers = {"Idempotency-Key": "lost-response"}
    await api.post("/api/customers", json={"name": "once"}, headers=headers)
    await api.post("/api/customers", json={"name": 5}, headers={"Idempotency-Key": "no-write"})
    monkeypatch.undo()

    async with server.app.db.transaction() as tx:  # time passes: both keys look abandoned
        rows = dict((await tx.conn.execute(sa.select(idempotency_keys.c.key, idempotency_keys.c.state))).all())
        await tx.conn.execute(idempotency_keys.update().values(created=idempotency_keys.c.created - ABANDONED_AFTER))
    assert rows == {"lost-response": "committed", "no-write": "started"}

    retried = await api.post("/api/customers", json={"name": "once"}, headers=headers)
    assert retried.status_code == 409 and retried.json()["error"]["code"] == "idempotency_key_response_lost"
    assert (await api.get("/api/customers")).json()["count"] == 1
    # Nothing was written the first time, so that key's retry runs for real.
    assert (
        await api.post("/api/customers", json={"name": 5}, headers={"Idempotency-Key": "no-write"})
    ).status_code == 400


async def test_a_key_taken_over_while_its_first_request_still_runs_writes_once(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first request outlives `ABANDONED_AFTER` (blocked on a lock; the limit cut to 1 s); a
    retry takes the key over and runs. Only one may write: the first one's commit finds its
    claim gone and rolls back with 409 (both used to commit: two customers for one key)."""
    if not server.app.db.is_postgres:
        pytest.skip("needs a write that can wait on a lock while another runs (PostgreSQL)")
    import asyncio

    import asyncpg
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from paywire.api import idempotency

    monkeypatch.setattr(idempotency, "ABANDONED_AFTER", 1)
    dsn = make_url(server.app.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    locker = await asyncpg.connect(dsn)
    lock = locker.transaction()
    await lock.start()
    await locker.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
    headers = {"Idempotency-Key": "slow-first"}
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    try:
        async with server.client() as first_client, server.client() as retry_client:
            first = asyncio.create_task(first_client.post("/api/customers", json={"name": "once"}, headers=headers))
            while await locker.fetchval(waiting) < 1:
                await asyncio.sleep(0.02)
            await asyncio.sleep(1.1)  # the first now looks abandoned
            retry = asyncio.create_task(retry_client.post("/api/customers", json={"name": "once"}, headers=headers))
            while await locker.fetchval(waiting) < 2:
                await asyncio.sleep(0.02)
            await lock.rollback()
            first_answer, retry_answer = await first, await retry
            assert retry_answer.status_code == 200, retry_answer.text
            assert first_answer.status_code == 409, first_answer.text
            assert first_answer.json()["error"]["code"] == "idempotency_key_in_use"
            async with server.app.db.read() as conn:
                names = (await conn.execute(sa.text("SELECT name FROM customers"))).scalars().all()
            assert names == ["once"]
    finally:
        await locker.close()
