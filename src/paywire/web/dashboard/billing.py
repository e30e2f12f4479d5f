"""Billing pages: customers, subscriptions (with their event timeline, cancel), invoices,
payments (refund), refunds and test clocks (create, advance). Lists and detail pages share two
generic templates; every action calls the same engine function as the API route."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from paywire import objects
from paywire.billing import clock_advance, customers, invoices, money, payments, refunds, subscriptions
from paywire.billing.schemas import PaymentIntentRefund, TestClockCreate
from paywire.billing.statuses import PaymentIntentStatus
from paywire.db.schema import customers as customers_t
from paywire.db.schema import events
from paywire.db.schema import invoices as invoices_t
from paywire.db.schema import payment_intents as payments_t
from paywire.db.schema import refunds as refunds_t
from paywire.db.schema import subscriptions as subscriptions_t
from paywire.db.schema import test_clocks as clocks_t
from paywire.errors import InvalidRequest, PaywireError
from paywire.events import log as event_log
from paywire.events.log import RequestInfo
from paywire.web.dashboard import auth
from paywire.web.dashboard.common import (
    Cursor,
    admin_form,
    audit_action,
    current,
    cursor_params,
    datetime_local,
    field,
    keyset,
    page,
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
    session: auth.Session,
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
    request: Request, session: auth.Session, query: sa.Select[Any], table: sa.Table, cursor: Cursor,
    render: Callable[[Any], dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, str | None]]:  # fmt: skip
    async with services_of(request).db.read() as conn:
        result = await keyset(conn, query, table.c.seq, cursor)
    return [render(row._mapping) for row in result.rows], result.links(request)


async def _related(query: sa.Select[Any], render: Callable[[Any], dict[str, Any]], conn: Any) -> list[dict[str, Any]]:
    return [render(row) for row in (await conn.execute(query.limit(50))).mappings()]


async def _timeline(conn: Any, object_ids: list[str], livemode: bool, limit: int = 50) -> list[dict[str, Any]]:
    """The events of these objects, newest first."""
    if not object_ids:
        return []
    query = (
        event_log.select_events()
        .where(events.c.livemode == livemode, events.c.object_id.in_(object_ids))
        .order_by(events.c.seq.desc())
        .limit(limit)
    )
    return [event_log.render(row) for row in (await conn.execute(query)).all()]


def _detail(
    request: Request,
    session: auth.Session,
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
    session: auth.Session = Depends(current),
) -> Response:
    query = customers.listing(session.livemode, email=email.strip() or None)
    rows, links = await _keyset_list(request, session, query, customers_t, cursor, customers.render)
    return _list_page(
        request, session, nav="customers", title="Customers", rows=rows, columns=CUSTOMER_COLUMNS, links=links,
        empty=("No customers yet", "Customers are created through the API (POST /api/customers) or at checkout."),
        search={"name": "email", "label": "Email", "value": email},
    )  # fmt: skip


@router.get("/customers/{customer_id}")
async def show_customer(customer_id: str, request: Request, session: auth.Session = Depends(current)) -> Response:
    async with services_of(request).db.read() as conn:
        obj = customers.render(await objects.fetch(conn, customers_t, customer_id, session.livemode))
        subs = await _related(
            subscriptions.listing(session.livemode, customer_id=customer_id).order_by(subscriptions_t.c.seq.desc()),
            subscriptions.render, conn,
        )  # fmt: skip
        pays = await _related(
            payments.listing(session.livemode, customer_id=customer_id).order_by(payments_t.c.seq.desc()),
            payments.render, conn,
        )  # fmt: skip
        invs = await _related(
            invoices.listing(session.livemode, customer_id=customer_id).order_by(invoices_t.c.seq.desc()),
            invoices.render, conn,
        )  # fmt: skip
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
    session: auth.Session = Depends(current),
) -> Response:
    query = subscriptions.listing(session.livemode, status=status.strip() or None)
    rows, links = await _keyset_list(request, session, query, subscriptions_t, cursor, subscriptions.render)
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
    subscription_id: str, request: Request, session: auth.Session = Depends(current)
) -> Response:
    async with services_of(request).db.read() as conn:
        obj = subscriptions.render(await objects.fetch(conn, subscriptions_t, subscription_id, session.livemode))
        invs = await _related(
            invoices.listing(session.livemode, subscription_id=subscription_id).order_by(invoices_t.c.seq.desc()),
            invoices.render, conn,
        )  # fmt: skip
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
    session: auth.Session = Depends(current),
) -> Response:
    session.require_admin()
    async with services_of(request).db.read() as conn:
        obj = subscriptions.render(await objects.fetch(conn, subscriptions_t, subscription_id, session.livemode))
    return page(request, session, "confirm_cancel.html", {"sub": obj, "when": when}, nav="subscriptions")


@router.post("/subscriptions/{subscription_id}/cancel")
async def cancel_subscription(
    subscription_id: str, request: Request, session: auth.Session = Depends(current)
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
    session: auth.Session = Depends(current),
) -> Response:
    query = invoices.listing(session.livemode, status=status.strip() or None)
    rows, links = await _keyset_list(request, session, query, invoices_t, cursor, invoices.render)
    return _list_page(
        request, session, nav="invoices", title="Invoices", rows=rows, columns=INVOICE_COLUMNS, links=links,
        empty=("No invoices yet", "Invoices are made when a subscription starts or renews."),
        search={"name": "status", "label": "Status", "value": status},
    )  # fmt: skip


@router.get("/invoices/{invoice_id}")
async def show_invoice(invoice_id: str, request: Request, session: auth.Session = Depends(current)) -> Response:
    async with services_of(request).db.read() as conn:
        obj = invoices.render(await objects.fetch(conn, invoices_t, invoice_id, session.livemode))
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
    session: auth.Session = Depends(current),
) -> Response:
    query = payments.listing(session.livemode, status=status.strip() or None)
    rows, links = await _keyset_list(request, session, query, payments_t, cursor, payments.render)
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


async def _payment(request: Request, session: auth.Session, payment_id: str) -> tuple[dict[str, Any], Any]:
    async with services_of(request).db.read() as conn:
        row = await objects.fetch(conn, payments_t, payment_id, session.livemode)
        related = await _related(
            refunds.listing(session.livemode, payment_intent_id=payment_id).order_by(refunds_t.c.seq.desc()),
            refunds.render, conn,
        )  # fmt: skip
        timeline = await _timeline(conn, [payment_id, *(r["id"] for r in related)], session.livemode)
    return payments.render(row), (row, related, timeline)


@router.get("/payments/{payment_id}")
async def show_payment(payment_id: str, request: Request, session: auth.Session = Depends(current)) -> Response:
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
async def refund_payment(payment_id: str, request: Request, session: auth.Session = Depends(current)) -> Response:
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
    request: Request, cursor: Cursor = Depends(cursor_params), session: auth.Session = Depends(current)
) -> Response:
    rows, links = await _keyset_list(
        request, session, refunds.listing(session.livemode), refunds_t, cursor, refunds.render
    )
    return _list_page(
        request, session, nav="refunds", title="Refunds", rows=rows, columns=REFUND_COLUMNS, links=links,
        empty=("No refunds yet", "Refund a payment from its page."),
    )  # fmt: skip


@router.get("/refunds/{refund_id}")
async def show_refund(refund_id: str, request: Request, session: auth.Session = Depends(current)) -> Response:
    async with services_of(request).db.read() as conn:
        obj = refunds.render(await objects.fetch(conn, refunds_t, refund_id, session.livemode))
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
    request: Request, cursor: Cursor = Depends(cursor_params), session: auth.Session = Depends(current)
) -> Response:
    rows, links = await _keyset_list(
        request, session, clock_advance.listing(session.livemode), clocks_t, cursor, clock_advance.render
    )
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
async def create_clock(request: Request, session: auth.Session = Depends(current)) -> Response:
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


async def _clock_objects(conn: Any, clock_id: str, livemode: bool) -> list[str]:
    ids: list[str] = []
    for table in (customers_t, subscriptions_t, invoices_t, payments_t):
        ids += list(
            (
                await conn.execute(
                    sa.select(table.c.id).where(table.c.test_clock_id == clock_id, table.c.livemode == livemode)
                )
            ).scalars()
        )
    return ids


@router.get("/test-clocks/{clock_id}")
async def show_clock(
    clock_id: str,
    request: Request,
    after_seq: Annotated[int | None, Query(ge=0)] = None,
    session: auth.Session = Depends(current),
) -> Response:
    services = services_of(request)
    async with services.db.read() as conn:
        row = await objects.fetch(conn, clocks_t, clock_id, session.livemode)
        ids = await _clock_objects(conn, clock_id, session.livemode)
        query = event_log.select_events().where(events.c.livemode == session.livemode, events.c.object_id.in_(ids))
        if after_seq is not None:
            query = query.where(events.c.seq > after_seq)
        produced = [
            event_log.render(r) for r in (await conn.execute(query.order_by(events.c.seq.desc()).limit(100))).all()
        ]
        customers_on = await _related(
            customers.listing(session.livemode).where(customers_t.c.test_clock_id == clock_id),
            customers.render, conn,
        )  # fmt: skip
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
async def advance_clock(clock_id: str, request: Request, session: auth.Session = Depends(current)) -> Response:
    """Start the advance in the background (it runs every job due on the clock, which may take a
    while) and show the clock's page, which refreshes itself while the clock is `advancing`."""
    form = await admin_form(request, session)
    target = parse_utc(field(form, "frozen_time"), "frozen_time")
    services = services_of(request)
    async with services.db.read() as conn:
        row = await objects.fetch(conn, clocks_t, clock_id, session.livemode)
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
