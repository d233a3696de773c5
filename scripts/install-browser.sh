#!/usr/bin/env bash
# Installs what the console's real-browser test (tests/console, driven from
# tests/it/console.rs) needs, when it is missing: Debian's Chromium (apt, as root) and
# the pinned playwright-core (npm ci into tests/console/node_modules; it downloads no
# browser). Quick when both are there.
set -euo pipefail
cd "$(dirname "$0")/../tests/console"

if [[ ! -x /usr/bin/chromium ]]; then
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "install-browser: /usr/bin/chromium is missing; install it with 'apt-get install chromium' (needs root)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq chromium >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
fi
wanted="$(node -p 'require("./package.json").dependencies["playwright-core"]')"
have="$(node -p 'try { require("./node_modules/playwright-core/package.json").version } catch (e) { "" }')"
if [[ "$have" != "$wanted" ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "install-browser: $(/usr/bin/chromium --version 2>/dev/null | head -n1), playwright-core $wanted"
