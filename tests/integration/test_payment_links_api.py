"""`/api/payment-links` on both databases: create, retrieve, list, update, and each visit of the
link's page starting a checkout session."""

from __future__ import annotations

import httpx

from tests.conftest import Server
from tests.web.payer_helpers import events, ok, price


async def test_payment_links_create_list_update_and_visit(server: Server, api: httpx.AsyncClient) -> None:
    one_time = await price(api, "10.00")
    link = await ok(
        api.post(
            "/api/payment-links",
            json={
                "line_items": [{"price_id": one_time["id"], "quantity": 3}],
                "after_completion": {
                    "type": "redirect",
                    "redirect": {"url": "https://shop.example/{CHECKOUT_SESSION_ID}"},
                },
                "metadata": {"campaign": "spring"},
                "locale": "zh",
            },
        )
    )
    assert link["id"].startswith("plink_") and link["object"] == "payment_link"
    assert link["url"] == f"{server.url}/pay/links/{link['id']}"
    assert link["mode"] == "payment" and link["active"] is True and link["locale"] == "zh"
    assert link["line_items"] == [{"price_id": one_time["id"], "quantity": 3}]
    assert link["after_completion"]["redirect"]["url"] == "https://shop.example/{CHECKOUT_SESSION_ID}"
    assert await ok(api.get(f"/api/payment-links/{link['id']}")) == link

    recurring = await price(api, "19.99", interval="month")
    sub_link = await ok(
        api.post(
            "/api/payment-links",
            json={"line_items": [{"price_id": recurring["id"]}], "subscription_data": {"trial_period_days": 7}},
        )
    )
    assert sub_link["mode"] == "subscription" and sub_link["subscription_data"] == {"trial_period_days": 7}
    assert sub_link["after_completion"] == {"type": "hosted_confirmation"}

    listed = await ok(api.get("/api/payment-links"))
    assert listed["count"] == 2 and [x["id"] for x in listed["list"]] == [sub_link["id"], link["id"]]
    assert listed["paging"] == {"page": 1, "size": 20}

    # Every visit is a new checkout session with the link's items, locale and success URL.
    async with httpx.AsyncClient() as browser:
        first = await browser.get(link["url"])
        second = await browser.get(link["url"])
    assert first.status_code == second.status_code == 303
    ids = [r.headers["location"].rsplit("/", 1)[1] for r in (first, second)]
    assert ids[0] != ids[1]
    session = await ok(api.get(f"/api/checkout-sessions/{ids[0]}"))
    assert session["payment_link_id"] == link["id"] and session["locale"] == "zh" and session["mode"] == "payment"
    assert session["line_items"][0]["quantity"] == 3 and session["amount_total"] == "30.00"
    assert session["success_url"] == "https://shop.example/{CHECKOUT_SESSION_ID}"

    updated = await ok(api.put(f"/api/payment-links/{link['id']}", json={"active": False}))
    assert updated["active"] is False
    async with httpx.AsyncClient() as browser:
        gone = await browser.get(link["url"], headers={"Accept-Language": "en"})
    assert gone.status_code == 410 and "不再" in gone.text  # the link's locale is zh
    types = [e["type"] for e in await events(api, "payment_link.*")]
    assert types == ["payment_link.created", "payment_link.created", "payment_link.updated"]
    update_event = (await events(api, "payment_link.updated"))[0]
    assert update_event["data"]["previous_attributes"] == {"active": True}


async def test_payment_links_refuse_bad_requests_and_the_other_mode(server: Server, api: httpx.AsyncClient) -> None:
    one_time = await price(api, "10.00")
    recurring = await price(api, "19.99", interval="month")
    mixed = await api.post(
        "/api/payment-links", json={"line_items": [{"price_id": one_time["id"]}, {"price_id": recurring["id"]}]}
    )
    assert mixed.status_code == 400 and mixed.json()["error"]["param"] == "line_items"
    trial_on_one_time = await api.post(
        "/api/payment-links",
        json={"line_items": [{"price_id": one_time["id"]}], "subscription_data": {"trial_period_days": 3}},
    )
    assert trial_on_one_time.status_code == 400
    no_url = await api.post(
        "/api/payment-links",
        json={"line_items": [{"price_id": one_time["id"]}], "after_completion": {"type": "redirect"}},
    )
    assert no_url.status_code == 400
    missing = await api.get("/api/payment-links/plink_nope")
    assert missing.status_code == 404
    link = await ok(api.post("/api/payment-links", json={"line_items": [{"price_id": one_time["id"]}]}))
    async with server.client(server.live_key) as live:
        assert (await live.get(f"/api/payment-links/{link['id']}")).status_code == 404
        assert (await live.put(f"/api/payment-links/{link['id']}", json={"active": False})).status_code == 404
        other_mode = await live.post("/api/payment-links", json={"line_items": [{"price_id": one_time["id"]}]})
        assert other_mode.status_code == 400
