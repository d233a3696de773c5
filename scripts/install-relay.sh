#!/usr/bin/env bash
# Installs Relay's PII engine for scripts/relay-diff.py: PyPI `sentry-relay` (the librelay
# bindings Sentry's server calls) and its dependencies, pinned in
# tests/fixtures/relay-diff/requirements.txt, into .relay-venv (repo-local, gitignored).
# A second run does nothing (a few hundred ms): the install leaves a stamp with the hash
# of the pin file and is redone only when the pins change or the stamp is missing.
# Needs python3 (with venv).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.relay-venv
PINS=tests/fixtures/relay-diff/requirements.txt

stamp=$(sha256sum "$PINS" | cut -d' ' -f1)
if [[ -x $VENV/bin/python && "$(cat "$VENV/.installed" 2>/dev/null)" == "$stamp" ]] &&
    "$VENV/bin/python" -c 'import sentry_relay' 2>/dev/null; then
    echo "install-relay: sentry-relay already installed in $VENV"
else
    echo "install-relay: installing sentry-relay into $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --no-deps -r "$PINS"
    echo "$stamp" >"$VENV/.installed"
fi

# What relay-diff.py will call, so a broken install fails here rather than in the check.
"$VENV/bin/python" -c '
import importlib.metadata, sentry_relay
sentry_relay.convert_datascrubbing_config({})
print("install-relay: sentry-relay", importlib.metadata.version("sentry-relay"))'
