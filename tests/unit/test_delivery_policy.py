"""Retry schedule, jitter, Retry-After and the network policy, without a network."""

from __future__ import annotations

import random
import socket
from email.utils import formatdate

import pytest

from paywire.app import delivery_config
from paywire.settings import load
from paywire.webhooks import netpolicy
from paywire.webhooks.retry import RETRY_SCHEDULE, next_retry, parse_retry_after


def test_schedule_is_the_contract() -> None:
    assert RETRY_SCHEDULE == (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)


@pytest.mark.parametrize("attempts", range(1, 10))
def test_retry_delay_is_the_schedule_within_20_percent(attempts: int) -> None:
    rng = random.Random(attempts)
    delays = [next_retry(attempts, 1000.0, rng=rng) for _ in range(200)]
    step = RETRY_SCHEDULE[attempts - 1]
    assert all(d is not None and 0.8 * step <= d - 1000.0 <= 1.2 * step for d in delays)
    assert len({round(d or 0, 6) for d in delays}) > 100  # actually jittered


def test_after_the_last_step_the_delivery_has_failed_for_good() -> None:
    assert next_retry(10, 0.0) is None
    assert next_retry(3, 0.0, schedule=(1, 1)) is None


def test_retry_after_is_a_floor_not_a_shortcut() -> None:
    assert next_retry(1, 0.0, retry_after=120, jitter=0) == 120
    assert next_retry(1, 0.0, retry_after=1, jitter=0) == 5
    assert next_retry(1, 0.0, retry_after=10**9, jitter=0) == 86400


def test_parse_retry_after() -> None:
    assert parse_retry_after("30", 0) == 30
    assert parse_retry_after(None, 0) is None
    assert parse_retry_after("soon", 0) is None
    now = 1_800_000_000.0
    assert parse_retry_after(formatdate(now + 60, usegmt=True), now) == pytest.approx(60)
    assert parse_retry_after(formatdate(now - 60, usegmt=True), now) == 0


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "fc00::1",
        "0.0.0.0",
        "::ffff:10.0.0.1",
        "100.64.0.1",
        "224.0.0.1",
        "not-an-ip",
    ],
)
def test_non_public_addresses_are_blocked(address: str) -> None:
    assert netpolicy.is_blocked(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700:4700::1111", "8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert not netpolicy.is_blocked(address)


def test_guarded_socket_refuses_before_connecting() -> None:
    info = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80))
    with pytest.raises(netpolicy.BlockedAddress, match="blocked by network policy"):
        netpolicy.guarded_socket(info)
    sock = netpolicy.guarded_socket((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", 80)))
    sock.close()


def test_operator_may_allow_private_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(netpolicy.ALLOW_ENV, raising=False)
    assert not load().allow_private_networks
    monkeypatch.setenv(netpolicy.ALLOW_ENV, "1")
    assert load().allow_private_networks
    assert delivery_config(load()).allow_private_networks
