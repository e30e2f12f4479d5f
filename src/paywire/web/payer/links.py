"""`/pay/links/{id}`: a payment link's page. Each visit starts a checkout session and goes to it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from paywire.billing import payment_links
from paywire.errors import InvalidRequest, StateError
from paywire.events.log import RequestInfo
from paywire.web.payer.common import lang_for, page, pages_url, services_of

router = APIRouter()


@router.get("/links/{link_id}")
async def link_page(request: Request, link_id: str) -> Response:
    services = services_of(request)
    async with services.db.read() as conn:
        link = await payment_links.load(conn, link_id)
    lang = lang_for(request, link["locale"])
    call = services.billing.call(bool(link["livemode"]), RequestInfo(id=getattr(request.state, "request_id", None)))
    try:
        async with services.db.transaction() as tx:
            session = await payment_links.start_session(tx, call, link, pages_url=pages_url(request))
    except (StateError, InvalidRequest):  # deactivated, or a price of it no longer sold
        context = {
            "title": lang.gettext("This link is no longer available"),
            "message": lang.gettext("%(business)s no longer sells this through this link. Nothing was charged.")
            % {"business": services.settings.business_name},
            "tone": "muted",
        }
        return page(request, "pay/message.html", lang, context, status_code=410, livemode=bool(link["livemode"]))
    path = f"{request.scope.get('root_path', '')}/checkout/{session['id']}"
    return RedirectResponse(path, status_code=303, headers={"Cache-Control": "no-store"})
