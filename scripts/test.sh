#!/usr/bin/env bash
# Install Paywire with its test tools into .venv, then run lint, types and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/pytest -q "$@"
