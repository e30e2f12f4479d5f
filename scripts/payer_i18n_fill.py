"""Fill translations into a language's messages.po from a {msgid: msgstr} dict in a Python file:
`python scripts/payer_i18n_fill.py zh translations.py` (the file defines `TRANSLATIONS`)."""

from __future__ import annotations

import runpy
import sys
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.pofile import read_po, write_po

LOCALE = Path(__file__).resolve().parents[1] / "src" / "paywire" / "web" / "locale"


def main(code: str, source: str) -> None:
    translations = runpy.run_path(source)["TRANSLATIONS"]
    path = LOCALE / code / "LC_MESSAGES" / "messages.po"
    with open(path, "rb") as f:
        catalog = read_po(f, locale=code)
    for message in catalog:
        key = message.id if isinstance(message.id, str) else message.id[0]
        if message.id and key in translations:
            value = translations[key]
            message.string = value if isinstance(message.id, str) else (value,)
    catalog.fuzzy = False
    catalog.revision_date = datetime.now(UTC)
    catalog.project, catalog.version = "Paywire", "payer pages"
    catalog.msgid_bugs_address = catalog.last_translator = catalog.language_team = "Paywire"
    catalog.header_comment = (
        f"# {code} translations of Paywire's payer pages (checkout, payment links, customer portal).\n"
        "# Update with scripts/payer_i18n.sh; see docs/checkout.md (Languages)."
    )
    with open(path, "wb") as f:
        write_po(f, catalog, no_location=True, sort_output=True, width=100)
    missing = [m.id for m in catalog if m.id and not m.string]
    print(f"{path}: {len(missing)} untranslated", *missing, sep="\n  ")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
