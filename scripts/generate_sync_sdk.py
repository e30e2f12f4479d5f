"""Write the sync SDK (`src/paywire/sdk/resources.py`) from the async one with unasync.

`async_resources.py` is the one source: edit it, then run `.venv/bin/python scripts/generate_sync_sdk.py`.
Every `async`/`await` is dropped and every `Async…`/`async_…` name loses its prefix
(`AsyncCustomers` → `Customers`, `async_list_of` → `list_of`); the result is formatted with ruff.
`tests/unit/test_sdk.py` fails when the committed file differs from what this writes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tokenize_rt
import unasync

SDK = Path(__file__).resolve().parents[1] / "src" / "paywire" / "sdk"
SOURCE = SDK / "async_resources.py"
TARGET = SDK / "resources.py"
PYPROJECT = SDK.parents[2] / "pyproject.toml"
DOCSTRING = (
    '"""The sync client\'s resources, generated from `async_resources.py` by `scripts/generate_sync_sdk.py`\n'
    "(unasync): edit that file and run the script, never this one.\n"
    '"""\n'
)
PREFIXED = re.compile(r"^(_?)(?:Async(?=[A-Z])|async_)(\w+)$")


def replacements(source: str) -> dict[str, str]:
    """Each prefixed name of the async file and its sync name."""
    names = {t.src for t in tokenize_rt.src_to_tokens(source) if t.name == "NAME"}
    return {name: m[1] + m[2] for name in names if (m := PREFIXED.match(name))}


def generate() -> str:
    """The sync file's text, as this script would write it."""
    source = SOURCE.read_text()
    with tempfile.TemporaryDirectory() as work:
        copy = Path(work) / "sdk" / "async_resources.py"
        copy.parent.mkdir()
        shutil.copy(SOURCE, copy)
        rule = unasync.Rule("/sdk/async_resources.py", "/sdk/resources.py", replacements(source))
        unasync.unasync_files([str(copy)], [rule])
        out = copy.with_name("resources.py")
        text = out.read_text()
        # The async file's docstring speaks of itself; the generated file says what it is.
        docstring_end = text.index('"""\n', 3) + 4
        out.write_text(DOCSTRING + text[docstring_end:])
        ruff = [str(Path(sys.executable).with_name("ruff")), "--config", str(PYPROJECT)]
        subprocess.run([*ruff[:1], "format", "--quiet", *ruff[1:], str(out)], check=True)
        subprocess.run([*ruff[:1], "check", "--quiet", "--fix", "--select", "I", *ruff[1:], str(out)], check=True)
        return out.read_text()


if __name__ == "__main__":
    TARGET.write_text(generate())
    print(f"wrote {TARGET.relative_to(Path.cwd()) if TARGET.is_relative_to(Path.cwd()) else TARGET}")
