#!/usr/bin/env bash
# Installs the pinned real Sentry SDKs that tests/it/sdk.rs drives:
#   - sentry-sdk (Python) from tests/sdk/python-requirements.txt into .sdk/venv
#   - @sentry/node from tests/sdk/node/package-lock.json into tests/sdk/node/node_modules
# Both are repo-local and gitignored. A second run does nothing (a few hundred ms): each
# install leaves a stamp with the hash of its pin file and is redone only when the pins
# change or the stamp is missing. Needs python3 (with venv), node and npm.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.sdk/venv
PY_PINS=tests/sdk/python-requirements.txt
NODE_DIR=tests/sdk/node

stamp_of() {
    sha256sum "$@" | sha256sum | cut -d' ' -f1
}

# Python: a venv with exactly the pinned, hash-checked packages.
py_stamp=$(stamp_of "$PY_PINS")
if [[ -x $VENV/bin/python && "$(cat "$VENV/.installed" 2>/dev/null)" == "$py_stamp" ]] &&
    "$VENV/bin/python" -c 'import sentry_sdk' 2>/dev/null; then
    echo "install-sdks: sentry-sdk already installed in $VENV"
else
    echo "install-sdks: installing sentry-sdk into $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --require-hashes -r "$PY_PINS"
    echo "$py_stamp" >"$VENV/.installed"
fi

# Node: npm ci from the committed lockfile.
node_stamp=$(stamp_of "$NODE_DIR/package.json" "$NODE_DIR/package-lock.json")
if [[ "$(cat "$NODE_DIR/node_modules/.installed" 2>/dev/null)" == "$node_stamp" &&
    -f $NODE_DIR/node_modules/@sentry/node/package.json ]]; then
    echo "install-sdks: @sentry/node already installed in $NODE_DIR/node_modules"
else
    echo "install-sdks: installing @sentry/node into $NODE_DIR/node_modules"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$node_stamp" >"$NODE_DIR/node_modules/.installed"
fi

# What the tests will run, so a broken install fails here rather than in cargo test.
"$VENV/bin/python" -c 'import sentry_sdk; print("install-sdks: sentry-sdk", sentry_sdk.VERSION)'
(cd "$NODE_DIR" && node -e \
    'console.log("install-sdks: @sentry/node", require("@sentry/node/package.json").version)')
