#!/bin/sh
# The payer pages' translations: extract every string into messages.pot, merge it into each
# language's messages.po (new strings arrive untranslated), and compile the .mo files.
#   scripts/payer_i18n.sh            # after changing strings in web/payer or templates/pay
#   scripts/payer_i18n.sh init fr    # start a new language
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${PYBABEL:-}" ]; then
    PYBABEL=pybabel
    [ -x "$ROOT/.venv/bin/pybabel" ] && PYBABEL="$ROOT/.venv/bin/pybabel"
fi
cd "$ROOT/src/paywire/web"
if [ "${1:-}" = "init" ]; then
    "$PYBABEL" init -i locale/messages.pot -d locale -D messages -l "$2"
    exit 0
fi
"$PYBABEL" extract -F locale/babel.cfg -k N_ -k ngettext:1,2 --no-location --sort-output --project Paywire \
    -o locale/messages.pot .
"$PYBABEL" update -i locale/messages.pot -d locale -D messages --no-fuzzy-matching
"$PYBABEL" compile -d locale -D messages --statistics
