"""Billing pages: customers, subscriptions (with their event timeline, cancel), invoices,
payments (refund), refunds and test clocks (create, advance). Lists and detail pages share two
generic templates; every action calls the same engine function as the API route."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from paywire.billing import clock_advance, customers, invoices, money, payments, read, refunds, subscriptions
from paywire.billing.schemas import PaymentIntentRefund, TestClockCreate
from paywire.billing.statuses import PaymentIntentStatus
from paywire.errors import InvalidRequest, PaywireError
from paywire.events import log as event_log
from paywire.events import queries as event_queries
from paywire.events.log import RequestInfo
from paywire.ops import operators
from paywire.pagination import Cursor, KeysetPage
from paywire.web.dashboard.common import (
    admin_form,
    audit_action,
    current,
    cursor_params,
    datetime_local,
    field,
    page,
    page_links,
    parse_utc,
    redirect,
    services_of,
)

router = APIRouter()
log = logging.getLogger("paywire.dashboard")

# Columns: (header, key, kind); kinds: text, mono, time, badge, amount, link:<list path>.
Column = tuple[str, str, str]
CUSTOMER_COLUMNS: list[Column] = [
    ("Customer", "id", "link:customers"), ("Name", "name", "text"), ("Email", "email", "text"),
    ("Test clock", "test_clock_id", "link:test-clocks"), ("Created", "created", "time"),
]  # fmt: skip
SUBSCRIPTION_COLUMNS: list[Column] = [
    ("Subscription", "id", "link:subscriptions"), ("Status", "status", "badge"),
    ("Customer", "customer_id", "link:customers"), ("Period end", "current_period_end", "time"),
    ("Cancels", "cancel_at_period_end", "text"), ("Created", "created", "time"),
]  # fmt: skip
INVOICE_COLUMNS: list[Column] = [
    ("Invoice", "id", "link:invoices"), ("Status", "status", "badge"), ("Total", "total", "amount"),
    ("Customer", "customer_id", "link:customers"), ("Reason", "billing_reason", "text"), ("Created", "created", "time"),
]  # fmt: skip
PAYMENT_COLUMNS: list[Column] = [
    ("Payment", "id", "link:payments"), ("Status", "status", "badge"), ("Amount", "amount", "amount"),
    ("Refunded", "amount_refunded", "amount"), ("Customer", "customer_id", "link:customers"),
    ("Created", "created", "time"),
]  # fmt: skip
REFUND_COLUMNS: list[Column] = [
    ("Refund", "id", "link:refunds"), ("Status", "status", "badge"), ("Amount", "amount", "amount"),
    ("Payment", "payment_intent_id", "link:payments"), ("Reason", "reason", "text"), ("Created", "created", "time"),
]  # fmt: skip
CLOCK_COLUMNS: list[Column] = [
    ("Test clock", "id", "link:test-clocks"), ("Name", "name", "text"), ("Status", "status", "badge"),
    ("Frozen time", "frozen_time", "time"), ("Created", "created", "time"),
]  # fmt: skip
EVENT_COLUMNS: list[Column] = [
    ("Event", "type", "event"), ("Object", "object_id", "mono"), ("Created", "created", "time"),
]  # fmt: skip


def _list_page(
    request: Request,
    session: operators.Session,
    *,
    nav: str,
    title: str,
    rows: list[dict[str, Any]],
    columns: list[Column],
    links: dict[str, str | None],
    empty: tuple[str, str],
    search: dict[str, str] | None = None,
    action: tuple[str, str] | None = None,
) -> Response:
    context = {
        "title": title,
        "rows": rows,
        "columns": columns,
        "page": links,
        "empty_title": empty[0],
        "empty_hint": empty[1],
        "search": search,
        "head_action": action,
    }
    return page(request, session, "list.html", context, nav=nav)


async def _keyset_list(
    request: Request, session: operators.Session, cursor: Cursor,
    read_page: Callable[[Any, bool, Cursor], Awaitable[KeysetPage]], render: Callable[[Any], dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, str | None]]:  # fmt: skip
    """One keyset page of a kind (`read_page`, from `billing.read`), rendered, with its links."""
    async with services_of(request).db.read() as conn:
        result = await read_page(conn, session.livemode, cursor)
    return [render(row._mapping) for row in result.rows], page_links(request, result)


async def _timeline(conn: Any, object_ids: list[str], livemode: bool) -> list[dict[str, Any]]:
    """The events of these objects, newest first."""
    return await event_queries.events_of_objects(conn, object_ids, livemode)


def _detail(
    request: Request,
    session: operators.Session,
    *,
    nav: str,
    kind: str,
    obj: dict[str, Any],
    fields: list[Column],
    sections: list[dict[str, Any]] | None = None,
    actions: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    context = {
        "kind": kind,
        "obj": obj,
        "fields": fields,
        "sections": sections or [],
        "actions": actions,
        "obj_json": json.dumps(obj, indent=2, ensure_ascii=False, default=str),
        **(extra or {}),
    }
    return page(request, session, "object.html", context, nav=nav)


# --- customers -------------------------------------------------------------------------------


@router.get("/customers")
async def list_customers(
    request: Request,
    email: Annotated[str, Query(max_length=320)] = "",
    cursor: Cursor = Depends(cursor_params),
    session: operators.Session = Depends(current),
) -> Response:
    read_page = partial(read.customers_page, email=email.strip() or None)
    rows, links = await _keyset_list(request, session, cursor, read_page, customers.render)
    return _list_page(
        request, session, nav="customers", title="Customers", rows=rows, columns=CUSTOMER_COLUMNS, links=links,
        empty=("No customers yet", "Customers are created through the API (POST /api/customers) or at checkout."),
        search={"name": "email", "label": "Email", "value": email},
    )  # fmt: skip


@router.get("/customers/{customer_id}")
async def show_customer(customer_id: str, request: Request, session: operators.Session = Depends(current)) -> Response:
    async with services_of(request).db.read() as conn:
        obj = customers.render(await read.customer(conn, customer_id, session.livemode))
        subs = [
            subscriptions.render(r) for r in await read.subscriptions_of_customer(conn, session.livemode, customer_id)
        ]
        pays = [payments.render(r) for r in await read.payments_of_customer(conn, session.livemode, customer_id)]
        invs = [invoices.render(r) for r in await read.invoices_of(conn, session.livemode, customer_id=customer_id)]
        timeline = await _timeline(conn, [customer_id], session.livemode)
    sections = [
        {"title": "Subscriptions", "rows": subs, "columns": SUBSCRIPTION_COLUMNS},
        {"title": "Invoices", "rows": invs, "columns": INVOICE_COLUMNS},
        {"title": "Payments", "rows": pays, "columns": PAYMENT_COLUMNS},
        {"title": "Events", "rows": timeline, "columns": EVENT_COLUMNS},
    ]
    fields: list[Column] = [
        ("Name", "name", "text"), ("Email", "email", "text"), ("Description", "description", "text"),
        ("Test clock", "test_clock_id", "link:test-clocks"), ("Created", "created", "time"),
    ]  # fmt: skip
    return _detail(request, session, nav="customers", kind="Customer", obj=obj, fields=fields, sections=sections)


# --- subscriptions ---------------------------------------------------------------------------


@router.get("/subscriptions")
async def list_subscriptions(
    request: Request,
    status: Annotated[str, Query(max_length=24)] = "",
    cursor: Cursor = Depends(cursor_params),
    session: operators.Session = Depends(current),
) -> Response:
    read_page = partial(read.subscriptions_page, status=status.strip() or None)
    rows, links = await _keyset_list(request, session, cursor, read_page, subscriptions.render)
    return _list_page(
        request, session, nav="subscriptions", title="Subscriptions", rows=rows, columns=SUBSCRIPTION_COLUMNS,
        links=links, empty=("No subscriptions yet", "Subscriptions start at checkout or with POST /api/subscriptions."),
        search={"name": "status", "label": "Status", "value": status},
    )  # fmt: skip


SUBSCRIPTION_FIELDS: list[Column] = [
    ("Status", "status", "badge"), ("Customer", "customer_id", "link:customers"),
    ("Current period", "current_period_start", "time"), ("Period ends", "current_period_end", "time"),
    ("Cancel at period end", "cancel_at_period_end", "text"), ("Canceled at", "canceled_at", "time"),
    ("Ended at", "ended_at", "time"), ("Trial ends", "trial_end", "time"),
    ("Latest invoice", "latest_invoice_id", "link:invoices"), ("Test clock", "test_clock_id", "link:test-clocks"),
    ("Created", "created", "time"),
]  # fmt: skip


@router.get("/subscriptions/{subscription_id}")
async def show_subscription(
    subscription_id: str, request: Request, session: operators.Session = Depends(current)
) -> Response:
    async with services_of(request).db.read() as conn:
        obj = subscriptions.render(await read.subscription(conn, subscription_id, session.livemode))
        invs = [
            invoices.render(r) for r in await read.invoices_of(conn, session.livemode, subscription_id=subscription_id)
        ]
        timeline = await _timeline(conn, [subscription_id], session.livemode)
    sections = [
        {"title": "Timeline", "rows": timeline, "columns": EVENT_COLUMNS},
        {"title": "Invoices", "rows": invs, "columns": INVOICE_COLUMNS},
    ]
    return _detail(
        request, session, nav="subscriptions", kind="Subscription", obj=obj, fields=SUBSCRIPTION_FIELDS,
        sections=sections, actions="subscription",
    )  # fmt: skip


@router.get("/subscriptions/{subscription_id}/cancel")
async def cancel_confirm(
    subscription_id: str,
    request: Request,
    when: Annotated[str, Query(pattern="^(now|period_end)$")] = "now",
    session: operators.Session = Depends(current),
) -> Response:
    session.require_admin()
    async with services_of(request).db.read() as conn:
        obj = subscriptions.render(await read.subscription(conn, subscription_id, session.livemode))
    return page(request, session, "confirm_cancel.html", {"sub": obj, "when": when}, nav="subscriptions")


@router.post("/subscriptions/{subscription_id}/cancel")
async def cancel_subscription(
    subscription_id: str, request: Request, session: operators.Session = Depends(current)
) -> Response:
    form = await admin_form(request, session)
    at_period_end = field(form, "when") == "period_end"
    services = services_of(request)
    async with services.db.transaction() as tx:
        call = services.billing.call(session.livemode, RequestInfo())
        await subscriptions.cancel(tx, call, subscription_id, at_period_end=at_period_end)
        await audit_action(
            tx.conn, request, session, "subscription_canceled", subscription_id, {"at_period_end": at_period_end}
        )
    return redirect(f"/subscriptions/{subscription_id}", "canceled")


# --- invoices --------------------------------------------------------------------------------


@router.get("/invoices")
async def list_invoices(
    request: Request,
    status: Annotated[str, Query(max_length=16)] = "",
    cursor: Cursor = Depends(cursor_params),
    session: operators.Session = Depends(current),
) -> Response:
    read_page = partial(read.invoices_page, status=status.strip() or None)
    rows, links = await _keyset_list(request, session, cursor, read_page, invoices.render)
    return _list_page(
        request, session, nav="invoices", title="Invoices", rows=rows, columns=INVOICE_COLUMNS, links=links,
        empty=("No invoices yet", "Invoices are made when a subscription starts or renews."),
        search={"name": "status", "label": "Status", "value": status},
    )  # fmt: skip


@router.get("/invoices/{invoice_id}")
async def show_invoice(invoice_id: str, request: Request, session: operators.Session = Depends(current)) -> Response:
    async with services_of(request).db.read() as conn:
        obj = invoices.render(await read.invoice(conn, invoice_id, session.livemode))
        timeline = await _timeline(conn, [invoice_id], session.livemode)
    lines = [{**line, "period_start": line["period"].get("start"), "period_end": line["period"].get("end")}
             for line in obj["lines"]]  # fmt: skip
    line_columns: list[Column] = [
        ("Description", "description", "text"), ("Quantity", "quantity", "text"), ("Amount", "amount", "amount"),
        ("From", "period_start", "time"), ("To", "period_end", "time"),
    ]  # fmt: skip
    fields: list[Column] = [
        ("Status", "status", "badge"), ("Total", "total", "amount"), ("Amount paid", "amount_paid", "amount"),
        ("Amount remaining", "amount_remaining", "amount"), ("Customer", "customer_id", "link:customers"),
        ("Subscription", "subscription_id", "link:subscriptions"), ("Payment", "payment_intent_id", "link:payments"),
        ("Billing reason", "billing_reason", "text"), ("Period start", "period_start", "time"),
        ("Period end", "period_end", "time"), ("Paid at", "paid_at", "time"), ("Attempts", "attempt_count", "text"),
        ("Next payment attempt", "next_payment_attempt", "time"), ("Created", "created", "time"),
    ]  # fmt: skip
    sections = [
        {"title": "Lines", "rows": lines, "columns": line_columns},
        {"title": "Events", "rows": timeline, "columns": EVENT_COLUMNS},
    ]
    return _detail(request, session, nav="invoices", kind="Invoice", obj=obj, fields=fields, sections=sections)


# --- payments and refunds --------------------------------------------------------------------


@router.get("/payments")
async def list_payments(
    request: Request,
    status: Annotated[str, Query(max_length=32)] = "",
    cursor: Cursor = Depends(cursor_params),
    session: operators.Session = Depends(current),
) -> Response:
    read_page = partial(read.payments_page, status=status.strip() or None)
    rows, links = await _keyset_list(request, session, cursor, read_page, payments.render)
    return _list_page(
        request, session, nav="payments", title="Payments", rows=rows, columns=PAYMENT_COLUMNS, links=links,
        empty=("No payments yet", "Payment intents are made at checkout and for every invoice."),
        search={"name": "status", "label": "Status", "value": status},
    )  # fmt: skip


PAYMENT_FIELDS: list[Column] = [
    ("Status", "status", "badge"), ("Amount", "amount", "amount"), ("Received", "amount_received", "amount"),
    ("Refunded", "amount_refunded", "amount"), ("Customer", "customer_id", "link:customers"),
    ("Invoice", "invoice_id", "link:invoices"), ("Payment method", "payment_method", "mono"),
    ("Description", "description", "text"), ("Created", "created", "time"),
]  # fmt: skip


async def _payment(request: Request, session: operators.Session, payment_id: str) -> tuple[dict[str, Any], Any]:
    async with services_of(request).db.read() as conn:
        row = await read.payment(conn, payment_id, session.livemode)
        related = [refunds.render(r) for r in await read.refunds_of_payment(conn, session.livemode, payment_id)]
        timeline = await _timeline(conn, [payment_id, *(r["id"] for r in related)], session.livemode)
    return payments.render(row), (row, related, timeline)


@router.get("/payments/{payment_id}")
async def show_payment(payment_id: str, request: Request, session: operators.Session = Depends(current)) -> Response:
    obj, (row, related, timeline) = await _payment(request, session, payment_id)
    refundable = row["status"] == PaymentIntentStatus.SUCCEEDED and row["amount_received"] > row["amount_refunded"]
    sections = [
        {"title": "Refunds", "rows": related, "columns": REFUND_COLUMNS},
        {"title": "Events", "rows": timeline, "columns": EVENT_COLUMNS},
    ]
    return _detail(
        request, session, nav="payments", kind="Payment", obj=obj, fields=PAYMENT_FIELDS, sections=sections,
        actions="payment" if refundable else None,
    )  # fmt: skip


@router.post("/payments/{payment_id}/refund")
async def refund_payment(payment_id: str, request: Request, session: operators.Session = Depends(current)) -> Response:
    """Two steps: without `confirm` the form is shown back as a confirmation; with it, refunded."""
    form = await admin_form(request, session)
    amount = field(form, "amount") or None
    reason = field(form, "reason") or None
    try:
        params = PaymentIntentRefund.model_validate({"amount": amount, "reason": reason})
    except ValidationError:
        raise InvalidRequest("reason must be duplicate, fraudulent or requested_by_customer", param="reason") from None
    obj, _ = await _payment(request, session, payment_id)
    if amount is not None:
        try:  # checked before the confirmation page, not only after it
            money.parse_amount(amount, obj["currency"])
        except ValueError as exc:
            raise InvalidRequest(f"amount: {exc}", param="amount") from None
    if field(form, "confirm") != "yes":
        context = {"payment": obj, "amount": amount, "reason": reason}
        return page(request, session, "confirm_refund.html", context, nav="payments")
    services = services_of(request)
    async with services.db.transaction() as tx:
        call = services.billing.call(session.livemode, RequestInfo())
        refund = await refunds.create(tx, call, payment_id, params)
        await audit_action(
            tx.conn,
            request,
            session,
            "payment_refunded",
            payment_id,
            {"refund": refund["id"], "amount": refund["amount"]},
        )
    return redirect(f"/payments/{payment_id}", "refunded")


@router.get("/refunds")
async def list_refunds(
    request: Request, cursor: Cursor = Depends(cursor_params), session: operators.Session = Depends(current)
) -> Response:
    rows, links = await _keyset_list(request, session, cursor, read.refunds_page, refunds.render)
    return _list_page(
        request, session, nav="refunds", title="Refunds", rows=rows, columns=REFUND_COLUMNS, links=links,
        empty=("No refunds yet", "Refund a payment from its page."),
    )  # fmt: skip


@router.get("/refunds/{refund_id}")
async def show_refund(refund_id: str, request: Request, session: operators.Session = Depends(current)) -> Response:
    async with services_of(request).db.read() as conn:
        obj = refunds.render(await read.refund(conn, refund_id, session.livemode))
        timeline = await _timeline(conn, [refund_id], session.livemode)
    fields: list[Column] = [
        ("Status", "status", "badge"), ("Amount", "amount", "amount"),
        ("Payment", "payment_intent_id", "link:payments"), ("Reason", "reason", "text"), ("Created", "created", "time"),
    ]  # fmt: skip
    sections = [{"title": "Events", "rows": timeline, "columns": EVENT_COLUMNS}]
    return _detail(request, session, nav="refunds", kind="Refund", obj=obj, fields=fields, sections=sections)


# --- test clocks -----------------------------------------------------------------------------


@router.get("/test-clocks")
async def list_clocks(
    request: Request, cursor: Cursor = Depends(cursor_params), session: operators.Session = Depends(current)
) -> Response:
    rows, links = await _keyset_list(request, session, cursor, read.test_clocks_page, clock_advance.render)
    services = services_of(request)
    context = {
        "title": "Test clocks", "rows": rows, "columns": CLOCK_COLUMNS, "page": links,
        "empty_title": "No test clocks yet" if not session.livemode else "Test clocks exist in test mode only",
        "empty_hint": "A test clock freezes time for the customers on it; advance it to see renewals, trials "
                      "and dunning happen.",
        "search": None, "head_action": None, "clock_form": not session.livemode,
        "now_local": datetime_local(services.now()),
    }  # fmt: skip
    return page(request, session, "list.html", context, nav="test_clocks")


@router.post("/test-clocks")
async def create_clock(request: Request, session: operators.Session = Depends(current)) -> Response:
    form = await admin_form(request, session)
    frozen = parse_utc(field(form, "frozen_time"), "frozen_time")
    services = services_of(request)
    try:
        params = TestClockCreate(frozen_time=frozen, name=field(form, "name") or None)
    except ValidationError:
        raise InvalidRequest("check the name (256 characters at most) and the time", param="frozen_time") from None
    async with services.db.transaction() as tx:
        clock = await clock_advance.create(tx, services.billing.call(session.livemode, RequestInfo()), params)
        await audit_action(tx.conn, request, session, "test_clock_created", clock["id"], {"frozen_time": frozen})
    return redirect(f"/test-clocks/{clock['id']}", "created")


@router.get("/test-clocks/{clock_id}")
async def show_clock(
    clock_id: str,
    request: Request,
    after_seq: Annotated[int | None, Query(ge=0)] = None,
    session: operators.Session = Depends(current),
) -> Response:
    services = services_of(request)
    async with services.db.read() as conn:
        row = await read.test_clock(conn, clock_id, session.livemode)
        ids = await read.objects_on_clock(conn, clock_id, session.livemode)
        produced = await event_queries.events_of_objects(conn, ids, session.livemode, after_seq=after_seq, limit=100)
        customers_on = [customers.render(r) for r in await read.customers_on_clock(conn, session.livemode, clock_id)]
    obj = clock_advance.render(row)
    fields: list[Column] = [
        ("Name", "name", "text"), ("Status", "status", "badge"), ("Frozen time", "frozen_time", "time"),
        ("Created", "created", "time"),
    ]  # fmt: skip
    title = "Events from this advance" if after_seq is not None else "Events of the objects on this clock"
    sections = [
        {"title": title, "rows": produced, "columns": EVENT_COLUMNS},
        {"title": "Customers on this clock", "rows": customers_on, "columns": CUSTOMER_COLUMNS},
    ]
    extra = {
        "advance_default": datetime_local(row["frozen_time"] + 86_400),
        "advance_error": request.app.state.advances.get(clock_id),
        "refresh": row["status"] == "advancing",
    }
    return _detail(
        request, session, nav="test_clocks", kind="Test clock", obj=obj, fields=fields, sections=sections,
        actions="clock", extra=extra,
    )  # fmt: skip


@router.post("/test-clocks/{clock_id}/advance")
async def advance_clock(clock_id: str, request: Request, session: operators.Session = Depends(current)) -> Response:
    """Start the advance in the background (it runs every job due on the clock, which may take a
    while) and show the clock's page, which refreshes itself while the clock is `advancing`."""
    form = await admin_form(request, session)
    target = parse_utc(field(form, "frozen_time"), "frozen_time")
    services = services_of(request)
    async with services.db.read() as conn:
        row = await read.test_clock(conn, clock_id, session.livemode)
        start_seq = await event_log.last_seq(conn)
    if target < row["frozen_time"]:
        raise InvalidRequest("the new time must not be before the clock's time", param="frozen_time")
    if row["status"] == "advancing":
        raise PaywireError("this test clock is already advancing; wait for it to be ready", code="test_clock_advancing")
    async with services.db.transaction() as tx:
        await audit_action(
            tx.conn, request, session, "test_clock_advanced", clock_id,
            {"from": row["frozen_time"], "to": target},
        )  # fmt: skip
    advances: dict[str, str] = request.app.state.advances
    advances.pop(clock_id, None)
    call = services.billing.call(session.livemode, RequestInfo())

    async def run() -> None:
        try:
            await clock_advance.advance(services.db, services.billing, call, clock_id, target)
        except PaywireError as exc:
            advances[clock_id] = exc.message
        except Exception:
            log.exception("test clock %s: advance failed", clock_id)
            advances[clock_id] = "the advance stopped part-way; see the server log, then advance again"

    task = asyncio.create_task(run())
    tasks: set[asyncio.Task[None]] = request.app.state.tasks
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    # Let the advance mark the clock `advancing` before the page is drawn.
    await asyncio.sleep(0.05)
    return redirect(f"/test-clocks/{clock_id}?after_seq={start_seq}", "advancing")
