"""The dashboard's side of operators: the session cookie's name and the error a page raises
without a live session. The operators, their sessions, roles and sign-in failures are stored by
`paywire.ops.operators`; its names are re-exported here for the pages, the CLI and the tests."""

from __future__ import annotations

from paywire.errors import PaywireError
from paywire.ops.operators import (
    ABSOLUTE_TIMEOUT,
    FAILURE_WINDOW,
    IDLE_TIMEOUT,
    MAX_FAILURES_PER_EMAIL,
    MAX_FAILURES_PER_IP,
    MIN_PASSWORD,
    ROLES,
    TOUCH_EVERY,
    Forbidden,
    Session,
    check_new_operator,
    check_not_throttled,
    create_operator,
    delete_operator,
    end_session,
    find_session,
    hash_password,
    hash_token,
    list_operators,
    normalize_email,
    record_failure,
    session_of,
    set_mode,
    start_session,
    touch,
    verify_password,
)

__all__ = [
    "ABSOLUTE_TIMEOUT",
    "FAILURE_WINDOW",
    "IDLE_TIMEOUT",
    "MAX_FAILURES_PER_EMAIL",
    "MAX_FAILURES_PER_IP",
    "MIN_PASSWORD",
    "ROLES",
    "SESSION_COOKIE",
    "TOUCH_EVERY",
    "Forbidden",
    "NotSignedIn",
    "Session",
    "check_new_operator",
    "check_not_throttled",
    "create_operator",
    "delete_operator",
    "end_session",
    "find_session",
    "hash_password",
    "hash_token",
    "list_operators",
    "normalize_email",
    "record_failure",
    "session_of",
    "set_mode",
    "start_session",
    "touch",
    "verify_password",
]

SESSION_COOKIE = "paywire_session"


class NotSignedIn(PaywireError):
    status = 401
    type = "authentication_error"
    code = "not_signed_in"
