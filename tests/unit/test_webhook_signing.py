"""Signing side of Standard Webhooks: our headers verify with the standardwebhooks and svix packages."""

from __future__ import annotations

import base64
import json
import time

import pytest
import standardwebhooks.webhooks as stdwh
import svix.webhooks as svixwh

from paywire.webhooks import generate_secret, sign
from paywire.webhooks.signing import secret_key_bytes, signature_headers

EVENT = {
    "id": "evt_1",
    "object": "event",
    "type": "customer.created",
    "created": 1764160000,
    "livemode": False,
    "object_type": "customer",
    "object_id": "cus_1",
    "data": {"object": {"id": "cus_1"}, "previous_attributes": {}},
}
BODY = json.dumps(EVENT).encode()


def test_generate_secret_format() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert generate_secret() != secret


def test_secret_key_bytes() -> None:
    key = bytes(range(32))
    encoded = base64.b64encode(key).decode()
    assert secret_key_bytes("whsec_" + encoded) == key
    assert secret_key_bytes(encoded) == key
    assert secret_key_bytes("whsec_" + encoded.rstrip("=")) == key  # unpadded, as standardwebhooks allows


@pytest.mark.parametrize("bad", ["", "whsec_", "whsec_***", "whsec_abc$def", "whsec_a"])
def test_secret_key_bytes_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError, match="webhook secret"):
        secret_key_bytes(bad)


def test_known_vector() -> None:
    # The Standard Webhooks / Svix reference test vector.
    sig = sign(
        ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_headers_shape() -> None:
    secret = generate_secret()
    headers = signature_headers([secret], "evt_1", 1764160000, BODY)
    assert headers == {
        "webhook-id": "evt_1",
        "webhook-timestamp": "1764160000",
        "webhook-signature": sign([secret], "evt_1", 1764160000, BODY),
    }


def test_sign_one_entry_per_secret() -> None:
    a, b = generate_secret(), generate_secret()
    sig = sign([a, b], "evt_1", 1, BODY)
    assert sig.split(" ") == [sign([a], "evt_1", 1, BODY), sign([b], "evt_1", 1, BODY)]
    assert sign(a, "evt_1", 1, BODY) == sign([a], "evt_1", 1, BODY)  # a lone str is one secret


def test_sign_requires_a_secret() -> None:
    with pytest.raises(ValueError):
        sign([], "evt_1", 1, BODY)


def _headers(secrets: list[str], msg_id: str = "evt_1") -> dict[str, str]:
    return signature_headers(secrets, msg_id, int(time.time()), BODY)


def test_standardwebhooks_verifies_one_secret() -> None:
    secret = generate_secret()
    assert stdwh.Webhook(secret).verify(BODY, _headers([secret])) == EVENT


def test_svix_verifies_one_secret() -> None:
    secret = generate_secret()
    svixwh.Webhook(secret).verify(BODY, _headers([secret]))  # raises on failure


def test_rotation_each_secret_alone_verifies() -> None:
    old, new = generate_secret(), generate_secret()
    headers = _headers([old, new])
    for secret in (old, new):
        assert stdwh.Webhook(secret).verify(BODY, headers) == EVENT
        svixwh.Webhook(secret).verify(BODY, headers)
        svixwh.Webhook(secret).verify(BODY, {"Webhook-" + k[8:].title(): v for k, v in headers.items()})


def test_libraries_reject_wrong_secret() -> None:
    headers = _headers([generate_secret()])
    other = generate_secret()
    with pytest.raises(stdwh.WebhookVerificationError):
        stdwh.Webhook(other).verify(BODY, headers)
    with pytest.raises(svixwh.WebhookVerificationError):
        svixwh.Webhook(other).verify(BODY, headers)


def test_libraries_reject_tampered_body() -> None:
    secret = generate_secret()
    headers = _headers([secret])
    tampered = BODY.replace(b"cus_1", b"cus_2")
    with pytest.raises(stdwh.WebhookVerificationError):
        stdwh.Webhook(secret).verify(tampered, headers)
    with pytest.raises(svixwh.WebhookVerificationError):
        svixwh.Webhook(secret).verify(tampered, headers)
