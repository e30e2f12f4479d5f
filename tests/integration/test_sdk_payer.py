"""The SDK's payment links and billing portal sessions, sync and async, against a real server."""

from __future__ import annotations

import asyncio

from paywire.sdk import AsyncPaywire, Paywire
from tests.conftest import Server


async def test_sdk_payment_links_and_portal_sessions(server: Server) -> None:
    def sync_calls() -> tuple[str, str]:
        client = Paywire(api_key=server.test_key, base_url=server.url)
        product = client.products.create(name="SDK plan")
        price = client.prices.create(product_id=product.id, unit_amount="5.00", currency="usd")
        link = client.payment_links.create(line_items=[{"price_id": price.id, "quantity": 2}])
        assert link.url == f"{server.url}/pay/links/{link.id}" and link.mode == "payment"
        assert client.payment_links.retrieve(link.id).id == link.id
        assert client.payment_links.update(link.id, active=False).active is False
        assert [x.id for x in client.payment_links.list().list] == [link.id]
        customer = client.customers.create(email="sdk@example.com")
        portal = client.billing_portal.sessions.create(customer_id=customer.id)
        assert portal.url.startswith(f"{server.url}/pay/portal/open/")
        return link.id, customer.id

    link_id, customer_id = await asyncio.to_thread(sync_calls)
    async with AsyncPaywire(api_key=server.test_key, base_url=server.url) as client:
        link = await client.payment_links.update(link_id, active=True)
        assert link.active is True and (await client.payment_links.list()).count == 1
        portal = await client.billing_portal.sessions.create(customer=customer_id, locale="zh")
        assert portal.locale == "zh" and portal.customer_id == customer_id
