"""The payer pages' languages: gettext catalogues built with Babel, and locale-aware money and dates.

English is the source language (the strings in the templates and code); every other language is
one `locale/<code>/LC_MESSAGES/messages.po` with its compiled `messages.mo` beside it. A page's
language is the session's `locale`, or for `auto` the best match of the browser's
`Accept-Language`, else the `default_locale` setting.
"""

from __future__ import annotations

import gettext as gettext_module
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_date
from babel.numbers import format_currency
from babel.support import Translations
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from paywire.billing import money

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = ("en", "zh")
BABEL_LOCALES = {"en": "en_US", "zh": "zh_Hans_CN"}
HTML_LANG = {"en": "en", "zh": "zh-CN"}


def N_(message: str) -> str:
    """Mark `message` for the catalogue; it is translated where it is shown."""
    return message


@lru_cache(maxsize=len(LANGUAGES))
def translations(code: str) -> gettext_module.NullTranslations:
    if code == "en":
        return gettext_module.NullTranslations()
    return Translations.load(str(LOCALE_DIR), [code], domain="messages")


def from_accept_language(header: str | None) -> str | None:
    """The language of ours the browser prefers most (by q-value, then order), if any."""
    if not header:
        return None
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > 0:
            choices.append((-q, index, primary))
    return min(choices)[2] if choices else None


def choose(locale: str | None, accept_language: str | None, default: str) -> str:
    """`locale` of a session (`auto`, `en`, `zh` or None) → the language to show."""
    if locale in LANGUAGES:
        return str(locale)
    return from_accept_language(accept_language) or (default if default in LANGUAGES else "en")


@dataclass(frozen=True)
class Lang:
    """One page's language: its catalogue and formats."""

    code: str

    @property
    def babel(self) -> str:
        return BABEL_LOCALES[self.code]

    def gettext(self, message: str) -> str:
        return translations(self.code).gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return translations(self.code).ngettext(singular, plural, n)

    def money(self, minor: int, currency: str) -> str:
        """`1999, "usd"` → "$19.99" (en), "US$19.99" (zh): the currency's usual format."""
        amount = Decimal(money.format_amount(int(minor), currency))
        return str(format_currency(amount, currency.upper(), locale=self.babel))

    def date(self, ts: int | float | None) -> str:
        if ts is None:
            return ""
        return format_date(datetime.fromtimestamp(int(ts), UTC).date(), format="long", locale=self.babel)

    def interval(self, interval: str, count: int) -> str:
        """ "month" / "3 months", in this language."""
        units = {
            "day": (N_("day"), N_("%(num)d days")),
            "week": (N_("week"), N_("%(num)d weeks")),
            "month": (N_("month"), N_("%(num)d months")),
            "year": (N_("year"), N_("%(num)d years")),
        }
        one, many = units[interval]
        return self.gettext(one) if count == 1 else self.gettext(many) % {"num": count}

    def template_context(self) -> dict[str, Any]:
        """What a template needs: newstyle `gettext`/`ngettext` (as Jinja's i18n extension calls
        them) in this language, and the formats."""
        t = translations(self.code)

        @pass_context
        def _gettext(ctx: Context, message: str, **variables: Any) -> str:
            text = t.gettext(message)
            if ctx.eval_ctx.autoescape:
                text = Markup(text)
            return text % variables if variables else text

        @pass_context
        def _ngettext(ctx: Context, singular: str, plural: str, n: int, **variables: Any) -> str:
            variables.setdefault("num", n)
            text = t.ngettext(singular, plural, n)
            if ctx.eval_ctx.autoescape:
                text = Markup(text)
            return text % variables

        return {
            "gettext": _gettext,
            "ngettext": _ngettext,
            "lang": HTML_LANG[self.code],
            "money": self.money,
            "date": self.date,
            "interval": self.interval,
        }
