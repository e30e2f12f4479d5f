"""Receiver side of Standard Webhooks: `paywire.webhooks.verify` and the framework helpers."""

from __future__ import annotations

import base64
import json
import string
from datetime import UTC, datetime
from typing import Any

import pytest
import standardwebhooks.webhooks as stdwh
from hypothesis import given, settings
from hypothesis import strategies as st

from paywire.events.event import Event
from paywire.webhooks import WebhookVerificationError, generate_secret, verify
from paywire.webhooks.signing import signature_headers

NOW = 1764160000
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
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


def signed(body: bytes = BODY, ts: int = NOW, msg_id: str = "evt_1", secrets: Any = (SECRET,)) -> dict[str, str]:
    return signature_headers(list(secrets), msg_id, ts, body)


def rejects(body: Any, headers: Any, secret: Any = SECRET, match: str | None = None, **kw: Any) -> None:
    with pytest.raises(WebhookVerificationError, match=match):
        verify(body, headers, secret, now=kw.pop("now", NOW), **kw)


# ---------------------------------------------------------------- acceptance


def test_verify_returns_event() -> None:
    event = verify(BODY, signed(), SECRET, now=NOW)
    assert isinstance(event, Event)
    assert (event.id, event.type, event.object_id, event.data.object) == (
        "evt_1",
        "customer.created",
        "cus_1",
        {"id": "cus_1"},
    )


def test_verify_accepts_str_body_and_any_header_case() -> None:
    headers = {k.upper(): v for k, v in signed().items()}
    assert verify(BODY.decode(), headers, SECRET, now=NOW).id == "evt_1"


def test_verify_accepts_svix_headers() -> None:
    headers = {k.replace("webhook-", "svix-"): v for k, v in signed().items()}
    assert verify(BODY, headers, SECRET, now=NOW).id == "evt_1"


def test_verify_accepts_standardwebhooks_signature() -> None:
    wh = stdwh.Webhook(SECRET)
    sig = wh.sign("msg_1", datetime.fromtimestamp(NOW, tz=UTC), BODY.decode())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(NOW), "webhook-signature": sig}
    assert verify(BODY, headers, SECRET, now=NOW).id == "evt_1"


def test_rotation_any_secret_matches() -> None:
    old, new = generate_secret(), generate_secret()
    headers = signed(secrets=[old, new])
    for secret in (old, new, [old], [new], [generate_secret(), new]):
        assert verify(BODY, headers, secret, now=NOW).id == "evt_1"
    only_new = signed(secrets=[new])
    assert verify(BODY, only_new, [old, new], now=NOW).id == "evt_1"


def test_ignores_other_versions_and_bad_entries() -> None:
    good = signed()["webhook-signature"]
    headers = signed() | {"webhook-signature": f"v2,abcd v1,!!! garbage v1a,xx {good}"}
    assert verify(BODY, headers, SECRET, now=NOW).id == "evt_1"


def test_tolerance_edges() -> None:
    assert verify(BODY, signed(ts=NOW - 300), SECRET, now=NOW).id == "evt_1"
    assert verify(BODY, signed(ts=NOW + 300), SECRET, now=NOW).id == "evt_1"
    assert verify(BODY, signed(ts=NOW - 900), SECRET, now=NOW, tolerance=1000).id == "evt_1"


# ---------------------------------------------------------------- rejections


def test_rejects_tampering() -> None:
    headers = signed()
    rejects(BODY.replace(b"cus_1", b"cus_2"), headers, match="no matching signature")
    rejects(BODY + b" ", headers, match="no matching signature")
    rejects(BODY, headers | {"webhook-id": "evt_2"}, match="no matching signature")
    rejects(BODY, headers | {"webhook-timestamp": str(NOW + 1)}, match="no matching signature")
    sig = bytearray(base64.b64decode(headers["webhook-signature"][3:]))
    sig[0] ^= 1
    rejects(BODY, headers | {"webhook-signature": "v1," + base64.b64encode(sig).decode()})
    rejects(BODY, headers | {"webhook-signature": headers["webhook-signature"].replace("v1,", "v2,")})


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_rejects_missing_header(name: str) -> None:
    headers = signed()
    del headers[name]
    rejects(BODY, headers, match=name)
    rejects(BODY, headers | {name: ""}, match=name)


def test_rejects_old_and_future_timestamps() -> None:
    rejects(BODY, signed(ts=NOW - 301), match="too old")
    rejects(BODY, signed(ts=NOW - 86400), match="too old")
    rejects(BODY, signed(ts=NOW + 301), match="future")


def test_rejects_wrong_secret() -> None:
    rejects(BODY, signed(), generate_secret(), match="no matching signature")
    rejects(BODY, signed(), [generate_secret(), generate_secret()], match="no matching signature")


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_!!", [], [""], [None], None, 42, b"whsec_x"])
def test_rejects_bad_secret_config(secret: Any) -> None:
    rejects(BODY, signed(), secret)


@pytest.mark.parametrize(
    "field,value",
    [
        ("webhook-timestamp", "abc"),
        ("webhook-timestamp", "1764160000.5"),
        ("webhook-timestamp", "-1764160000"),
        ("webhook-timestamp", "1e9"),
        ("webhook-timestamp", "9" * 5000),
        ("webhook-timestamp", "١٢٣"),
        ("webhook-signature", "v1"),
        ("webhook-signature", "v1,"),
        ("webhook-signature", "v1,not base64!"),
        ("webhook-signature", ","),
        ("webhook-signature", "   "),
        ("webhook-signature", "v1," + "A" * 10000),
        ("webhook-id", 123),
        ("webhook-id", ["evt_1"]),
        ("webhook-signature", object()),
        ("webhook-id", "evt_\ud800"),
    ],
)
def test_rejects_garbage_header_values(field: str, value: Any) -> None:
    rejects(BODY, signed() | {field: value})


@pytest.mark.parametrize("headers", [None, 42, "webhook-id: x", [("webhook-id", "x")], object()])
def test_rejects_non_mapping_headers(headers: Any) -> None:
    rejects(BODY, headers)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b"\xff\xfe\x00",
        b"[]",
        b'"evt"',
        b"null",
        b'{"id": "evt_1"}',
        b'{"object": "customer", "id": "x"}',
        json.dumps(EVENT | {"created": 1e400}).encode(),
        b'{"created": Infinity}',
        b"[" * 100000,
    ],
)
def test_rejects_validly_signed_non_event_body(body: bytes) -> None:
    rejects(body, signed(body=body))


@pytest.mark.parametrize("body", [None, 42, ["x"], object(), "caf\udce9"])
def test_rejects_weird_body_types(body: Any) -> None:
    rejects(body, signed())


# ---------------------------------------------------------------- fuzzing

ids = st.text(alphabet=string.ascii_letters + string.digits + "_-.:", min_size=1, max_size=40)
timestamps = st.integers(min_value=0, max_value=2**33)
secrets = st.binary(min_size=1, max_size=64).map(lambda k: "whsec_" + base64.b64encode(k).decode())
junk_text = st.text(max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    note=junk_text,
    extra=st.binary(max_size=64),
    msg_id=ids,
    ts=timestamps,
    secret=secrets,
    target=st.sampled_from(["body", "id", "timestamp", "signature"]),
    data=st.data(),
)
def test_fuzz_any_single_mutation_is_rejected(
    note: str, extra: bytes, msg_id: str, ts: int, secret: str, target: str, data: st.DataObject
) -> None:
    body = json.dumps(EVENT | {"metadata": {"note": note, "extra": extra.hex()}}).encode()
    headers = signature_headers([secret], msg_id, ts, body)
    assert verify(body, headers, secret, now=ts).id == "evt_1"

    if target == "body":
        i = data.draw(st.integers(0, len(body) - 1))
        body = body[:i] + bytes([body[i] ^ data.draw(st.integers(1, 255))]) + body[i + 1 :]
    elif target == "id":
        headers["webhook-id"] = data.draw(ids.filter(lambda v: v != msg_id))
    elif target == "timestamp":
        headers["webhook-timestamp"] = str(data.draw(timestamps.filter(lambda v: v != ts)))
    else:
        raw = bytearray(base64.b64decode(headers["webhook-signature"][3:]))
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
        headers["webhook-signature"] = "v1," + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(WebhookVerificationError):
        verify(body, headers, secret, now=ts)


header_names = st.sampled_from(
    ["webhook-id", "Webhook-Timestamp", "WEBHOOK-SIGNATURE", "svix-id", "svix-timestamp", "svix-signature"]
)
header_values = st.one_of(
    st.text(max_size=60),
    st.binary(max_size=60),
    st.integers(),
    st.none(),
    st.lists(st.text(max_size=5), max_size=2),
    st.builds(lambda s: "v1," + base64.b64encode(s).decode(), st.binary(min_size=32, max_size=32)),
    st.integers(min_value=NOW - 400, max_value=NOW + 400).map(str),
)
any_headers = st.one_of(
    st.dictionaries(
        st.one_of(header_names, st.text(max_size=20), st.binary(max_size=8), st.integers()),
        header_values,
        max_size=8,
    ),
    st.none(),
    st.integers(),
    st.text(max_size=20),
    st.lists(st.tuples(header_names, st.text(max_size=10)), max_size=3),
)
any_bodies = st.one_of(st.binary(max_size=200), st.text(max_size=200), st.none(), st.integers())
any_secrets = st.one_of(
    secrets,
    st.text(max_size=30),
    st.lists(st.one_of(secrets, st.text(max_size=10)), max_size=3),
    st.none(),
    st.binary(max_size=10),
)


@settings(max_examples=200, deadline=None)
@given(body=any_bodies, headers=any_headers, secret=any_secrets, now=st.floats(allow_nan=True))
def test_fuzz_garbage_only_raises_verification_error(body: Any, headers: Any, secret: Any, now: float) -> None:
    with pytest.raises(WebhookVerificationError):
        verify(body, headers, secret, now=now)


# ---------------------------------------------------------------- FastAPI


def live_headers(body: bytes = BODY, secret: str = SECRET) -> dict[str, str]:
    import time

    return signature_headers([secret], "evt_1", int(time.time()), body)


@pytest.mark.filterwarnings("ignore:Using `httpx` with")
def test_fastapi_dependency() -> None:
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    from paywire.webhooks.fastapi import webhook_event

    app = FastAPI()

    @app.post("/hook")
    async def hook(event: Event = Depends(webhook_event(SECRET))) -> dict[str, str]:
        return {"id": event.id, "type": event.type}

    @app.post("/lazy")
    async def lazy(event: Event = Depends(webhook_event(lambda: [generate_secret(), SECRET]))) -> str:
        return event.id

    client = TestClient(app)
    ok = client.post("/hook", content=BODY, headers=live_headers())
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"id": "evt_1", "type": "customer.created"}
    assert client.post("/lazy", content=BODY, headers=live_headers()).json() == "evt_1"

    unsigned = client.post("/hook", content=BODY)
    assert unsigned.status_code == 400
    assert "webhook-id" in unsigned.json()["detail"]
    tampered = client.post("/hook", content=BODY.replace(b"cus_1", b"cus_9"), headers=live_headers())
    assert tampered.status_code == 400
    assert tampered.json()["detail"] == "no matching signature found"


def test_fastapi_rejects_malformed_fixed_secret_at_startup() -> None:
    from paywire.webhooks.fastapi import webhook_event

    with pytest.raises(ValueError):
        webhook_event("whsec_***")


# ---------------------------------------------------------------- Flask


def test_flask_decorator() -> None:
    from flask import Flask

    from paywire.webhooks.flask import verify_webhook

    app = Flask(__name__)
    seen: list[Event] = []

    @app.post("/hook/<name>")
    @verify_webhook(SECRET)
    def hook(name: str, event: Event) -> dict[str, str]:
        seen.append(event)
        return {"id": event.id, "name": name}

    @app.post("/async")
    @verify_webhook(SECRET)
    async def async_hook(event: Event) -> str:
        return event.type

    client = app.test_client()
    ok = client.post("/hook/x", data=BODY, headers=live_headers(), content_type="application/json")
    assert ok.status_code == 200, ok.data
    assert ok.get_json() == {"id": "evt_1", "name": "x"}
    assert seen[0].object_id == "cus_1"
    assert client.post("/async", data=BODY, headers=live_headers()).data == b"customer.created"

    unsigned = client.post("/hook/x", data=BODY, content_type="application/json")
    assert unsigned.status_code == 400
    assert "webhook-id" in unsigned.get_json()["error"]
    tampered = client.post("/hook/x", data=BODY + b"\n", headers=live_headers(), content_type="application/json")
    assert tampered.status_code == 400
    assert len(seen) == 1


# ---------------------------------------------------------------- Django


@pytest.fixture(scope="module")
def django_ready() -> None:
    import django  # type: ignore[import-untyped]
    from django.conf import settings as dj_settings  # type: ignore[import-untyped]

    if not dj_settings.configured:
        dj_settings.configure(DEBUG=False, SECRET_KEY="test", ALLOWED_HOSTS=["*"], USE_TZ=True)
        django.setup()


def _django_post(body: bytes, headers: dict[str, str]) -> Any:
    from django.test import RequestFactory  # type: ignore[import-untyped]

    return RequestFactory().post("/hook", data=body, content_type="application/json", headers=headers)


def test_django_decorator(django_ready: None) -> None:
    from django.http import HttpRequest, JsonResponse  # type: ignore[import-untyped]

    from paywire.webhooks.django import verify_webhook

    @verify_webhook(SECRET)
    def hook(request: HttpRequest, event: Event) -> JsonResponse:
        return JsonResponse({"id": event.id, "type": event.type})

    assert getattr(hook, "csrf_exempt", False) is True
    ok = hook(_django_post(BODY, live_headers()))
    assert ok.status_code == 200
    assert json.loads(ok.content) == {"id": "evt_1", "type": "customer.created"}

    unsigned = hook(_django_post(BODY, {}))
    assert unsigned.status_code == 400
    assert "webhook-id" in json.loads(unsigned.content)["error"]
    tampered = hook(_django_post(BODY.replace(b"evt_1", b"evt_2"), live_headers()))
    assert tampered.status_code == 400


async def test_django_async_view(django_ready: None) -> None:
    from django.http import HttpRequest, HttpResponse  # type: ignore[import-untyped]

    from paywire.webhooks.django import verify_webhook

    @verify_webhook(lambda: SECRET)
    async def hook(request: HttpRequest, event: Event) -> HttpResponse:
        return HttpResponse(event.id)

    assert (await hook(_django_post(BODY, live_headers()))).content == b"evt_1"
    assert (await hook(_django_post(BODY, {"webhook-id": "x"}))).status_code == 400
