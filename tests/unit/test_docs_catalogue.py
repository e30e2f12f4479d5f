from __future__ import annotations

from pathlib import Path

from paywire.events import catalogue

DOC = Path(__file__).parents[2] / "docs" / "events.md"


def test_the_docs_page_lists_every_event_type_with_its_description() -> None:
    text = DOC.read_text()
    for entry in catalogue.EVENT_TYPES.values():
        assert f"| `{entry.name}` | `{entry.object_type}` | {entry.description} |" in text, entry.name
