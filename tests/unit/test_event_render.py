"""The dispatcher's body renderer writes the event's JSON itself: it must equal `render`."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from paywire.events.log import API_VERSION, render, render_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


def _row(data: dict[str, Any], metadata: dict[str, Any], request_id: str | None, **fields: Any) -> dict[str, Any]:
    return {
        "id": "evt_1",
        "type": "customer.created",
        "api_version": API_VERSION,
        "livemode": False,
        "created": 1_790_000_000,
        "object_type": "customer",
        "object_id": "cus_1",
        "data": data,
        "request_id": request_id,
        "idempotency_key": None,
        "pending_webhooks": 2,
        "metadata": metadata,
        **fields,
    }


def _stored(row: dict[str, Any], **json_text: str) -> dict[str, Any]:
    """The row as `select_events_json` reads it: `data` and `metadata` only as JSON text."""
    return {**{k: v for k, v in row.items() if k not in ("data", "metadata")}, **json_text}


@given(
    data=st.dictionaries(st.text(), json_values, max_size=4),
    metadata=st.dictionaries(st.text(), st.text(), max_size=3),
    request_id=st.none() | st.text(),
    idempotency_key=st.none() | st.text(),
    object_id=st.text(),
    livemode=st.booleans(),
    created=st.integers(min_value=0, max_value=4_000_000_000),
    pending=st.integers(min_value=0, max_value=1000),
)
def test_render_json_equals_render(
    data: dict[str, Any],
    metadata: dict[str, Any],
    request_id: str | None,
    idempotency_key: str | None,
    object_id: str,
    livemode: bool,
    created: int,
    pending: int,
) -> None:
    row = _row(
        data,
        metadata,
        request_id,
        idempotency_key=idempotency_key,
        object_id=object_id,
        livemode=livemode,
        created=created,
        pending_webhooks=pending,
    )
    stored = _stored(row, data_json=json.dumps(data), metadata_json=json.dumps(metadata))
    rendered = json.loads(render_json(stored))
    assert rendered == render(row)
    assert list(rendered) == list(render(row))  # the same field order too


def test_render_json_with_splice_lookalikes() -> None:
    """Strings that look like the splice points, inside the data and the request."""
    tricky = '"data":null,"request":{"metadata":null}'
    row = _row({"object": {"id": tricky}}, {"note": tricky}, tricky)
    stored = _stored(row, data_json=json.dumps(row["data"]), metadata_json="{}")
    assert json.loads(render_json(stored)) == render({**row, "metadata": {}})
