"""The pages hold no SQL: every query lives with the store it belongs to (`ops/operators.py`,
`ops/audit_log.py`, `events/queries.py`, `webhooks/queries.py`, `billing/read.py`…), and a
module under `src/paywire/web/` imports neither SQLAlchemy nor the table objects."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "src" / "paywire" / "web"
FORBIDDEN = ("sqlalchemy", "paywire.db.schema")


def _imports(path: Path) -> list[str]:
    """Every module the file imports, at the top or inside a function."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


WEB_MODULES = sorted(WEB.rglob("*.py"))


def test_the_web_layer_has_modules() -> None:
    assert len(WEB_MODULES) > 10  # the glob found the pages


@pytest.mark.parametrize("path", WEB_MODULES, ids=lambda p: str(p.relative_to(WEB)))
def test_a_page_module_imports_no_sql(path: Path) -> None:
    found = [name for name in _imports(path) if _forbidden(name)]
    assert not found, f"{path.relative_to(WEB)} imports {found}: its queries belong in a store module"
