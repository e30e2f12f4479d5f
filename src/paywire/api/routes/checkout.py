from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from paywire import objects
from paywire.api.context import Ctx, context, services_of
from paywire.api.paging import page_params
from paywire.billing import checkout, flows
from paywire.billing.scheduler import run_due
from paywire.billing.schemas import CheckoutConfirm, CheckoutSession, CheckoutSessionCreate, NftPublicKey
from paywire.billing.statuses import NftMintStatus
from paywire.db.schema import checkout_sessions as table
from paywire.minting.signed_receipt import public_key_info, signing_key
from paywire.pagination import Page, paginate
from paywire.schemas import ListResponse

router = APIRouter(tags=["checkout"])


@router.post("/api/checkout-sessions", response_model=CheckoutSession)
async def create_session(body: CheckoutSessionCreate, request: Request, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    """A session and its hosted payment page (`url`)."""
    pages_url = ctx.services.public_url(str(request.base_url))
    async with ctx.db.transaction() as tx:
        return await checkout.create(tx, ctx.call(), body, pages_url=pages_url)


@router.post("/api/checkout-sessions/{session_id}/confirm", response_model=CheckoutSession)
async def confirm_session(session_id: str, body: CheckoutConfirm, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    """Pay with a payment method. A decline answers 402 after recording the failed payment
    (the session stays open for another card)."""
    outcome = await flows.confirm_checkout(ctx.db, ctx.call(), session_id, body.payment_method)
    session = outcome.unwrap()
    if session["nft_mint_status"] == NftMintStatus.PENDING:
        await run_due(ctx.db, ctx.billing, object_id=session_id)  # mint now, not at the next poll
        async with ctx.db.read() as conn:
            session = checkout.render(await objects.fetch(conn, table, session_id, ctx.livemode))
    return session


@router.get("/api/checkout-sessions", response_model=ListResponse[CheckoutSession])
async def list_sessions(
    customer_id: str | None = None,
    status: str | None = None,
    page: Page = Depends(page_params),
    ctx: Ctx = Depends(context),
) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        query = checkout.listing(ctx.livemode, customer_id=customer_id, status=status)
        return await paginate(conn, query, table.c.seq, page, checkout.render)


@router.get("/api/checkout-sessions/{session_id}", response_model=CheckoutSession)
async def retrieve_session(session_id: str, ctx: Ctx = Depends(context)) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return checkout.render(await objects.fetch(conn, table, session_id, ctx.livemode))


@router.get("/api/nft/public-key", response_model=NftPublicKey, tags=["nft"])
async def nft_public_key(request: Request) -> dict[str, str]:
    """The Ed25519 key that verifies the tokens of the built-in `SignedReceiptMinter`.

    Public (no API key): whoever holds a token can check it."""
    async with services_of(request).db.transaction() as tx:
        kid, key = await signing_key(tx.conn, tx.keyring)
    return public_key_info(kid, key)
