"""NUL, other control characters and lone surrogates in requests: SQLite and PostgreSQL agree.

PostgreSQL cannot store NUL in text (it answered 500) while SQLite stores it (200), and
`GET /api/customers/cus_%00` was a 500 on one and a 404 on the other. Now a body string with
one is a 400 naming the field, and such a path a 404, on both.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("/api/customers", {"name": "Ada\x00"}, "name"),
    ("/api/customers", {"email": "ada@example.com\x00"}, "email"),
    ("/api/customers", {"description": "\x00"}, "description"),
    ("/api/customers", {"metadata": {"k\x00": "v"}}, "metadata"),
    ("/api/customers", {"metadata": {"k": "v\x00"}}, "metadata"),
    ("/api/customers", {"name": "tab\tin a name"}, "name"),
    ("/api/customers", {"name": "bell\x07"}, "name"),
    ("/api/products", {"name": "Plan\x00"}, "name"),
    ("/api/products", {"name": "Plan", "description": "a\x00b"}, "description"),
    (
        "/api/webhook-endpoints",
        {"url": "https://example.com/h", "enabled_events": ["*"], "description": "\x00"},
        "description",
    ),
    ("/api/webhook-endpoints", {"url": "https://example.com/h", "enabled_events": ["customer.\x00"]}, "enabled_events"),
    ("/api/test-clocks", {"frozen_time": 1_767_225_600, "name": "\x00"}, "name"),
]


@pytest.mark.parametrize(("path", "body", "param"), BAD_BODIES, ids=[f"{p}-{f}" for p, _, f in BAD_BODIES])
async def test_control_characters_in_a_body_are_a_400_naming_the_field(
    api: httpx.AsyncClient, path: str, body: dict[str, Any], param: str
) -> None:
    for headers in ({}, {"Idempotency-Key": f"k-{param}"}):
        response = await api.post(path, json=body, headers=headers)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == param and error["code"] == "parameter_invalid", error
        assert "must not contain U+" in error["message"], error


async def test_nul_in_an_update_and_in_nested_objects(api: httpx.AsyncClient) -> None:
    customer = (await api.post("/api/customers", json={"name": "Ada"})).json()
    response = await api.put(f"/api/customers/{customer['id']}", json={"name": "A\x00"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "name", response.text
    response = await api.post(
        "/api/checkout-sessions", json={"mode": "payment", "line_items": [{"price_id": "price_\x00"}]}
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "line_items.0.price_id"
    assert (await api.get(f"/api/customers/{customer['id']}")).json()["name"] == "Ada"


async def test_lone_surrogates_are_a_400(api: httpx.AsyncClient) -> None:
    for raw in (b'{"name": "\\ud800"}', b'{"metadata": {"k": "x\\udfff"}}', b'{"metadata": {"\\ud83d": "v"}}'):
        response = await api.post("/api/customers", content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] in ("name", "metadata"), response.text
    # A real pair (an emoji) is fine.
    ok = await api.post(
        "/api/customers", content=b'{"name": "\\ud83d\\ude00"}', headers={"Content-Type": "application/json"}
    )
    assert ok.status_code == 200 and ok.json()["name"] == "\U0001f600"


async def test_line_breaks_and_tabs_are_fine_in_descriptions_and_metadata_values(api: httpx.AsyncClient) -> None:
    body = {"name": "Ada", "description": "line one\n\tline two\r\n", "metadata": {"note": "a\tb\nc"}}
    response = await api.post("/api/customers", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["description"] == body["description"] and response.json()["metadata"] == body["metadata"]


async def test_nul_in_the_url_is_a_404_in_the_path_and_a_400_in_the_query(api: httpx.AsyncClient) -> None:
    for path in ("/api/customers/cus_%00", "/api/products/%00", "/api/webhook-endpoints/we_%00x"):
        response = await api.get(path)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "resource_missing"
    response = await api.put("/api/customers/cus_%00", json={"name": "x"})
    assert response.status_code == 404, response.text
    response = await api.get("/api/customers", params={"email": "a\x00"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "email", response.text
    response = await api.get("/api/events", params={"type": "customer.\x00"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "type", response.text
    assert (await api.get("/api/customers", params={"email": "a@example.com"})).status_code == 200
