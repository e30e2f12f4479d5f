"""Signing in and out, and the test/live switch."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from paywire.errors import RateLimited
from paywire.ops import audit_log, operators
from paywire.web.dashboard import auth
from paywire.web.dashboard.common import PREFIX, checked_form, client_ip, current, field, services_of
from paywire.web.security import is_https
from paywire.web.templating import render

router = APIRouter()


def _safe_next(target: str) -> str:
    """Only a path inside the dashboard (never another site)."""
    if target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX + "/"


def _sign_in_page(request: Request, *, email: str = "", error: str | None = None, status: int = 200) -> Response:
    context = {"email": email, "error": error, "next": _safe_next(request.query_params.get("next", ""))}
    return render(request, "dashboard/sign_in.html", context, status_code=status)


@router.get("/sign-in")
async def sign_in_form(request: Request) -> Response:
    return _sign_in_page(request)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await checked_form(request)
    services = services_of(request)
    email, password = operators.normalize_email(field(form, "email")), str(form.get("password") or "")
    ip, now = client_ip(request), time.time()
    target = _safe_next(field(form, "next"))
    throttled: RateLimited | None = None
    async with services.db.read() as conn:
        try:
            await operators.check_not_throttled(conn, email, ip, now=now)
        except RateLimited as exc:
            throttled = exc
    if throttled is not None:
        async with services.db.transaction() as tx:
            await audit_log.record(
                tx.conn, operator_id=None, email=email or "(empty)", action="sign_in_failed", ip=ip,
                detail={"throttled": True}, now=now,
            )  # fmt: skip
        return _sign_in_page(request, email=email, error=throttled.message, status=429)
    async with services.db.read() as conn:
        operator = await operators.verify_password(conn, email, password) if email and password else None
    async with services.db.transaction() as tx:
        if operator is None:
            await operators.record_failure(tx, email, ip, now=now)
            await audit_log.record(
                tx.conn, operator_id=None, email=email or "(empty)", action="sign_in_failed", ip=ip, now=now
            )
        else:
            token = await operators.start_session(tx, operator["id"], now=now)
            await audit_log.record(
                tx.conn, operator_id=operator["id"], email=operator["email"], action="sign_in", ip=ip, now=now
            )
    if operator is None:
        return _sign_in_page(request, email=email, error="Wrong email or password.", status=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        auth.SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=is_https(request),
        path=PREFIX,
        max_age=operators.ABSOLUTE_TIMEOUT,
    )
    return response


@router.post("/sign-out")
async def sign_out(request: Request, session: operators.Session = Depends(current)) -> Response:
    await checked_form(request)
    services = services_of(request)
    async with services.db.transaction() as tx:
        await operators.end_session(tx, session.token_hash)
        await audit_log.record(
            tx.conn, operator_id=session.operator_id, email=session.email, action="sign_out",
            ip=client_ip(request), now=time.time(),
        )  # fmt: skip
    response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE, path=PREFIX, httponly=True, samesite="lax", secure=is_https(request))
    return response


@router.post("/mode")
async def switch_mode(request: Request, session: operators.Session = Depends(current)) -> Response:
    """The test/live switch: every page of this session then shows that mode's objects only."""
    form = await checked_form(request)
    livemode = field(form, "mode") == "live"
    services = services_of(request)
    async with services.db.transaction() as tx:
        await operators.set_mode(tx, session.token_hash, livemode)
        await audit_log.record(
            tx.conn, operator_id=session.operator_id, email=session.email, action="mode_switched",
            livemode=livemode, ip=client_ip(request), now=time.time(),
        )  # fmt: skip
    back = _safe_next(field(form, "next"))
    # A detail page of the other mode's object would be a 404: go to the list it belongs to.
    parts = back.split("?")[0].rstrip("/").split("/")
    if len(parts) > 3:
        back = "/".join(parts[:3])
    return RedirectResponse(back, status_code=303)
