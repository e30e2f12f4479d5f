"""`paywire trigger`: every scenario against a real server (SQLite and PostgreSQL), and the command.

The scenarios run in-process through the sync SDK (in a thread: the server shares this event
loop); the command itself runs as a subprocess, as a user runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import httpx
import pytest
from typer.testing import CliRunner

from paywire.cli.main import app
from paywire.cli.trigger import NOT_TRIGGERABLE, SCENARIOS, run_scenario
from paywire.events.catalogue import EVENT_TYPES, PAYMENT_KIT_EVENT_TYPES
from paywire.schemas import EventObject
from paywire.sdk import Paywire
from tests.conftest import Server

PAYWIRE = [sys.executable, "-m", "paywire.cli.main"]
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_every_catalogue_type_has_a_scenario_or_a_reason() -> None:
    assert set(SCENARIOS) | set(NOT_TRIGGERABLE) == set(EVENT_TYPES)
    assert not set(SCENARIOS) & set(NOT_TRIGGERABLE)
    assert set(PAYMENT_KIT_EVENT_TYPES) <= set(SCENARIOS)  # Payment Kit's 17 all trigger


def _run_all(server: Server) -> dict[str, list[EventObject]]:
    with Paywire(api_key=server.test_key, base_url=server.url) as payment:
        return {event_type: run_scenario(payment, event_type) for event_type in SCENARIOS}


def _payment_kit(events: list[EventObject]) -> list[str]:
    return [e.type for e in events if e.type in PAYMENT_KIT_EVENT_TYPES]


async def test_every_scenario_causes_its_event_through_the_engine(server: Server, api: httpx.AsyncClient) -> None:
    results = await asyncio.to_thread(_run_all, server)
    for event_type, events in results.items():
        assert event_type in [e.type for e in events], event_type
    for events in results.values():  # nothing fabricated: the server has every one, unchanged
        for event in events[:2]:
            stored = (await api.get(f"/api/events/{event.id}")).json()
            assert stored["type"] == event.type and stored["object_id"] == event.object_id
    # The contract's orders (DESIGN.md §3), among Payment Kit's types.
    assert _payment_kit(results["customer.subscription.renewed"])[-4:] == [
        "payment_intent.succeeded",
        "invoice.paid",
        "customer.subscription.renewed",
        "customer.subscription.updated",
    ]
    assert _payment_kit(results["customer.subscription.trial_will_end"]) == [
        "customer.subscription.created",
        "customer.subscription.trial_start",
        "customer.subscription.trial_will_end",
    ]
    assert _payment_kit(results["customer.subscription.deleted"])[-2:] == [
        "customer.subscription.updated",
        "customer.subscription.deleted",
    ]
    assert _payment_kit(results["invoice.marked_uncollectible"])[-3:] == [
        "payment_intent.payment_failed",
        "payment_intent.payment_failed",
        "customer.subscription.deleted",
    ]
    assert _payment_kit(results["checkout.session.nft_minted"]) == [
        "payment_intent.succeeded",
        "checkout.session.completed",
        "checkout.session.nft_minted",
    ]
    assert [e.type for e in results["webhook_endpoint.disabled"]] == ["customer.created", "webhook_endpoint.disabled"]
    disabled = results["webhook_endpoint.disabled"][1].data.object
    assert disabled["status"] == "disabled" and disabled["url"].startswith("http://127.0.0.1:")
    # The 410 endpoint is gone again: it would only get in the way.
    assert (await api.get("/api/webhook-endpoints")).json()["count"] == 0


async def _cli(server: Server, *args: str, key: str | None = None) -> tuple[int, str, str]:
    env = {**os.environ, "PAYWIRE_URL": server.url, "PAYWIRE_API_KEY": key or server.test_key, "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        *PAYWIRE, "trigger", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, stdout.decode(), stderr.decode()


@SQLITE_ONLY
async def test_trigger_command_prints_the_events_as_a_table_or_json(server: Server, api: httpx.AsyncClient) -> None:
    code, stdout, stderr = await _cli(server, "customer.subscription.trial_will_end")
    assert code == 0, stderr
    assert "customer.subscription.trial_will_end" in stdout and "evt_" in stdout and "sub_" in stdout
    listed = (await api.get("/api/events", params={"type": "customer.subscription.trial_will_end"})).json()
    assert listed["count"] == 1 and listed["list"][0]["id"] in stdout

    code, stdout, stderr = await _cli(server, "refund.succeeded", "--json")
    assert code == 0, stderr
    events = json.loads(stdout)
    assert [e["type"] for e in events][-1] == "refund.succeeded"
    assert all(e["object"] == "event" and e["id"].startswith("evt_") for e in events)


def test_trigger_command_errors_need_no_server() -> None:
    runner = CliRunner()
    env = {"PAYWIRE_URL": "http://127.0.0.1:9", "PAYWIRE_API_KEY": "sk_test_unused", "COLUMNS": "200"}
    result = runner.invoke(app, ["trigger", "customer.subscription.nope"], env=env)
    assert result.exit_code == 2 and "unknown event type" in result.stderr and "paywire trigger --list" in result.stderr
    result = runner.invoke(app, ["trigger", "checkout.session.nft_mint_failed"], env=env)
    assert result.exit_code == 1 and "cannot be triggered" in result.stderr
    result = runner.invoke(app, ["trigger", "customer.created"], env={**env, "PAYWIRE_API_KEY": "sk_live_x"})
    assert result.exit_code == 2 and "test key" in result.stderr
    result = runner.invoke(app, ["trigger", "--list"], env=env)
    assert result.exit_code == 0 and all(name in result.stdout for name in EVENT_TYPES)
