#!/usr/bin/env bash
# Fleet test: three scrubgate replicas behind nginx, in front of a recording upstream,
# all on 127.0.0.1 under a temporary directory. See scripts/fleet/README.md.
#
#   scripts/fleet-test.sh                                   # cargo build --release first
#   SCRUBGATE_BIN=/path/to/scrubgate scripts/fleet-test.sh  # use that binary, no build
#
# Checks (each prints a PASS or FAIL line with its figures):
#   1. a rule added to the shared project file (atomic rename) is applied by all three
#      replicas within projects.poll_interval + a margin: a planted marker arrives
#      unchanged before, and no event sent through nginx afterwards carries it;
#   2. kill -9 of one replica under load while the upstream is down, restart with the
#      same data_dir: every event id that got a 200 reaches the upstream (0 lost;
#      duplicates are reported, delivery is at least once);
#   3. throughput through nginx to one replica and to three (wrk, a ~1 KB store event
#      with an e-mail address), against a null upstream (nginx answering 200).
#
# Settings (environment): FLEET_POLL_INTERVAL (s, default 1), FLEET_RELOAD_MARGIN (s,
# default 3), FLEET_LOAD_SECS (default 14), FLEET_LOAD_THREADS (default 8),
# FLEET_WRK_SECS (default 10), FLEET_WRK_CONNS (default 16), FLEET_WRK_THREADS
# (default 2), FLEET_CHECKS (default "1 2 3": which checks run), FLEET_KEEP_TMP=1 keeps
# the temporary directory (logs, configs).
# Exits 0 when every check passed, 1 when one failed, 2 on a setup error.
set -euo pipefail

# A relative SCRUBGATE_BIN is relative to where the script was started.
case ${SCRUBGATE_BIN:-/} in /*) ;; *) SCRUBGATE_BIN=$PWD/$SCRUBGATE_BIN ;; esac
cd "$(dirname "$0")/.."
ROOT=$PWD
FLEET=$ROOT/scripts/fleet

KEY=a4f6c2d8e1b34f7a9c0d5e2b8f1a3c6d   # config/projects/42.json's public key
POLL_INTERVAL=${FLEET_POLL_INTERVAL:-1}
RELOAD_MARGIN=${FLEET_RELOAD_MARGIN:-3}
LOAD_SECS=${FLEET_LOAD_SECS:-14}
LOAD_THREADS=${FLEET_LOAD_THREADS:-8}
WRK_SECS=${FLEET_WRK_SECS:-10}
WRK_CONNS=${FLEET_WRK_CONNS:-16}
WRK_THREADS=${FLEET_WRK_THREADS:-2}
VICTIM=r2                             # the replica that check 2 kills

log() { echo "fleet: $*"; }
die() { echo "fleet: SETUP ERROR: $*" >&2; exit 2; }
now() { date +%s.%N; }
script_start=$(now)

# --- prerequisites --------------------------------------------------------------------
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root (or sudo) to run: $*"; fi
}
apt_updated=
apt_install() {
  command -v apt-get >/dev/null || die "$1 is missing and there is no apt-get to install it"
  log "installing $1 (apt-get)"
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq >/dev/null; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}
find_nginx() { command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }; }

for tool in python3 curl; do
  command -v "$tool" >/dev/null || die "$tool is needed"
done
NGINX=$(find_nginx) || { apt_install nginx-light; NGINX=$(find_nginx) || die "no nginx after installing nginx-light"; }
command -v wrk >/dev/null || apt_install wrk
WRK=$(command -v wrk) || die "no wrk"

if [ -z "${SCRUBGATE_BIN:-}" ]; then
  log "building: cargo build --release"
  cargo build --release
fi
BIN=${SCRUBGATE_BIN:-target/release/scrubgate}
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
[ -x "$BIN" ] || die "no executable scrubgate at $BIN"

# Only this script's settings may reach the replicas: drop any SCRUBGATE_* override from
# the caller's environment (they would win over the configs written below).
for var in $(compgen -e | grep '^SCRUBGATE_' || true); do
  [ "$var" = SCRUBGATE_HASH_KEY ] || unset "$var"
done
export SCRUBGATE_HASH_KEY=${SCRUBGATE_HASH_KEY:-fleet-test-$RANDOM$RANDOM$RANDOM}

# --- processes and cleanup --------------------------------------------------------------
T=$(mktemp -d "${TMPDIR:-/tmp}/fleet-test.XXXXXX")
declare -A PID=()   # name -> pid of every process this script started and has not reaped

stop_process() {  # name [signal]: signal it, wait up to 5 s, then SIGKILL
  local name=$1 sig=${2:-TERM} pid=${PID[$1]:-}
  [ -n "$pid" ] || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  { kill -KILL "$pid" && wait "$pid"; } 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "PID[$name]"
}
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  local name
  for name in "${!PID[@]}"; do kill -TERM "${PID[$name]}" 2>/dev/null || true; done
  for name in "${!PID[@]}"; do stop_process "$name"; done
  if [ "$status" -ne 0 ]; then
    for f in "$T"/r?/log "$T"/nginx/error.log "$T"/upstream.log; do
      [ -s "$f" ] || continue
      echo "---- last lines of ${f#"$T"/} ----" >&2
      tail -n 15 "$f" >&2
    done
  fi
  if [ "${FLEET_KEEP_TMP:-0}" = 1 ]; then
    log "kept $T"
  else
    rm -rf "$T"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Nine free ports at once (bound together, so they are distinct).
read -r P_LB3 P_LB1 P_NULL I1 A1 I2 A2 I3 A3 < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(9)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
declare -A INGEST=([r1]=$I1 [r2]=$I2 [r3]=$I3) ADMIN=([r1]=$A1 [r2]=$A2 [r3]=$A3)
REPLICAS=(r1 r2 r3)

# --- the recording upstream -------------------------------------------------------------
python3 "$FLEET/upstream.py" --port-file "$T/upstream.port" \
  --marker fleetmarker-1234 --leak fleet.user@example.com >"$T/upstream.log" 2>&1 &
PID[upstream]=$!
for _ in $(seq 100); do [ -f "$T/upstream.port" ] && break; sleep 0.05; done
[ -f "$T/upstream.port" ] || die "the recording upstream did not start"
UP=http://127.0.0.1:$(cat "$T/upstream.port")
upstream_mode() { curl -fsS -o /dev/null -X POST "$UP/_control/mode" -d "{\"mode\": \"$1\"}"; }

# --- the replicas -----------------------------------------------------------------------
mkdir -p "$T/projects"
cp config/projects/42.json "$T/projects/42.json"

start_replica() {  # name upstream-url [data dir name, default "data"]
  local r=$1 url=$2 data=$T/$1/${3:-data}
  mkdir -p "$data"
  cat >"$T/$r/scrubgate.toml" <<EOF
data_dir = "$data"

[server]
listen = "127.0.0.1:${INGEST[$r]}"
trusted_proxies = ["127.0.0.1"]
shutdown_grace = "2s"

[admin]
listen = "127.0.0.1:${ADMIN[$r]}"

[upstream]
url = "$url"
timeout = "5s"

[projects]
dir = "$T/projects"
poll_interval = "${POLL_INTERVAL}s"

[spool]
dir = "$data/spool"

[log]
level = "info"
EOF
  echo "==== start $(date -u +%FT%TZ) upstream $url" >>"$T/$r/log"
  "$BIN" run --config "$T/$r/scrubgate.toml" >>"$T/$r/log" 2>&1 &
  PID[$r]=$!
}
wait_ready() {  # name
  local r=$1
  for _ in $(seq 150); do
    kill -0 "${PID[$r]}" 2>/dev/null || die "replica $r exited at start"
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${ADMIN[$r]}/readyz")" = 200 ] && return 0
    sleep 0.1
  done
  die "replica $r not ready after 15 s"
}
for r in "${REPLICAS[@]}"; do start_replica "$r" "$UP"; done
for r in "${REPLICAS[@]}"; do wait_ready "$r"; done

# --- nginx --------------------------------------------------------------------------------
mkdir -p "$T/nginx"
user_line=
[ "$(id -u)" = 0 ] && user_line="user $(id -un) $(id -gn);"   # workers as the current user
proxy_common="
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_next_upstream error timeout http_502 http_503 non_idempotent;
      proxy_next_upstream_timeout 20s;
      proxy_connect_timeout 1s;
      proxy_send_timeout 30s;
      proxy_read_timeout 30s;
      add_header X-Fleet-Upstream \$upstream_addr always;"
cat >"$T/nginx/nginx.conf" <<EOF
$user_line
daemon off;
master_process on;
worker_processes 2;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $T/nginx/client_body;
  proxy_temp_path $T/nginx/proxy;
  fastcgi_temp_path $T/nginx/fastcgi;
  uwsgi_temp_path $T/nginx/uwsgi;
  scgi_temp_path $T/nginx/scgi;
  client_max_body_size 200m;
  client_body_buffer_size 1m;
  keepalive_requests 100000;

  upstream scrubgate_fleet {
    server 127.0.0.1:$I1 max_fails=1 fail_timeout=2s;
    server 127.0.0.1:$I2 max_fails=1 fail_timeout=2s;
    server 127.0.0.1:$I3 max_fails=1 fail_timeout=2s;
    keepalive 64;
  }
  upstream scrubgate_one {
    server 127.0.0.1:$I1;
    keepalive 64;
  }
  server {   # the load balancer over all three replicas
    listen 127.0.0.1:$P_LB3;
    location / {
      proxy_pass http://scrubgate_fleet;$proxy_common
    }
  }
  server {   # the same, to r1 alone (check 3's single-replica figures)
    listen 127.0.0.1:$P_LB1;
    location / {
      proxy_pass http://scrubgate_one;$proxy_common
    }
  }
  server {   # a null upstream for check 3: 200 at once, the body discarded
    listen 127.0.0.1:$P_NULL;
    keepalive_requests 100000;
    location / {
      default_type application/json;
      return 200 '{"id":"00000000000000000000000000000000"}';
    }
  }
}
EOF
"$NGINX" -t -q -p "$T/nginx/" -e "$T/nginx/error.log" -c "$T/nginx/nginx.conf" \
  || die "nginx rejected its config ($T/nginx/nginx.conf)"
"$NGINX" -p "$T/nginx/" -e "$T/nginx/error.log" -c "$T/nginx/nginx.conf" &
PID[nginx]=$!
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$P_LB3/" && curl -s -o /dev/null "http://127.0.0.1:$P_NULL/" && break
  kill -0 "${PID[nginx]}" 2>/dev/null || die "nginx exited at start"
  sleep 0.05
done
LB3=http://127.0.0.1:$P_LB3
LB1=http://127.0.0.1:$P_LB1
log "scrubgate $("$BIN" --version | awk '{print $NF}') ($BIN); $("$NGINX" -v 2>&1 | sed 's/.*: //'); wrk $("$WRK" -v 2>&1 | awk 'NR==1{print $2}')"
log "upstream $UP; replicas r1 127.0.0.1:$I1 (admin $A1), r2 127.0.0.1:$I2 (admin $A2), r3 127.0.0.1:$I3 (admin $A3); nginx $LB3 (all three), $LB1 (r1 only), null upstream :$P_NULL; temp $T"

PASSED=0
FAILED=0
run_check() {  # label command...
  local label=$1
  shift
  log "check $label"
  if "$@"; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi
}
metric() {  # replica metric [label=value...]
  local r=$1 name=$2
  shift 2
  local args=()
  for l in "$@"; do args+=(--label "$l"); done
  python3 "$FLEET/fleetctl.py" metric --admin "http://127.0.0.1:${ADMIN[$r]}" --name "$name" "${args[@]}"
}

# --- check 1: a rule change reaches all three replicas -------------------------------------
check_rules() {
run_check "1/3: rule change on all replicas" \
  python3 "$FLEET/fleetctl.py" rule-change --lb "$LB3" --upstream "$UP" --key "$KEY" \
    --project "$T/projects/42.json" --tmp-dir "$T" --marker fleetmarker-1234 \
    --poll-interval "$POLL_INTERVAL" --margin "$RELOAD_MARGIN" \
    --replica "r1,http://127.0.0.1:$I1,http://127.0.0.1:$A1" \
    --replica "r2,http://127.0.0.1:$I2,http://127.0.0.1:$A2" \
    --replica "r3,http://127.0.0.1:$I3,http://127.0.0.1:$A3"
}
CHECKS=${FLEET_CHECKS:-1 2 3}
case " $CHECKS " in *" 1 "*) check_rules ;; esac

# --- check 2: kill -9 under load --------------------------------------------------------
check_kill() {
  local timeline=$T/timeline
  : >"$timeline"
  python3 "$FLEET/fleetctl.py" load --lb "$LB3" --key "$KEY" --threads "$LOAD_THREADS" \
    --duration "$LOAD_SECS" --out "$T/load.json" &
  PID[load]=$!
  at() { awk -v d="$LOAD_SECS" -v f="$1" 'BEGIN { printf "%.2f", d * f }'; }
  # The upstream goes down at 20% of the run, the victim is killed at 40% (its spool
  # then holds events it acknowledged), restarted at 60%; the upstream is back at 70%.
  sleep "$(at 0.2)"
  upstream_mode down
  echo "down $(now)" >>"$timeline"
  log "  upstream down (503): the replicas spool"
  sleep "$(at 0.2)"
  # Reaped at once with stderr closed, so bash does not print "Killed" for the job.
  { kill -KILL "${PID[$VICTIM]}" && wait "${PID[$VICTIM]}"; } 2>/dev/null || true
  echo "kill $(now)" >>"$timeline"
  unset "PID[$VICTIM]"
  log "  kill -9 $VICTIM"
  sleep "$(at 0.2)"
  start_replica "$VICTIM" "$UP"
  echo "restart $(now)" >>"$timeline"
  wait_ready "$VICTIM"
  echo "ready $(now)" >>"$timeline"
  local spool_entries
  spool_entries=$(metric "$VICTIM" scrubgate_spool_entries)
  log "  $VICTIM restarted with the same data_dir; spool entries when ready: $spool_entries"
  sleep "$(at 0.1)"
  upstream_mode up
  echo "up $(now)" >>"$timeline"
  log "  upstream up"
  wait "${PID[load]}" || die "the load client failed"
  unset "PID[load]"
  local replayed
  replayed=$(metric "$VICTIM" scrubgate_spool_requests_total event=replayed)
  run_check "2/3: kill -9 one replica under load" \
    python3 "$FLEET/fleetctl.py" reconcile --load "$T/load.json" --timeline "$timeline" \
      --upstream "$UP" --victim "$VICTIM" --timeout 90 \
      --victim-spool-info "$spool_entries entries when ready" \
      --replica-addr "127.0.0.1:$I1=r1" --replica-addr "127.0.0.1:$I2=r2" \
      --replica-addr "127.0.0.1:$I3=r3"
  log "  $VICTIM replayed from its spool (counter since the restart, read before the wait): $replayed;" \
    "now $(metric "$VICTIM" scrubgate_spool_requests_total event=replayed)"
  local r e line
  for r in "${REPLICAS[@]}"; do
    line="$r spool:"
    for e in spooled replayed rejected expired held_back; do
      line+=" $e $(metric "$r" scrubgate_spool_requests_total "event=$e")"
    done
    log "  $line; entries left $(metric "$r" scrubgate_spool_entries)"
  done
  log "  upstream: $(curl -fsS "$UP/_control/stats")"
}

# --- check 3: throughput, one replica vs three -----------------------------------------
check_throughput() {
  log "  restarting the replicas in front of the null upstream (nginx, :$P_NULL)"
  for r in "${REPLICAS[@]}"; do stop_process "$r"; done
  for r in "${REPLICAS[@]}"; do start_replica "$r" "http://127.0.0.1:$P_NULL" data-throughput; done
  for r in "${REPLICAS[@]}"; do wait_ready "$r"; done
  python3 - "$T/post.lua" "$KEY" <<'PY'
import json, sys
path, key = sys.argv[1], sys.argv[2]
event = {
    "level": "error", "platform": "python", "logger": "shop.checkout",
    "message": "payment declined for jane.doe@example.com (order 81723)",
    "user": {"email": "jane.doe@example.com", "id": "u-81723", "ip_address": "{{auto}}"},
    "request": {"url": "https://shop.example.com/checkout?step=pay", "method": "POST",
                "headers": {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)", "Accept": "*/*"}},
    "tags": {"region": "eu-west-1", "release_channel": "stable"},
    "extra": {"cart_items": 3, "contact": "jane.doe@example.com"},
    "breadcrumbs": {"values": [
        {"category": "http", "message": "POST /api/cart 200", "level": "info"},
        {"category": "ui.click", "message": "button#pay", "level": "info"},
        {"category": "http", "message": "POST /api/pay 402", "level": "error"},
    ]},
    "exception": {"values": [{"type": "PaymentDeclined", "value": "card declined by issuer",
        "stacktrace": {"frames": [
            {"filename": "shop/checkout.py", "function": "pay", "lineno": 88},
            {"filename": "shop/payments.py", "function": "charge", "lineno": 41}]}}]},
}
body = json.dumps(event)
pad = max(0, 1000 - len(body))
event["extra"]["padding"] = "x" * pad
body = json.dumps(event)
with open(path, "w") as f:
    f.write('wrk.method = "POST"\n')
    f.write(f"wrk.body = [==[{body}]==]\n")
    f.write('wrk.headers["Content-Type"] = "application/json"\n')
    f.write(f'wrk.headers["X-Sentry-Auth"] = "Sentry sentry_key={key}, sentry_version=7"\n')
print(f"fleet:   store event of {len(body.encode())} bytes", flush=True)
PY
  cpu_snapshot() {  # CPU seconds so far: the replicas, nginx (master and workers)
    local groups=() r
    for r in "${REPLICAS[@]}"; do groups+=(--group "$r=${PID[$r]}"); done
    groups+=(--group "nginx=${PID[nginx]},$(pgrep -d, -P "${PID[nginx]}" || true)")
    python3 "$FLEET/fleetctl.py" cpu "${groups[@]}"
  }
  local target lb
  declare -A share=()
  for target in one three; do
    lb=$LB1
    [ "$target" = three ] && lb=$LB3
    "$WRK" -t"$WRK_THREADS" -c"$WRK_CONNS" -d2s -s "$T/post.lua" "$lb/api/42/store/" >/dev/null  # warm-up
    declare -A before=()
    for r in "${REPLICAS[@]}"; do
      before[$r]=$(metric "$r" scrubgate_request_duration_seconds_count endpoint=store)
    done
    cpu_snapshot >"$T/cpu-$target-before.json"
    local TIMEFORMAT='%U %S'   # bash's `time`: wrk's own CPU seconds, user and system
    { time "$WRK" -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${WRK_SECS}s" --latency -s "$T/post.lua" \
        "$lb/api/42/store/" >"$T/wrk-$target.txt"; } 2>"$T/wrk-$target.cpu"
    cpu_snapshot >"$T/cpu-$target-after.json"
    local json="{" sep=""
    for r in "${REPLICAS[@]}"; do
      json+="$sep\"$r\": $(( $(metric "$r" scrubgate_request_duration_seconds_count endpoint=store) - ${before[$r]} ))"
      sep=", "
    done
    share[$target]="$json}"
    log "  $target: $(grep -E 'Requests/sec' "$T/wrk-$target.txt" | tr -s ' ')"
  done
  run_check "3/3: throughput through nginx, 1 vs 3 replicas" \
    python3 "$FLEET/fleetctl.py" wrk-summary --one "$T/wrk-one.txt" --three "$T/wrk-three.txt" \
      --share-one "${share[one]}" --share-three "${share[three]}" \
      --cpu-one "$T/cpu-one-before.json" "$T/cpu-one-after.json" "$T/wrk-one.cpu" \
      --cpu-three "$T/cpu-three-before.json" "$T/cpu-three-after.json" "$T/wrk-three.cpu" \
      --label "wrk -t$WRK_THREADS -c$WRK_CONNS -d${WRK_SECS}s, $(nproc) cores shared by all processes"
}

case " $CHECKS " in *" 2 "*) check_kill ;; esac
case " $CHECKS " in *" 3 "*) check_throughput ;; esac

took=$(awk -v a="$script_start" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')
echo "fleet-test: $PASSED passed, $FAILED failed (${took}s)"
[ "$FAILED" -eq 0 ]
