"""SDK pieces without a server: retry policy, error mapping, configuration, models, drift guards."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from typing import Any, get_type_hints

import httpx
import pytest
from pydantic import BaseModel

from paywire import schemas
from paywire.billing import schemas as billing_schemas
from paywire.sdk import (
    AsyncPaywire,
    AuthenticationError,
    CardError,
    ConflictError,
    IdempotencyError,
    InvalidRequestError,
    NotFoundError,
    Paywire,
    PaywireAPIError,
    PaywireObject,
    RateLimitError,
    RetryPolicy,
    ServerError,
    async_resources,
    models,
    params,
    resources,
)
from paywire.sdk._sse import SSEDecoder
from paywire.sdk.arguments import segment
from paywire.sdk.errors import error_from_response


def _response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("POST", "http://paywire.test/api/customers")
    return httpx.Response(status, json=body, headers=headers, request=request)


def _error_body(type: str = "invalid_request_error", code: str = "x") -> dict[str, Any]:
    return {"error": {"type": type, "code": code, "message": "nope", "param": "name"}}


# --- retry policy ---------------------------------------------------------------------------


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=4.0)
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        delays = [policy.backoff(retry) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered


def test_a_policy_that_never_gives_up_keeps_its_ceiling() -> None:
    """The EventBus's remote source retries for ever: retry 5,000 must not overflow the float."""
    policy = RetryPolicy(max_retries=10**9, initial_delay=0.5, max_delay=30.0)
    assert 15.0 <= policy.backoff(5_000) <= 30.0
    assert policy.delay(5_000, httpx.ConnectError("refused")) is not None


def test_server_sent_events_are_decoded_across_chunk_boundaries() -> None:
    decoder = SSEDecoder()
    stream = b': heartbeat\n\nevent: ready\ndata: {}\n\nid: evt_1\ndata: {"a":\ndata: 1}\r\n\r\ndata: x'
    messages = [message for i in range(0, len(stream), 7) for message in decoder.feed(stream[i : i + 7])]
    assert messages == [("ready", b"{}"), ("message", b'{"a":\n1}')]
    assert decoder.feed(b"\n\n") == [("message", b"x")]  # the last one completes when its blank line comes


@pytest.mark.parametrize(
    ("outcome", "retried"),
    [
        (_response(429), True),
        (_response(500), True),
        (_response(503), True),
        (_response(400), False),
        (_response(401), False),
        (_response(404), False),
        (_response(409, _error_body("idempotency_error", "idempotency_key_reused")), False),
        (_response(409, _error_body("idempotency_error", "idempotency_key_in_use")), True),
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("slow"), True),
        (httpx.UnsupportedProtocol("ftp"), False),
    ],
)
def test_what_is_retried(outcome: httpx.Response | Exception, retried: bool) -> None:
    assert (RetryPolicy().delay(1, outcome) is not None) is retried


def test_retry_after_is_honoured_capped_and_counted() -> None:
    policy = RetryPolicy(max_retries=2, max_retry_after=10)
    assert policy.delay(1, _response(503, headers={"Retry-After": "3"})) == 3
    assert policy.delay(1, _response(429, headers={"Retry-After": "3600"})) == 10
    assert 0 < (policy.delay(1, _response(429, headers={"Retry-After": "soon"})) or 0) <= 0.5
    assert policy.delay(3, _response(503, headers={"Retry-After": "0"})) is None  # out of retries
    assert RetryPolicy(max_retries=0).delay(1, _response(503)) is None


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "cls"),
    [
        (400, "invalid_request_error", InvalidRequestError),
        (422, "invalid_request_error", InvalidRequestError),
        (401, "authentication_error", AuthenticationError),
        (402, "card_error", CardError),
        (404, "invalid_request_error", NotFoundError),
        (409, "invalid_request_error", ConflictError),
        (409, "idempotency_error", IdempotencyError),
        (429, "rate_limit_error", RateLimitError),
        (503, "api_error", ServerError),
    ],
)
def test_errors_map_to_types_and_keep_the_body(status: int, error_type: str, cls: type[PaywireAPIError]) -> None:
    body = _error_body(error_type, "some_code")
    error = error_from_response(_response(status, body, headers={"request-id": "req_1"}))
    assert type(error) is cls
    assert (error.status, error.type, error.code, error.param) == (status, error_type, "some_code", "name")
    assert error.body == body and error.request_id == "req_1"
    assert str(error) == f"{status} some_code: nope (param: name) [request req_1]"


def test_a_non_json_error_still_raises_typed() -> None:
    request = httpx.Request("GET", "http://paywire.test/api/customers")
    error = error_from_response(httpx.Response(502, text="<html>Bad gateway</html>", request=request))
    assert isinstance(error, ServerError) and error.body == "<html>Bad gateway</html>" and error.code is None


# --- configuration --------------------------------------------------------------------------


def test_no_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAYWIRE_API_KEY", raising=False)
    for client in (Paywire, AsyncPaywire):
        with pytest.raises(ValueError, match="PAYWIRE_API_KEY"):
            client()


def test_env_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYWIRE_API_KEY", "sk_test_env")
    monkeypatch.delenv("PAYWIRE_URL", raising=False)
    with Paywire(max_retries=5) as payment:
        assert payment.base_url == "http://127.0.0.1:8800"
        assert payment.retry_policy.max_retries == 5
        assert payment._http.headers["authorization"] == "Bearer sk_test_env"
    monkeypatch.setenv("PAYWIRE_URL", "http://paywire.internal:9000/")
    with Paywire("sk_test_arg") as payment:
        assert payment.base_url == "http://paywire.internal:9000"
        assert payment._http.headers["authorization"] == "Bearer sk_test_arg"


BILLING_OBJECT = {  # enough fields for the Subscription and TestClock models
    **dict(id="sub_1", object="subscription", livemode=False, metadata={}, created=1, created_at="x"),
    **dict(customer_id="cus_1", status="canceled", items=[], current_period_start=1, current_period_end=2),
    **dict(billing_cycle_anchor=1, trial_start=None, trial_end=None, cancel_at_period_end=False),
    **dict(canceled_at=None, ended_at=None, frozen_time=42, name=None),
}


def test_requests_carry_the_right_method_path_body_and_key() -> None:
    """The transport seam (httpx.MockTransport) shows exactly what goes on the wire."""
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=BILLING_OBJECT)

    with Paywire("sk_test_x", "http://paywire.test", transport=httpx.MockTransport(answer)) as payment:
        result = payment.subscriptions.cancel("sub_1", at_period_end=True)
        payment.subscriptions.update("sub_1", metadata={"a": "b"})
        payment.test_clocks.advance("clock_1", frozen_time=42, idempotency_key="k1")
    assert isinstance(result, PaywireObject) and result.status == "canceled" and result["id"] == "sub_1"
    assert isinstance(result, billing_schemas.Subscription)
    assert [(r.method, r.url.path) for r in sent] == [
        ("POST", "/api/subscriptions/sub_1/cancel"),
        ("PUT", "/api/subscriptions/sub_1"),
        ("POST", "/api/test-clocks/clock_1/advance"),
    ]
    assert sent[0].content == b'{"at_period_end":true}' and "idempotency-key" in sent[0].headers
    assert "idempotency-key" not in sent[1].headers and sent[2].headers["idempotency-key"] == "k1"


def test_ids_are_checked_and_quoted() -> None:
    assert segment("cus_1") == "/cus_1"
    assert segment("a/b") == "/a%2Fb"
    with pytest.raises(ValueError):
        segment("")


# --- models and drift guards -----------------------------------------------------------------


def test_billing_models_come_from_the_server_schemas() -> None:
    for key, model in models.MODELS.items():
        server_model = getattr(billing_schemas, model.__name__)
        assert issubclass(model, server_model) and issubclass(model, PaywireObject), key
        assert server_model.model_config.get("extra") == "allow", key  # later server fields parse
    later = models.Subscription.model_validate({**BILLING_OBJECT, "added_later": {"x": 1}})
    assert isinstance(later, billing_schemas.Subscription) and later.added_later == {"x": 1}
    assert later["status"] == "canceled" and later.to_dict()["added_later"] == {"x": 1}
    untyped = PaywireObject.model_validate({"id": "x_1", "nested": {"a": 1}})
    assert untyped.nested == {"a": 1} and untyped.to_dict() == {"id": "x_1", "nested": {"a": 1}}
    with pytest.raises(KeyError):
        untyped["missing"]


@pytest.mark.parametrize(
    ("typed", "model"),
    [
        (params.CustomerCreateParams, schemas.CustomerCreate),
        (params.CustomerUpdateParams, schemas.CustomerUpdate),
        (params.ProductUpdateParams, schemas.ProductUpdate),
        (params.PriceUpdateParams, schemas.PriceUpdate),
        (params.WebhookEndpointUpdateParams, schemas.WebhookEndpointUpdate),
        (params.EventDestinationUpdateParams, schemas.EventDestinationUpdate),
        (params.RecurringParams, schemas.Recurring),
        (resources.Products.create, schemas.ProductCreate),
        (resources.Prices.create, schemas.PriceCreate),
        (resources.WebhookEndpoints.create, schemas.WebhookEndpointCreate),
    ],
)
def test_call_arguments_match_the_request_models(typed: Any, model: type[BaseModel]) -> None:
    if inspect.isfunction(typed):
        names = set(inspect.signature(typed).parameters) - {"self", "idempotency_key"}
    else:
        names = set(get_type_hints(typed))
    assert names == set(model.model_fields)


def test_async_resources_match_the_sync_ones() -> None:
    for name, sync_class in vars(resources).items():
        if not (inspect.isclass(sync_class) and sync_class.__module__ == resources.__name__):
            continue
        async_class = getattr(async_resources, f"Async{name}" if not name.startswith("_") else f"_Async{name[1:]}")
        for method, function in vars(sync_class).items():
            if inspect.isfunction(function) and not method.startswith("__subclass"):
                twin = getattr(async_class, method)
                assert inspect.signature(twin).parameters.keys() == inspect.signature(function).parameters.keys()
                assert inspect.iscoroutinefunction(twin) is (method != "__init__"), (name, method)


def test_the_sync_resources_are_generated_from_the_async_ones() -> None:
    """`resources.py` is what `scripts/generate_sync_sdk.py` writes from `async_resources.py`."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "generate_sync_sdk.py"
    spec = importlib.util.spec_from_file_location("generate_sync_sdk", script)
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert generator.generate() == generator.TARGET.read_text(), "run scripts/generate_sync_sdk.py"
