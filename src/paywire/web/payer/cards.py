"""The test card form's rules, the same in the browser (`checkout.js`) and here.

A card number never leaves this module: it is checked, turned into the provider's test payment
method, and dropped. Only the brand and the last four digits are ever shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from paywire.web.payer.i18n import N_

# Stripe's test numbers → the test provider's payment methods.
TEST_CARDS = {
    "4242424242424242": "pm_card_visa",
    "4000000000000002": "pm_card_visa_chargeDeclined",
    "4000000000000341": "pm_card_chargeCustomerFail",
}
# payment method → (brand, last four), for showing what paid.
PAYMENT_METHODS = {pm: ("visa", number[-4:]) for number, pm in TEST_CARDS.items()}
BRANDS = {"visa": "Visa", "mastercard": "Mastercard", "amex": "American Express", "discover": "Discover"}

ERRORS = {
    "number_missing": N_("Enter your card number."),
    "number_invalid": N_("Your card number is invalid."),
    "number_not_test": N_("This is not a test card number. In test mode, use 4242 4242 4242 4242."),
    "expiry_invalid": N_("Enter the expiry date as MM / YY."),
    "expiry_past": N_("Your card's expiry date is in the past."),
    "cvc_invalid": N_("Your card's security code (CVC) must be 3 or 4 digits."),
    "email_invalid": N_("Enter a valid email address."),
    "payment_method_missing": N_("Your card could not be read. Enter it again."),
}

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class Card:
    payment_method: str
    brand: str
    last4: str


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def brand_of(digits: str) -> str:
    if digits.startswith("4"):
        return "visa"
    if digits[:2] in ("34", "37"):
        return "amex"
    if "51" <= digits[:2] <= "55" or "2221" <= digits[:4] <= "2720":
        return "mastercard"
    if digits.startswith(("6011", "65")):
        return "discover"
    return "card"


def valid_email(email: str) -> bool:
    return len(email) <= 320 and _EMAIL.fullmatch(email) is not None


def check_number(number: str) -> tuple[str | None, str | None]:
    """(digits, error code)."""
    digits = re.sub(r"[\s-]", "", number)
    if not digits:
        return None, "number_missing"
    if not digits.isdigit() or not 12 <= len(digits) <= 19 or not luhn_ok(digits):
        return None, "number_invalid"
    return digits, None


def check_expiry(expiry: str, today: date) -> str | None:
    match = re.fullmatch(r"\s*(\d{1,2})\s*/?\s*(\d{2}|\d{4})\s*", expiry)
    if match is None:
        return "expiry_invalid"
    month, year = int(match.group(1)), int(match.group(2))
    if year < 100:
        year += 2000
    if not 1 <= month <= 12 or year > today.year + 50:
        return "expiry_invalid"
    if (year, month) < (today.year, today.month):
        return "expiry_past"
    return None


def check_cvc(cvc: str) -> str | None:
    return None if re.fullmatch(r"\d{3,4}", cvc.strip()) else "cvc_invalid"


def read_card(number: str, expiry: str, cvc: str, today: date) -> tuple[Card | None, dict[str, str]]:
    """The test card the form describes, or the error code of each wrong field."""
    errors: dict[str, str] = {}
    digits, error = check_number(number)
    if error:
        errors["card_number"] = error
    elif digits is not None and digits not in TEST_CARDS:
        errors["card_number"] = "number_not_test"  # Stripe's test mode refuses real numbers too
    if expiry_error := check_expiry(expiry, today):
        errors["expiry"] = expiry_error
    if cvc_error := check_cvc(cvc):
        errors["cvc"] = cvc_error
    if errors or digits is None:
        return None, errors
    return Card(TEST_CARDS[digits], brand_of(digits), digits[-4:]), {}


def describe(payment_method: str | None) -> tuple[str, str] | None:
    """(brand name, last four) of a payment method, when known."""
    if payment_method is None or payment_method not in PAYMENT_METHODS:
        return None
    brand, last4 = PAYMENT_METHODS[payment_method]
    return BRANDS.get(brand, brand), last4
