"""Pagination bounds, the error body and the validation-error messages, without a server."""

from __future__ import annotations

import pytest

from paywire.api.errors import _describe
from paywire.errors import AuthenticationFailed, IdempotencyConflict, InvalidRequest, NotFound
from paywire.events.event import Event
from paywire.pagination import MAX_SIZE, Page


def test_page_defaults_and_bounds() -> None:
    assert Page() == Page(1, 20)
    assert Page(3, MAX_SIZE).size == 100
    for bad in [(0, 20), (1, 0), (1, MAX_SIZE + 1)]:
        with pytest.raises(InvalidRequest):
            Page(*bad)


def test_error_bodies_follow_the_contract() -> None:
    body = InvalidRequest("url must start with http:// or https://", param="url").body()
    assert body == {
        "error": {
            "type": "invalid_request_error",
            "code": "invalid_request",
            "message": "url must start with http:// or https://",
            "param": "url",
        }
    }
    assert AuthenticationFailed("x").status == 401
    assert NotFound("x").status == 404
    assert IdempotencyConflict("x").status == 409


@pytest.mark.parametrize(
    ("error", "message", "param"),
    [
        ({"type": "missing", "loc": ("body", "url")}, "missing required field url", "url"),
        ({"type": "extra_forbidden", "loc": ("body", "colour")}, "unknown field colour", "colour"),
        ({"type": "json_invalid", "loc": ("body", 1)}, "request body is not valid JSON", None),
        (
            {"type": "string_type", "loc": ("body", "metadata", "plan"), "msg": "Input should be a valid string"},
            "metadata.plan: Input should be a valid string",
            "metadata.plan",
        ),
    ],
)
def test_validation_errors_name_the_field(error: dict[str, object], message: str, param: str | None) -> None:
    assert _describe(error) == (message, param)


def test_event_from_dict_rejects_what_is_not_an_event() -> None:
    with pytest.raises(ValueError):
        Event.from_dict({"id": "evt_1"})
    event = Event.from_dict(
        {
            "id": "evt_1",
            "type": "invoice.paid",
            "created": 1,
            "livemode": False,
            "object_type": "invoice",
            "object_id": "in_1",
            "data": {"object": {"id": "in_1"}},
        }
    )
    assert event.data.object == {"id": "in_1"} and event.data.previous_attributes == {}
