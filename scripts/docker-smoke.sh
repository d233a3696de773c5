#!/usr/bin/env bash
# Smoke test of the container image, against a Docker daemon (DOCKER_HOST as set in the
# environment; the daemon must share this host's network, as a local one does):
#
#   scripts/docker-smoke.sh                      # builds the image, then tests it
#   SMOKE_SKIP_BUILD=1 scripts/docker-smoke.sh   # tests an already built image
#
# It builds the image (`docker build --network host`, the classic builder), starts a
# recording upstream on the host (python3: stores every POST body, answers 200
# {"id": ...}), runs the container with `--network host` in front of it with
# config/projects mounted, and checks that:
#   1. the container runs as a non-root user;
#   2. /readyz answers 200;
#   3. a store request carrying an e-mail address and {{auto}} as the user's IP reaches
#      the upstream scrubbed (neither the address nor the client IP in what it received);
#   4. on `docker stop` (SIGTERM) a request still in flight is answered 200 and the
#      container exits 0 within the shutdown grace period.
# Needs docker, python3 and curl. Not part of .ci/run: it needs the daemon.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${SMOKE_IMAGE:-scrubgate}
NAME=scrubgate-smoke-$$
KEY=a4f6c2d8e1b34f7a9c0d5e2b8f1a3c6d   # config/projects/42.json's public key
GRACE_SECS=10                          # server.shutdown_grace given to the container
PROBE_DELAY_SECS=3                     # how long the upstream holds the drain probe

for tool in docker python3 curl; do
  command -v "$tool" >/dev/null || { echo "smoke: $tool is needed" >&2; exit 2; }
done

work=$(mktemp -d)
upstream_pid=
probe_pid=
cleanup() {
  status=$?
  if [ "$status" -ne 0 ] && docker inspect "$NAME" >/dev/null 2>&1; then
    echo "smoke: FAILED; container log:" >&2
    docker logs "$NAME" 2>&1 | tail -n 30 >&2 || true
  fi
  docker rm -f "$NAME" >/dev/null 2>&1 || true
  [ -n "$probe_pid" ] && kill "$probe_pid" 2>/dev/null || true
  [ -n "$upstream_pid" ] && kill "$upstream_pid" 2>/dev/null || true
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
step() { echo "smoke: $*"; }
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }

# --- the image --------------------------------------------------------------------
if [ "${SMOKE_SKIP_BUILD:-0}" != 1 ]; then
  step "building $IMAGE"
  DOCKER_BUILDKIT=0 docker build --network host -t "$IMAGE" . >"$work/build.log" 2>&1 \
    || { tail -n 40 "$work/build.log" >&2; fail "docker build failed"; }
fi
docker image inspect "$IMAGE" >/dev/null || fail "no image $IMAGE"
step "image $(docker image ls "$IMAGE" --format '{{.Repository}}:{{.Tag}} {{.Size}}' | head -n1)"

# --- the recording upstream -------------------------------------------------------
cat >"$work/upstream.py" <<'PY'
"""Records every POST: <dir>/<n>.body (decoded), <n>.meta (path, encoding); answers 200."""
import gzip, http.server, json, os, sys, time, uuid, zlib

out = sys.argv[1]
delay = float(sys.argv[2])
count = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global count
        raw = self.rfile.read(int(self.headers.get("content-length", "0")))
        encoding = self.headers.get("content-encoding", "identity")
        if encoding == "gzip":
            body = gzip.decompress(raw)
        elif encoding == "deflate":
            body = zlib.decompress(raw)
        else:
            body = raw
        count += 1
        n = count
        with open(os.path.join(out, f"{n}.body.tmp"), "wb") as f:
            f.write(body)
        with open(os.path.join(out, f"{n}.meta"), "w") as f:
            json.dump({"path": self.path, "content_encoding": encoding}, f)
        os.rename(os.path.join(out, f"{n}.body.tmp"), os.path.join(out, f"{n}.body"))
        if b"drain-probe" in body:
            time.sleep(delay)  # keeps the request in flight while the proxy is stopped
        answer = json.dumps({"id": uuid.uuid4().hex}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(os.path.join(out, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(out, "port.tmp"), os.path.join(out, "port"))
server.serve_forever()
PY
mkdir "$work/received"
python3 "$work/upstream.py" "$work/received" "$PROBE_DELAY_SECS" &
upstream_pid=$!
for _ in $(seq 50); do [ -f "$work/received/port" ] && break; sleep 0.1; done
[ -f "$work/received/port" ] || fail "the upstream did not start"
upstream_port=$(cat "$work/received/port")
step "recording upstream on 127.0.0.1:$upstream_port"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
ingest_port=$(free_port)
admin_port=$(free_port)

# --- the container ----------------------------------------------------------------
docker run -d --name "$NAME" --network host \
  -e SCRUBGATE_SERVER_LISTEN="127.0.0.1:$ingest_port" \
  -e SCRUBGATE_ADMIN_LISTEN="127.0.0.1:$admin_port" \
  -e SCRUBGATE_UPSTREAM_URL="http://127.0.0.1:$upstream_port" \
  -e SCRUBGATE_UPSTREAM_ENCODING=gzip \
  -e SCRUBGATE_SERVER_SHUTDOWN_GRACE="${GRACE_SECS}s" \
  -v "$PWD/config/projects:/etc/scrubgate/projects:ro" \
  "$IMAGE" >/dev/null
step "container $NAME: ingest 127.0.0.1:$ingest_port, admin 127.0.0.1:$admin_port"

# 1. Non-root: the configured user, and the uid the server process (PID 1) runs as.
user=$(docker inspect -f '{{.Config.User}}' "$NAME")
exec_uid=$(docker exec "$NAME" id -u)
pid1_uid=$(docker exec "$NAME" sh -c 'grep "^Uid:" /proc/1/status' | awk '{print $2}')
[ -n "$user" ] && [ "$exec_uid" != 0 ] && [ "$pid1_uid" != 0 ] \
  || fail "runs as root (User='$user', id -u=$exec_uid, PID 1 uid=$pid1_uid)"
step "ok: non-root (User=$user, uid $pid1_uid)"

# 2. Readiness.
code=
for _ in $(seq 100); do
  [ "$(docker inspect -f '{{.State.Running}}' "$NAME")" = true ] || fail "the container exited"
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin_port/readyz" || true)
  [ "$code" = 200 ] && break
  sleep 0.2
done
[ "$code" = 200 ] || fail "/readyz answered '$code'"
step "ok: /readyz 200"

# 3. A scrubbed event reaches the upstream.
store() {
  curl -s -o "$1" -w '%{http_code}' "http://127.0.0.1:$ingest_port/api/42/store/" \
    -H "X-Sentry-Auth: Sentry sentry_key=$KEY, sentry_version=7" \
    -H 'Content-Type: application/json' \
    -d "$2"
}
event='{"message": "card for jane@example.com", "user": {"email": "jane@example.com", "ip_address": "{{auto}}"}}'
code=$(store "$work/answer1" "$event")
[ "$code" = 200 ] || fail "store answered $code: $(cat "$work/answer1")"
[ -f "$work/received/1.body" ] || fail "the upstream received nothing"
received=$(cat "$work/received/1.body")
for secret in jane@example.com '{{auto}}' 127.0.0.1; do
  case $received in *"$secret"*) fail "the upstream received '$secret': $received" ;; esac
done
python3 - "$work/received/1.body" <<'PY' || fail "the forwarded event is not the scrubbed one"
import json, sys
event = json.load(open(sys.argv[1]))
assert "card for" in event["message"], event
assert "_meta" in event, event
PY
step "ok: store 200; upstream got $(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["path"], "(" + m["content_encoding"] + ")")' "$work/received/1.meta"), scrubbed:"
python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); print("       message:", json.dumps(e["message"])); print("       user:   ", json.dumps(e.get("user")))' "$work/received/1.body"

# 4. SIGTERM drains: a request the upstream holds is answered, then the container exits 0.
probe='{"message": "drain-probe", "user": {"email": "jane@example.com"}}'
store "$work/answer2" "$probe" >"$work/probe_code" &
probe_pid=$!
for _ in $(seq 100); do [ -f "$work/received/2.body" ] && break; sleep 0.1; done
[ -f "$work/received/2.body" ] || fail "the drain probe did not reach the upstream"
started=$(date +%s.%N)
docker stop -t $((GRACE_SECS + 10)) "$NAME" >/dev/null
stopped=$(date +%s.%N)
wait "$probe_pid" || true
probe_pid=
took=$(python3 -c "print(f'{$stopped - $started:.1f}')")
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$NAME")
probe_code=$(cat "$work/probe_code")
[ "$probe_code" = 200 ] || fail "the in-flight request was answered '$probe_code' during shutdown"
[ "$exit_code" = 0 ] || fail "exit code $exit_code after SIGTERM"
python3 -c "import sys; sys.exit(0 if $stopped - $started < $GRACE_SECS else 1)" \
  || fail "stopping took ${took}s, more than the ${GRACE_SECS}s grace"
case $(cat "$work/received/2.body") in *jane@example.com*) fail "the drain probe was not scrubbed" ;; esac
step "ok: docker stop (SIGTERM) after ${took}s: in-flight request answered 200, exit code 0"
docker logs "$NAME" 2>&1 | grep -iE 'SIGTERM|drain|stopped|shut' | sed 's/^/       log: /' || true

step "all checks passed"
