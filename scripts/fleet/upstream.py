#!/usr/bin/env python3
"""Recording upstream for scripts/fleet-test.sh: a stand-in for Sentry's ingest API.

  python3 upstream.py --port-file FILE [--port N] [--marker S] [--leak S ...]

Ingest (what scrubgate forwards to):
  POST /api/<id>/store/      JSON event; the event id is its "event_id"
  POST /api/<id>/envelope/   envelope; the event id is the header line's "event_id"
  Bodies may be Content-Encoding gzip, deflate or zstd (zstd needs the `zstandard`
  module) or identity, and may be chunked. Answers 200 {"id": "<event_id>"} and records
  the id: how often it arrived (a count above 1 is a duplicate), whether the decoded body
  still contained the --marker string, and whether it contained any --leak string.
  While "down" it reads the request and answers 503 without recording anything.

Control (JSON in and out):
  GET  /_control/stats            totals: requests, events, unique ids, duplicates, ...
  POST /_control/mode             {"mode": "up" | "down"}
  POST /_control/lookup           {"ids": [...]} -> {"counts": {id: n}, "marker": [ids
                                  that arrived with the marker], "leak": [ids that
                                  arrived with a leak string]} (unknown ids count 0);
                                  with "bodies": true also {"bodies": {id: the last
                                  decoded body received}} (kept for 100,000 ids)
  POST /_control/marker           {"marker": "..."} changes the marker looked for
"""

import argparse
import gzip
import http.server
import json
import os
import re
import sys
import threading
import zlib

MAX_BODIES = 100_000
STORE_OR_ENVELOPE = re.compile(r"^/api/(\d+)/(store|envelope)/?(\?.*)?$")


class State:
    def __init__(self, marker, leaks):
        self.lock = threading.Lock()
        self.down = False
        self.marker = marker.encode()
        self.leaks = [s.encode() for s in leaks]
        self.counts = {}        # event id -> times received
        self.with_marker = set()
        self.with_leak = set()
        self.bodies = {}        # event id -> last decoded body (the first MAX_BODIES ids)
        self.requests = 0       # every ingest request, down or not
        self.refused = 0        # answered 503 while down
        self.events = 0         # recorded deliveries (duplicates included)
        self.no_event_id = 0
        self.bad_bodies = 0
        self.paths = {"store": 0, "envelope": 0}
        self.answers = {}       # HTTP status -> count, ingest requests only

    def stats(self):
        with self.lock:
            dups = sum(n - 1 for n in self.counts.values() if n > 1)
            return {
                "mode": "down" if self.down else "up",
                "requests": self.requests,
                "refused_while_down": self.refused,
                "events": self.events,
                "unique_ids": len(self.counts),
                "duplicate_deliveries": dups,
                "ids_received_more_than_once": sum(1 for n in self.counts.values() if n > 1),
                "with_marker": len(self.with_marker),
                "with_leak": len(self.with_leak),
                "no_event_id": self.no_event_id,
                "bad_bodies": self.bad_bodies,
                "paths": dict(self.paths),
                "answers": {str(k): v for k, v in sorted(self.answers.items())},
            }


def decode(raw, encoding):
    for coding in reversed([c.strip().lower() for c in encoding.split(",") if c.strip()]):
        if coding in ("gzip", "x-gzip"):
            raw = gzip.decompress(raw)
        elif coding == "deflate":
            try:
                raw = zlib.decompress(raw)
            except zlib.error:
                raw = zlib.decompress(raw, -zlib.MAX_WBITS)
        elif coding == "zstd":
            import zstandard  # only when scrubgate is told upstream.encoding = "zstd"

            raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
        elif coding == "identity":
            pass
        else:
            raise ValueError(f"unknown content-encoding {coding!r}")
    return raw


def event_id_of(kind, body):
    if kind == "store":
        event = json.loads(body)
        return event.get("event_id") if isinstance(event, dict) else None
    header = json.loads(body.split(b"\n", 1)[0] or b"{}")
    return header.get("event_id")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None  # set in main()
    # One write per answer, sent at once: headers and body written separately with Nagle
    # on meet the client's delayed ACK, and every answer would take 40 ms more.
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024  # handle_one_request flushes it after each request

    def read_body(self):
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def answer(self, status, obj):
        if not self.path.startswith("/_control/"):
            with self.state.lock:
                self.state.answers[status] = self.state.answers.get(status, 0) + 1
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/_control/stats":
            return self.answer(200, self.state.stats())
        if self.path == "/healthz":
            return self.answer(200, {"ok": True})
        return self.answer(404, {"detail": "not found"})

    def do_POST(self):
        state = self.state
        raw = self.read_body()
        if self.path.startswith("/_control/"):
            return self.control(json.loads(raw or b"{}"))
        match = STORE_OR_ENVELOPE.match(self.path)
        if not match:
            return self.answer(404, {"detail": "not found"})
        kind = match.group(2)
        with state.lock:
            state.requests += 1
            if state.down:
                state.refused += 1
                down = True
            else:
                down = False
        if down:
            return self.answer(503, {"detail": "upstream is down (fleet test)"})
        try:
            body = decode(raw, self.headers.get("content-encoding", "identity"))
            event_id = event_id_of(kind, body)
        except Exception as e:  # noqa: BLE001 - any bad body is counted and refused
            with state.lock:
                state.bad_bodies += 1
            return self.answer(400, {"detail": f"bad body: {e}"})
        with state.lock:
            state.paths[kind] += 1
            state.events += 1
            if not event_id:
                state.no_event_id += 1
            else:
                event_id = event_id.replace("-", "").lower()
                state.counts[event_id] = state.counts.get(event_id, 0) + 1
                if state.marker and state.marker in body:
                    state.with_marker.add(event_id)
                if any(leak in body for leak in state.leaks):
                    state.with_leak.add(event_id)
                if event_id in state.bodies or len(state.bodies) < MAX_BODIES:
                    state.bodies[event_id] = body
        return self.answer(200, {"id": event_id or ""})

    def control(self, req):
        state = self.state
        if self.path == "/_control/mode":
            mode = req.get("mode")
            if mode not in ("up", "down"):
                return self.answer(400, {"detail": "mode is up or down"})
            with state.lock:
                state.down = mode == "down"
            return self.answer(200, {"mode": mode})
        if self.path == "/_control/marker":
            with state.lock:
                state.marker = req.get("marker", "").encode()
            return self.answer(200, {"marker": req.get("marker", "")})
        if self.path == "/_control/lookup":
            ids = [i.replace("-", "").lower() for i in req.get("ids", [])]
            with state.lock:
                return self.answer(200, {
                    "counts": {i: state.counts.get(i, 0) for i in ids},
                    "marker": [i for i in ids if i in state.with_marker],
                    "leak": [i for i in ids if i in state.with_leak],
                    **({"bodies": {i: state.bodies[i].decode("utf-8", "replace")
                                   for i in ids if i in state.bodies}}
                       if req.get("bodies") else {}),
                })
        return self.answer(404, {"detail": "unknown control endpoint"})

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True, help="written (atomically) once listening")
    ap.add_argument("--marker", default="")
    ap.add_argument("--leak", action="append", default=[])
    args = ap.parse_args()
    Handler.state = State(args.marker, args.leak)
    server = Server(("127.0.0.1", args.port), Handler)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, args.port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
