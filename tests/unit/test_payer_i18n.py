"""The payer pages' catalogues: every string of the templates and code is translated, the
committed .mo files are exactly what their .po files compile to, and formats follow the locale."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from paywire.web.payer import i18n

WEB = Path(i18n.__file__).resolve().parents[1]
LOCALE = WEB / "locale"
LANGUAGES = [p.name for p in LOCALE.iterdir() if (p / "LC_MESSAGES" / "messages.po").exists()]


def _source_ids() -> set[str]:
    with open(LOCALE / "babel.cfg") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)  # type: ignore[no-untyped-call]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    ids = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(WEB), method_map, options_map, keywords=keywords
    ):
        ids.add(message if isinstance(message, str) else message[0])
    return ids


def test_zh_is_a_language() -> None:
    assert "zh" in LANGUAGES


@pytest.mark.parametrize("code", LANGUAGES)
def test_every_string_is_translated_and_the_mo_is_compiled(code: str) -> None:
    po = LOCALE / code / "LC_MESSAGES" / "messages.po"
    with open(po, "rb") as f:
        catalog = read_po(f, locale=code)
    translated = {m.id if isinstance(m.id, str) else m.id[0]: m.string for m in catalog if m.id}
    assert set(translated) == _source_ids(), "run scripts/payer_i18n.sh and translate the new strings"
    assert all(s if isinstance(s, str) else s and all(s) for s in translated.values()), "untranslated strings"
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    assert (po.with_suffix(".mo")).read_bytes() == compiled.getvalue(), "run scripts/payer_i18n.sh (compile)"


def test_money_and_dates_follow_the_locale() -> None:
    en, zh = i18n.Lang("en"), i18n.Lang("zh")
    assert en.money(1999, "usd") == "$19.99" and zh.money(1999, "usd") == "US$19.99"
    assert en.money(500, "jpy") == "¥500" and zh.money(123456, "cny") == "¥1,234.56"
    assert en.date(1_780_000_000) == "May 28, 2026" and zh.date(1_780_000_000) == "2026年5月28日"
    assert zh.gettext("Pay") == "支付" and en.gettext("Pay") == "Pay"
    assert en.interval("month", 3) == "3 months" and zh.interval("month", 1) == "月"


@pytest.mark.parametrize(
    ("locale", "header", "expected"),
    [
        ("zh", "en-US,en;q=0.9", "zh"),
        ("auto", "zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("auto", "fr-FR,en;q=0.5,zh;q=0.7", "zh"),
        ("auto", "fr-FR", "en"),
        (None, None, "en"),
        ("auto", "zh;q=0, en", "en"),
    ],
)
def test_the_page_language(locale: str | None, header: str | None, expected: str) -> None:
    assert i18n.choose(locale, header, "en") == expected
