"""Fills the gaps left by `tests/unit/test_webhook_verify.py`'s fuzzing.

That file flips one byte of the body or the signature in place. Here the body is cut, extended or
replaced with any other bytes, and the signature header is replaced with forged ones (random
MACs, MACs made with another key, the real MAC over other content). None of these may be
accepted, and nothing but `WebhookVerificationError` may be raised.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paywire.webhooks import WebhookVerificationError, verify
from paywire.webhooks.signing import signature_headers

NOW = 1_764_160_000
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
BODY = json.dumps(
    {
        "id": "evt_1",
        "object": "event",
        "type": "customer.created",
        "created": NOW,
        "livemode": False,
        "object_type": "customer",
        "object_id": "cus_1",
        "data": {"object": {"id": "cus_1"}, "previous_attributes": {}},
    }
).encode()
HEADERS = signature_headers([SECRET], "evt_1", NOW, BODY)


def _rejected(body: bytes, headers: dict[str, str]) -> None:
    with pytest.raises(WebhookVerificationError):
        verify(body, headers, SECRET, now=NOW)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    cut=st.integers(0, len(BODY) - 1),
    prefix=st.binary(max_size=16),
    suffix=st.binary(max_size=16),
    other=st.binary(max_size=300),
)
def test_a_cut_extended_or_replaced_body_is_rejected(cut: int, prefix: bytes, suffix: bytes, other: bytes) -> None:
    for body in (BODY[:cut], prefix + BODY + suffix, other):
        if body != BODY:
            _rejected(body, HEADERS)


def _sig(mac: bytes) -> str:
    return "v1," + base64.b64encode(mac).decode()


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    mac=st.binary(min_size=0, max_size=64),
    key=st.binary(min_size=1, max_size=64),
    content=st.binary(max_size=64),
    count=st.integers(1, 5),
)
def test_forged_signatures_are_rejected(mac: bytes, key: bytes, content: bytes, count: int) -> None:
    real_key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"evt_1.{NOW}.".encode() + BODY
    forged = [
        _sig(mac),  # any bytes
        _sig(hmac.digest(key, signed, hashlib.sha256)),  # the right content, another key
        _sig(hmac.digest(real_key, content, hashlib.sha256)),  # the right key, other content
        _sig(hmac.digest(real_key, BODY, hashlib.sha256)),  # the body alone, no id or timestamp
    ]
    if key == real_key:
        forged.pop(1)
    for signature in forged:
        _rejected(BODY, HEADERS | {"webhook-signature": " ".join([signature] * count)})
        _rejected(BODY, HEADERS | {"webhook-signature": signature.replace("v1,", "v1a,")})
