"""Money arithmetic in integer minor units.

Amounts cross the API as decimal strings (``"19.99"``) with a lower-case ISO currency; inside the
engine they are ``int`` minor units (cents), so no float ever touches money and every sum is exact.

Rounding rule (proration): the exact rational ``amount * numerator / denominator`` is rounded to the
nearest whole minor unit, ties to even (banker's rounding). Each rounding is off by at most half a
minor unit, so for a period split into ``k`` pieces the ``k`` prorated pieces of one amount sum to
that amount within ``k // 2`` minor units (the sum is an integer within ``k / 2`` of it).
"""

from __future__ import annotations

import re

CURRENCY_EXPONENTS: dict[str, int] = {
    # two decimals
    "usd": 2, "eur": 2, "gbp": 2, "cny": 2, "cad": 2, "aud": 2, "nzd": 2, "chf": 2,
    "sek": 2, "nok": 2, "dkk": 2, "pln": 2, "czk": 2, "huf": 2, "inr": 2, "brl": 2,
    "mxn": 2, "sgd": 2, "hkd": 2, "zar": 2, "try": 2, "ils": 2, "aed": 2, "thb": 2,
    "php": 2, "myr": 2, "idr": 2, "twd": 2,
    # no decimals
    "jpy": 0, "krw": 0, "vnd": 0, "clp": 0, "isk": 0, "pyg": 0, "ugx": 0,
    # three decimals
    "bhd": 3, "jod": 3, "kwd": 3, "omr": 3, "tnd": 3,
}  # fmt: skip

MAX_MAJOR_UNITS = 10**12
"""Largest accepted amount, in major units: far above any real charge, far below int64 trouble."""

_AMOUNT = re.compile(r"([0-9]+)(?:\.([0-9]+))?")


def validate_currency(code: str) -> str:
    """Return ``code`` if it is a known lower-case ISO 4217 code; guessing decimals would misprice."""
    if not isinstance(code, str):
        raise ValueError(f"currency must be a string, got {type(code).__name__}")
    if code not in CURRENCY_EXPONENTS:
        if code.lower() in CURRENCY_EXPONENTS:
            raise ValueError(f"currency must be lower-case: use {code.lower()!r}, not {code!r}")
        raise ValueError(f"unknown currency {code!r}")
    return code


def _decimals_phrase(exponent: int) -> str:
    return "no decimal places" if exponent == 0 else f"at most {exponent} decimal places"


def parse_amount(text: str, currency: str) -> int:
    """Parse a decimal string such as ``"19.99"`` into minor units, refusing anything ambiguous."""
    exponent = CURRENCY_EXPONENTS[validate_currency(currency)]
    if not isinstance(text, str):
        raise ValueError(f'amount must be a decimal string such as "19.99", got {type(text).__name__}')
    if text == "":
        raise ValueError("amount must not be empty")
    if text.startswith("-"):
        raise ValueError(f"amount must not be negative, got {text!r}")
    lowered = text.strip().lower().lstrip("+-")
    if lowered in {"nan", "inf", "infinity"}:
        raise ValueError(f"amount must be a finite number, got {text!r}")
    if re.fullmatch(r"[0-9.]+e[+-]?[0-9]+", lowered):
        raise ValueError(f"amount must not use exponent notation, got {text!r}")
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise ValueError(f'amount must be a decimal string such as "19.99", got {text!r}')
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > exponent:
        raise ValueError(f"{currency} amounts allow {_decimals_phrase(exponent)}, got {text!r}")
    too_large = f"amount must be at most {MAX_MAJOR_UNITS} {currency}, got {text!r}"
    # Check the length before int() so a megabyte of digits costs nothing.
    if len(whole.lstrip("0")) > len(str(MAX_MAJOR_UNITS)):
        raise ValueError(too_large)
    scale: int = 10**exponent
    minor = int(whole) * scale + int(fraction.ljust(exponent, "0") or "0")
    if minor > MAX_MAJOR_UNITS * scale:
        raise ValueError(too_large)
    return minor


def format_amount(minor: int, currency: str) -> str:
    """Render minor units with exactly the currency's decimals; negatives (credits) get a ``-``."""
    exponent = CURRENCY_EXPONENTS[validate_currency(currency)]
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise ValueError(f"amount in minor units must be an int, got {type(minor).__name__}")
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10**exponent)
    if exponent == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:0{exponent}d}"


def prorate(amount: int, numerator_seconds: int, denominator_seconds: int) -> int:
    """``amount * numerator / denominator`` rounded half-even: unbiased, so errors cancel over time."""
    if denominator_seconds <= 0:
        raise ValueError(f"denominator_seconds must be positive, got {denominator_seconds}")
    # Floor division keeps 0 <= remainder < denominator for every sign, so one comparison rounds.
    quotient, remainder = divmod(amount * numerator_seconds, denominator_seconds)
    twice = 2 * remainder
    if twice > denominator_seconds or (twice == denominator_seconds and quotient % 2 == 1):
        quotient += 1
    return quotient


def proration_for_change(
    old_amount: int, new_amount: int, period_start: int, period_end: int, at: int
) -> tuple[int, int]:
    """Return (credit for the old amount's unused time, charge for the new amount's remaining time).

    Both are prorated over the seconds left in the period; ``at`` is clamped into the period, so a
    change before it starts credits and charges in full and one after it ends costs nothing.
    The net due now is ``charge - credit``.
    """
    if old_amount < 0 or new_amount < 0:
        raise ValueError("amounts must not be negative")
    if period_end <= period_start:
        raise ValueError(f"period_end ({period_end}) must be after period_start ({period_start})")
    remaining = period_end - min(max(at, period_start), period_end)
    total = period_end - period_start
    return prorate(old_amount, remaining, total), prorate(new_amount, remaining, total)


def refundable(paid: int, already_refunded: int) -> int:
    """What is left to refund on a payment; inconsistent inputs are a bug, so they raise."""
    if paid < 0 or already_refunded < 0:
        raise ValueError("paid and already_refunded must not be negative")
    if already_refunded > paid:
        raise ValueError(f"already_refunded ({already_refunded}) exceeds paid ({paid})")
    return paid - already_refunded


def check_refund(amount: int | None, paid: int, already_refunded: int, *, currency: str) -> int:
    """Return the amount to refund (``None`` means all that remains) or raise if it is not allowed.

    The error messages speak the API's decimal strings (``"0.40 usd"``), never minor units."""
    remaining = refundable(paid, already_refunded)
    if amount is None:
        if remaining == 0:
            raise ValueError("payment is already fully refunded")
        return remaining
    if amount <= 0:
        raise ValueError(f"refund amount must be positive, got {format_amount(amount, currency)} {currency}")
    if amount > remaining:
        raise ValueError(
            f"refund amount {format_amount(amount, currency)} {currency} exceeds the "
            f"{format_amount(remaining, currency)} {currency} that remains refundable"
        )
    return amount
