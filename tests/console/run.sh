#!/usr/bin/env bash
# Runs the console's real-browser test (console.test.mjs) with Debian's Chromium.
#
# Installs what it needs when missing: chromium (apt, as root) and the pinned
# playwright-core (npm, into tests/console/node_modules; it downloads no browser).
#
#   CONSOLE_URL=http://127.0.0.1:3001/ CONSOLE_TOKEN=... SCREENSHOT_DIR=... tests/console/run.sh
#
# Without CONSOLE_URL it starts the mock server (mock_server.mjs, token "test-token") on a
# free port and tests the page against it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

chromium_bin="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium_bin" ]]; then
  echo "run.sh: installing chromium (apt)" >&2
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "run.sh: $chromium_bin is missing and installing it needs root (apt-get install chromium)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }
fi

wanted="$(node -p 'require("./package.json").dependencies["playwright-core"]')"
have="$(node -p 'try { require("./node_modules/playwright-core/package.json").version } catch (e) { "" }')"
if [[ "$have" != "$wanted" ]]; then
  echo "run.sh: installing playwright-core $wanted (npm)" >&2
  if [[ -f package-lock.json ]]; then
    npm ci --no-audit --no-fund --loglevel=error >&2
  else
    npm install --no-audit --no-fund --loglevel=error >&2
  fi
fi

mock_pid=""
cleanup() {
  if [[ -n "$mock_pid" ]]; then
    kill "$mock_pid" 2>/dev/null || true
    wait "$mock_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

if [[ -z "${CONSOLE_URL:-}" ]]; then
  log="$(mktemp)"
  node mock_server.mjs 0 >"$log" 2>&1 &
  mock_pid=$!
  for _ in $(seq 1 100); do
    url="$(sed -n 's/^listening on //p' "$log")"
    [[ -n "$url" ]] && break
    if ! kill -0 "$mock_pid" 2>/dev/null; then
      echo "run.sh: the mock server did not start:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
  if [[ -z "$url" ]]; then
    echo "run.sh: the mock server did not say where it listens" >&2
    exit 1
  fi
  export CONSOLE_URL="$url/"
  export CONSOLE_TOKEN="${CONSOLE_TOKEN:-test-token}"
  echo "run.sh: testing against the mock server at $CONSOLE_URL" >&2
fi

CHROMIUM="$chromium_bin" node console.test.mjs
