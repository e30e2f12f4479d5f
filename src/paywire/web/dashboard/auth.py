"""The dashboard's side of operators: the session cookie's name and the error a page raises
without a live session. The operators, their sessions, roles and sign-in failures are stored by
`paywire.ops.operators`, which the pages, the CLI and the tests use directly."""

from __future__ import annotations

from paywire.errors import PaywireError

SESSION_COOKIE = "paywire_session"


class NotSignedIn(PaywireError):
    status = 401
    type = "authentication_error"
    code = "not_signed_in"
