#!/bin/sh
# The fault suite, long: each fault run lasts FAULT_SECS seconds (default 60) and the
# process is SIGKILLed FAULT_KILLS times (default 10), on the release build. Prints one
# "fault:" line of figures per run; any lost, duplicated or unscrubbed event fails it.
#
#   scripts/fault-suite.sh
#   FAULT_SECS=300 scripts/fault-suite.sh     # a 5-minute flapping upstream
set -eu
cd "$(dirname "$0")/.."
export FAULT_SECS="${FAULT_SECS:-60}"
export FAULT_KILLS="${FAULT_KILLS:-10}"
cargo test --release --test it -- --nocapture --test-threads=1 \
    fault:: spool::a_sigkill_under_load_loses_no_acknowledged_event 2>&1 |
    grep -E '^fault:|^test |^test result|panicked'
