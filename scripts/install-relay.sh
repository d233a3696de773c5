#!/usr/bin/env bash
# Installs Relay's PII engine, the pinned PyPI `sentry-relay` (the librelay bindings
# Sentry's server calls), into .relay-venv for scripts/relay-diff.py. Repo-local and
# gitignored. A second run does nothing: the venv is rebuilt only when it is missing or
# holds another version. Needs python3 (with venv).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.relay-venv
VERSION=0.10.1

installed_version() {
    "$VENV/bin/python" -c \
        'import importlib.metadata as m, sentry_relay; print(m.version("sentry-relay"))' \
        2>/dev/null
}

if [[ -x $VENV/bin/python && "$(installed_version)" == "$VERSION" ]]; then
    echo "install-relay: sentry-relay $VERSION already installed in $VENV"
else
    echo "install-relay: installing sentry-relay $VERSION into $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        "sentry-relay==$VERSION"
fi

# What relay-diff.py will call, so a broken install fails here.
"$VENV/bin/python" -c 'import sentry_relay; sentry_relay.convert_datascrubbing_config({})' ||
    { echo "install-relay: sentry_relay does not load from $VENV" >&2; exit 1; }
echo "install-relay: sentry-relay $(installed_version)"
