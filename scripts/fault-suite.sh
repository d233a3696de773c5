#!/usr/bin/env bash
# The fault suite, long: each fault run lasts FAULT_SECS seconds (default 60) and the
# process is SIGKILLed FAULT_KILLS times (default 10, at least 1), on the release build.
# Prints one "fault:" line of figures per run; any lost, duplicated or unscrubbed event
# fails it, and the script exits with the test run's own status.
#
#   scripts/fault-suite.sh
#   FAULT_SECS=300 scripts/fault-suite.sh     # a 5-minute flapping upstream
set -euo pipefail
cd "$(dirname "$0")/.."
export FAULT_SECS="${FAULT_SECS:-60}"
export FAULT_KILLS="${FAULT_KILLS:-10}"
if [ "$FAULT_KILLS" -lt 1 ]; then
    echo "FAULT_KILLS must be at least 1 (the kill test asserts on every kill)" >&2
    exit 2
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --release --test it -- --nocapture --test-threads=1 \
    fault:: spool::a_sigkill_under_load_loses_no_acknowledged_event >"$log" 2>&1 || status=$?
grep -E '^fault:|^test |^test result|panicked' "$log" || true
if [ "$status" -ne 0 ]; then
    echo "fault suite FAILED (cargo test exit status $status)" >&2
fi
exit "$status"
