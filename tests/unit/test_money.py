"""Money arithmetic: parsing, formatting, proration and refund limits."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paywire.billing.money import (
    CURRENCY_EXPONENTS,
    MAX_MAJOR_UNITS,
    check_refund,
    format_amount,
    parse_amount,
    prorate,
    proration_for_change,
    refundable,
    validate_currency,
)

FAST = settings(max_examples=300, deadline=None)
currencies = st.sampled_from(sorted(CURRENCY_EXPONENTS))


# --- currencies ------------------------------------------------------------------------------


def test_known_currencies() -> None:
    assert validate_currency("usd") == "usd"
    assert CURRENCY_EXPONENTS["usd"] == CURRENCY_EXPONENTS["eur"] == CURRENCY_EXPONENTS["cny"] == 2
    assert CURRENCY_EXPONENTS["jpy"] == CURRENCY_EXPONENTS["krw"] == 0


@pytest.mark.parametrize(
    ("code", "message"),
    [("USD", "lower-case"), ("xyz", "unknown currency 'xyz'"), ("", "unknown currency"), (5, "string")],
)
def test_bad_currency(code: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_currency(code)


# --- parse / format --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("19.99", "usd", 1999),
        ("20", "usd", 2000),
        ("0.5", "usd", 50),
        ("0", "usd", 0),
        ("0.05", "eur", 5),
        ("500", "jpy", 500),
        ("1.234", "kwd", 1234),
        (str(MAX_MAJOR_UNITS), "usd", MAX_MAJOR_UNITS * 100),
    ],
)
def test_parse_amount(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("-1", "usd", "must not be negative"),
        ("-0.01", "usd", "must not be negative"),
        ("19.999", "usd", "usd amounts allow at most 2 decimal places"),
        ("0.5", "jpy", "jpy amounts allow no decimal places"),
        ("500.0", "jpy", "no decimal places"),
        ("1e3", "usd", "exponent notation"),
        ("1.5E2", "usd", "exponent notation"),
        ("NaN", "usd", "finite"),
        ("inf", "usd", "finite"),
        ("-Infinity", "usd", "negative"),
        ("", "usd", "must not be empty"),
        (" 5", "usd", "decimal string"),
        ("1.", "usd", "decimal string"),
        (".5", "usd", "decimal string"),
        ("+5", "usd", "decimal string"),
        ("1,000", "usd", "decimal string"),
        ("1_000", "usd", "decimal string"),
        ("\u0661\u0662", "usd", "decimal string"),  # Arabic-Indic digits
        ("1000000000000.01", "usd", "at most 1000000000000 usd"),
        ("1" + "0" * 5000, "usd", "at most"),
        ("5", "dollars", "unknown currency"),
    ],
)
def test_parse_amount_rejects(text: str, currency: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_amount(text, currency)


@pytest.mark.parametrize("value", [19.99, 20, None, b"1", True])
def test_parse_amount_rejects_non_strings(value: Any) -> None:
    with pytest.raises(ValueError, match="must be a decimal string"):
        parse_amount(value, "usd")


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [(1999, "usd", "19.99"), (5, "usd", "0.05"), (0, "usd", "0.00"), (500, "jpy", "500"),
     (1234, "kwd", "1.234"), (-150, "eur", "-1.50")],
)  # fmt: skip
def test_format_amount(minor: int, currency: str, text: str) -> None:
    assert format_amount(minor, currency) == text


def test_format_amount_rejects_non_int() -> None:
    with pytest.raises(ValueError, match="must be an int"):
        format_amount(19.99, "usd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown currency"):
        format_amount(1, "xxx")


@FAST
@given(currencies, st.integers(min_value=0, max_value=MAX_MAJOR_UNITS * 1000))
def test_format_parse_round_trip(currency: str, minor: int) -> None:
    minor = min(minor, MAX_MAJOR_UNITS * 10 ** CURRENCY_EXPONENTS[currency])
    text = format_amount(minor, currency)
    assert parse_amount(text, currency) == minor
    assert format_amount(parse_amount(text, currency), currency) == text


@FAST
@given(currencies, st.integers(0, 10**6), st.integers(0, 999))
def test_parse_format_round_trip_from_text(currency: str, whole: int, fraction: int) -> None:
    exponent = CURRENCY_EXPONENTS[currency]
    digits = str(fraction % 10**exponent).zfill(exponent)[:exponent] if exponent else ""
    text = f"{whole}.{digits}" if digits else str(whole)
    assert format_amount(parse_amount(text, currency), currency) == text


# --- proration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "num", "den", "expected"),
    [
        (3000, 15, 30, 1500),
        (1000, 1, 3, 333),
        (1000, 2, 3, 667),
        (1, 1, 2, 0),  # 0.5 -> 0 (even)
        (3, 1, 2, 2),  # 1.5 -> 2 (even)
        (5, 1, 2, 2),  # 2.5 -> 2 (even)
        (7, 1, 2, 4),  # 3.5 -> 4 (even)
        (-5, 1, 2, -2),  # -2.5 -> -2 (even)
        (-7, 1, 2, -4),
        (999, 0, 86400, 0),
        (999, 86400, 86400, 999),
    ],
)
def test_prorate_half_even(amount: int, num: int, den: int, expected: int) -> None:
    assert prorate(amount, num, den) == expected


def test_prorate_rejects_bad_denominator() -> None:
    with pytest.raises(ValueError, match="denominator_seconds must be positive"):
        prorate(100, 1, 0)


def test_proration_for_change_examples() -> None:
    start, end = 0, 30 * 86400
    # Half way through a $30 -> $60 upgrade: $15 credit, $30 charge, $15 net.
    assert proration_for_change(3000, 6000, start, end, 15 * 86400) == (1500, 3000)
    assert proration_for_change(3000, 6000, start, end, start) == (3000, 6000)
    assert proration_for_change(3000, 6000, start, end, end) == (0, 0)
    # Clamped: before the start counts as the start, after the end as the end.
    assert proration_for_change(3000, 6000, start, end, -100) == (3000, 6000)
    assert proration_for_change(3000, 6000, start, end, end + 100) == (0, 0)
    # To the second: one second left of a 30-day month.
    assert proration_for_change(2_592_000, 0, start, end, end - 1) == (1, 0)


def test_proration_for_change_rejects() -> None:
    with pytest.raises(ValueError, match="must be after period_start"):
        proration_for_change(1, 1, 10, 10, 10)
    with pytest.raises(ValueError, match="must not be negative"):
        proration_for_change(-1, 1, 0, 10, 5)


@FAST
@given(
    st.integers(0, 10**9),
    st.integers(0, 10**9),
    st.integers(-(10**10), 10**10),
    st.integers(1, 10**8),
    st.integers(-(10**8), 2 * 10**8),
)
def test_proration_never_exceeds_amounts(old: int, new: int, start: int, length: int, offset: int) -> None:
    credit, charge = proration_for_change(old, new, start, start + length, start + offset)
    assert 0 <= credit <= old
    assert 0 <= charge <= new
    if old == new:
        assert credit == charge  # a change to the same price nets to zero


@FAST
@given(
    st.integers(0, 10**9),
    st.lists(st.integers(1, 10**7), min_size=1, max_size=40),
)
def test_partition_sums_within_half_unit_per_piece(amount: int, pieces: list[int]) -> None:
    """Each piece is within 1/2 of its exact share and the shares sum to ``amount`` exactly, so the
    integer total is within k/2, i.e. within ``k // 2`` minor units, of ``amount``."""
    total = sum(pieces)
    parts = [prorate(amount, piece, total) for piece in pieces]
    for part, piece in zip(parts, pieces, strict=True):
        assert abs(2 * (part * total - amount * piece)) <= total  # |part - exact| <= 1/2
    assert abs(sum(parts) - amount) <= len(pieces) // 2


def test_partition_bound_is_tight() -> None:
    assert [prorate(1, 1, 2), prorate(1, 1, 2)] == [0, 0]  # k=2 pieces lose exactly k//2 = 1


# --- refunds ---------------------------------------------------------------------------------


def test_refund_checks() -> None:
    assert refundable(1000, 300) == 700
    assert check_refund(None, 1000, 300, currency="usd") == 700
    assert check_refund(700, 1000, 300, currency="usd") == 700
    assert check_refund(1, 1000, 0, currency="usd") == 1
    with pytest.raises(ValueError, match="must be positive"):
        check_refund(0, 1000, 0, currency="usd")
    with pytest.raises(ValueError, match=r"must be positive, got -0\.05 usd"):
        check_refund(-5, 1000, 0, currency="usd")
    with pytest.raises(ValueError, match="exceeds the 40 jpy that remains"):
        check_refund(100, 100, 60, currency="jpy")
    with pytest.raises(ValueError, match=r"refund amount 7\.01 usd exceeds the 7\.00 usd that remains"):
        check_refund(701, 1000, 300, currency="usd")
    with pytest.raises(ValueError, match="already fully refunded"):
        check_refund(None, 1000, 1000, currency="usd")
    with pytest.raises(ValueError, match="exceeds paid"):
        refundable(100, 101)
    with pytest.raises(ValueError, match="must not be negative"):
        refundable(-1, 0)


@FAST
@given(st.integers(0, 10**7), st.lists(st.one_of(st.none(), st.integers(-100, 10**7)), max_size=20))
def test_refunds_never_exceed_paid(paid: int, requests: list[int | None]) -> None:
    refunded = 0
    for request in requests:
        try:
            granted = check_refund(request, paid, refunded, currency="usd")
        except ValueError:
            continue
        assert granted > 0
        refunded += granted
        assert refunded <= paid
