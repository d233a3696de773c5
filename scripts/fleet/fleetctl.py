#!/usr/bin/env python3
"""Client side of scripts/fleet-test.sh: sends events, reads metrics, checks the upstream.

  fleetctl.py rule-change ...   check 1: a rule added to the shared project file
  fleetctl.py load ...          check 2's client: store events through nginx for N seconds
  fleetctl.py reconcile ...     check 2's verdict: every acknowledged id reached upstream
  fleetctl.py wrk-summary ...   check 3: parses two wrk runs and prints the comparison
  fleetctl.py metric ...        prints the sum of one metric family on one replica

Each check prints one "PASS ..." or "FAIL ..." line (details before it) and exits 0 or 1.
Only the standard library is used.
"""

import argparse
import http.client
import json
import os
import re
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid

LEAK = "fleet.user@example.com"  # every event carries it; scrubgate must never forward it


# --- HTTP helpers -----------------------------------------------------------------------

def http_json(url, payload=None, timeout=10):
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    if data is not None:
        req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.load(resp)


def http_text(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric_sum(admin, name, **labels):
    """Sum of the samples of `name` on a replica's /metrics whose labels match."""
    total = 0.0
    for line in http_text(f"{admin}/metrics").splitlines():
        m = METRIC_LINE.match(line)
        if not m or m.group(1) != name:
            continue
        have = dict(LABEL.findall(m.group(3) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(4))
    return total


def store_requests(admin):
    """Store requests a replica has answered (every status class)."""
    return int(metric_sum(admin, "scrubgate_request_duration_seconds_count", endpoint="store"))


class Sender:
    """One keep-alive connection to one base URL, sending store events."""

    def __init__(self, base, key, timeout=30):
        u = urllib.parse.urlsplit(base)
        self.host, self.port, self.timeout = u.hostname, u.port, timeout
        self.auth = f"Sentry sentry_key={key}, sentry_version=7, sentry_client=fleet-test/1.0"
        self.conn = None

    def send(self, event):
        """-> (status or None, answered id or None, X-Fleet-Upstream header, error text)"""
        body = json.dumps(event).encode()
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request("POST", "/api/42/store/", body, {
                    "Content-Type": "application/json",
                    "X-Sentry-Auth": self.auth,
                })
                resp = self.conn.getresponse()
                data = resp.read()
                via = resp.getheader("X-Fleet-Upstream", "")
                if resp.getheader("connection", "").lower() == "close":
                    self.close()
                try:
                    answered = json.loads(data).get("id")
                except ValueError:
                    answered = None
                return resp.status, answered, via, ""
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # A stale keep-alive connection: nothing was answered, so trying once more
                # on a new connection is what an SDK's transport does too.
                self.close()
                if attempt == 2:
                    return None, None, "", type(e).__name__
            except OSError as e:
                self.close()
                return None, None, "", type(e).__name__
        return None, None, "", "unreachable"

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def make_event(event_id, phase, marker):
    # About 500 bytes; the marker sits in the message (pii true) and in extra.
    return {
        "event_id": event_id,
        "level": "error",
        "platform": "python",
        "logger": "fleet.checkout",
        "message": f"checkout failed for {LEAK} ref {marker}",
        "user": {"email": LEAK, "username": "fleet-user", "ip_address": "{{auto}}"},
        "tags": {"fleet_phase": phase, "region": "eu-west-1"},
        "extra": {"note": f"see {marker}", "attempt": 3},
        "breadcrumbs": {"values": [
            {"category": "http", "message": "POST /checkout 500", "level": "error"},
        ]},
    }


def new_id():
    return uuid.uuid4().hex


def send_many(base, key, events, threads=4):
    """Sends events over `threads` connections; -> {event_id: (status, answered, via, err)}"""
    results, lock = {}, threading.Lock()
    queue = list(events)

    def worker():
        sender = Sender(base, key)
        while True:
            with lock:
                if not queue:
                    break
                event = queue.pop()
            r = sender.send(event)
            with lock:
                results[event["event_id"]] = r
        sender.close()

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return results


def lookup(upstream, ids, bodies=False):
    out = {"counts": {}, "marker": [], "leak": [], "bodies": {}}
    ids = list(ids)
    for i in range(0, len(ids), 5000):
        part = http_json(f"{upstream}/_control/lookup", {"ids": ids[i:i + 5000], "bodies": bodies})
        out["counts"].update(part["counts"])
        out["marker"] += part["marker"]
        out["leak"] += part["leak"]
        out["bodies"].update(part.get("bodies", {}))
    return out


def verdict(ok, line, problems=()):
    for p in problems:
        print(f"    problem: {p}")
    print(("PASS " if ok else "FAIL ") + line, flush=True)
    return 0 if ok else 1


# --- check 1: a rule change reaches every replica ---------------------------------------

def cmd_rule_change(a):
    replicas = []  # (name, ingest, admin)
    for spec in a.replica:
        name, ingest, admin = spec.split(",")
        replicas.append((name, ingest, admin))
    problems = []
    upstream = a.upstream
    marker = a.marker
    http_json(f"{upstream}/_control/marker", {"marker": marker})

    # 1a. Before: the marker is no personal data, so it must arrive exactly as sent, while
    # the e-mail address in the same events must not.
    before = [make_event(new_id(), "rule-before", marker) for _ in range(a.events)]
    res = send_many(a.lb, a.key, before)
    acked = [i for i, r in res.items() if r[0] == 200 and r[1] == i]
    got = lookup(upstream, [e["event_id"] for e in before], bodies=True)
    arrived = [i for i, n in got["counts"].items() if n > 0]
    unchanged = 0
    for e in before:
        body = got["bodies"].get(e["event_id"])
        if body is None:
            continue
        # the marker exactly as sent, in the message and in extra
        if f"ref {marker}" in body and f"see {marker}" in body:
            unchanged += 1
    print(f"    before the change: {len(acked)}/{len(before)} acked via nginx, "
          f"{len(arrived)} arrived, {unchanged} with '{marker}' unchanged, "
          f"{len(got['leak'])} with the e-mail address")
    if len(acked) != len(before) or len(arrived) != len(before):
        problems.append(f"before: only {len(acked)} acked / {len(arrived)} arrived of {len(before)}")
    if unchanged != len(before):
        problems.append(f"before: {len(before) - unchanged} events arrived without the marker unchanged")
    if got["leak"]:
        problems.append(f"before: {len(got['leak'])} events arrived with the e-mail address")

    # 1b. The change: the shared project file rewritten atomically (temp file + rename).
    reloads_before = {n: metric_sum(adm, "scrubgate_config_reloads_total", result="ok")
                      for n, _, adm in replicas}
    with open(a.project) as f:
        project = json.load(f)
    pii = project.setdefault("config", {}).setdefault("piiConfig", {})
    pii.setdefault("rules", {})["fleet_marker"] = {
        "type": "pattern",
        "pattern": r"\bfleetmarker-[0-9]+\b",
        "redaction": {"method": "replace", "text": a.replacement},
    }
    apps = pii.setdefault("applications", {})
    apps["$string"] = list(apps.get("$string", [])) + ["fleet_marker"]
    tmp = os.path.join(a.tmp_dir, "42.json.fleet-tmp")
    with open(tmp, "w") as f:
        json.dump(project, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    t0 = time.monotonic()
    os.replace(tmp, a.project)
    deadline = t0 + a.poll_interval + a.margin

    # 1c. Probe each replica directly until an event it forwards comes out clean; the
    # reload counter on /metrics is watched at the same time.
    senders = {n: Sender(ing, a.key) for n, ing, _ in replicas}
    clean_at, reload_at, probes = {}, {}, {n: 0 for n, _, _ in replicas}
    while time.monotonic() < deadline and len(clean_at) < len(replicas):
        for n, _, adm in replicas:
            if n not in reload_at and metric_sum(adm, "scrubgate_config_reloads_total",
                                                  result="ok") > reloads_before[n]:
                reload_at[n] = time.monotonic() - t0
            if n in clean_at:
                continue
            eid = new_id()
            sent = time.monotonic()
            status, answered, _, err = senders[n].send(make_event(eid, "rule-probe", marker))
            probes[n] += 1
            if status != 200 or answered != eid:
                problems.append(f"{n}: probe answered {status} {err}")
                continue
            if not lookup(upstream, [eid])["marker"]:
                clean_at[n] = sent - t0  # the first probe sent after the rule applied
        time.sleep(0.05)
    for s in senders.values():
        s.close()
    for n, _, _ in replicas:
        if n not in clean_at:
            problems.append(f"{n}: still forwarding the marker {a.poll_interval + a.margin:.1f}s "
                            f"after the rename ({probes[n]} probes)")
    applied = "; ".join(
        f"{n} {clean_at[n]:.2f}s" + (f" (reload on /metrics {reload_at[n]:.2f}s)" if n in reload_at else "")
        for n, _, _ in replicas if n in clean_at)
    print(f"    after the rename: first clean event per replica: {applied or 'none'}")
    all_applied = max(clean_at.values()) if len(clean_at) == len(replicas) else None

    # 1d. Through nginx, still within the poll interval + margin of the rename: enough
    # events that every replica takes some, and none may carry the marker.
    counts_before = {n: store_requests(adm) for n, _, adm in replicas}
    after = [make_event(new_id(), "rule-after", marker) for _ in range(a.events_after)]
    res = send_many(a.lb, a.key, after)
    sent_by = time.monotonic() - t0
    counts_after = {n: store_requests(adm) for n, _, adm in replicas}
    share = {n: counts_after[n] - counts_before[n] for n, _, _ in replicas}
    acked = [i for i, r in res.items() if r[0] == 200 and r[1] == i]
    got = lookup(upstream, [e["event_id"] for e in after], bodies=True)
    arrived = [i for i, n in got["counts"].items() if n > 0]
    replaced = sum(1 for b in got["bodies"].values() if a.replacement in b)
    spread = "/".join(f"{share[n]}" for n, _, _ in replicas)
    print(f"    via nginx after the change: {len(acked)}/{len(after)} acked, {len(arrived)} arrived, "
          f"spread over {'/'.join(n for n, _, _ in replicas)} = {spread}, "
          f"{len(got['marker'])} with the marker, {replaced} with '{a.replacement}', "
          f"{len(got['leak'])} with the e-mail address; all sent by +{sent_by:.2f}s")
    if len(acked) != len(after) or len(arrived) != len(after):
        problems.append(f"after: only {len(acked)} acked / {len(arrived)} arrived of {len(after)}")
    if got["marker"]:
        problems.append(f"after: {len(got['marker'])} events arrived with the marker")
    if replaced != len(arrived):
        problems.append(f"after: {len(arrived) - replaced} arrived without '{a.replacement}'")
    if got["leak"]:
        problems.append(f"after: {len(got['leak'])} events arrived with the e-mail address")
    for n, c in share.items():
        if c <= 0:
            problems.append(f"after: {n} received none of the events sent through nginx")
    if sent_by > a.poll_interval + a.margin:
        problems.append(f"after: events sent by +{sent_by:.2f}s, past poll interval + margin "
                        f"({a.poll_interval + a.margin:.1f}s)")

    ok = not problems
    summary = ((f"rule change: applied on all {len(replicas)} replicas in {all_applied:.2f}s"
                if all_applied is not None else
                f"rule change: applied on {len(clean_at)} of {len(replicas)} replicas in time")
               + f" (poll_interval {a.poll_interval:g}s, limit {a.poll_interval + a.margin:g}s; "
               f"{applied}); {len(after)} events via nginx ({spread}) with 0 markers expected: "
               f"{len(got['marker'])} found")
    return verdict(ok, summary, problems)


# --- check 2's client ---------------------------------------------------------------------

def cmd_load(a):
    stop_at = time.time() + a.duration
    lock = threading.Lock()
    acked = []      # [event_id, via, t]
    failed = {}     # reason -> count
    mismatched = 0
    sent = [0]

    def worker(k):
        nonlocal mismatched
        sender = Sender(a.lb, a.key, timeout=a.timeout)
        while time.time() < stop_at:
            eid = new_id()
            status, answered, via, err = sender.send(make_event(eid, f"load-{k}", "no-marker"))
            t = time.time()
            with lock:
                sent[0] += 1
                if status == 200 and answered == eid:
                    acked.append([eid, via, t])
                elif status == 200:
                    mismatched += 1
                    failed["200 with another id"] = failed.get("200 with another id", 0) + 1
                else:
                    reason = f"HTTP {status}" if status else f"error {err}"
                    failed[reason] = failed.get(reason, 0) + 1
        sender.close()

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(a.threads)]
    t_start = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out = {"started": t_start, "ended": time.time(), "sent": sent[0], "acked": acked,
           "failed": failed, "threads": a.threads}
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f)
    os.replace(tmp, a.out)
    return 0


# --- check 2's verdict --------------------------------------------------------------------

def cmd_reconcile(a):
    with open(a.load) as f:
        load = json.load(f)
    with open(a.timeline) as f:
        tl = {k: float(v) for k, v in (line.split() for line in f if line.strip())}
    addr_name = dict(s.split("=") for s in a.replica_addr)
    acked = load["acked"]
    ids = [e[0] for e in acked]
    problems = []

    # Wait (bounded) until the upstream has every acknowledged id.
    t0 = time.time()
    while True:
        got = lookup(a.upstream, ids)
        missing = [i for i in ids if got["counts"].get(i, 0) == 0]
        if not missing or time.time() - t0 > a.timeout:
            break
        time.sleep(0.5)
    waited = time.time() - t0
    all_in_at = time.time()

    counts = got["counts"]
    dup_ids = [i for i in ids if counts.get(i, 0) > 1]
    extra = sum(counts.get(i, 0) - 1 for i in dup_ids)

    # Who acknowledged what: nginx's X-Fleet-Upstream is the replica (the last one tried).
    def replica_of(via):
        last = via.split(",")[-1].strip() if via else ""
        return addr_name.get(last, last or "?")

    per_replica = {}
    for eid, via, t in acked:
        per_replica[replica_of(via)] = per_replica.get(replica_of(via), 0) + 1
    retried = sum(1 for _, via, _ in acked if "," in via)
    victim = a.victim
    # Acknowledged by the victim while the upstream was down and before it was killed:
    # those were only in its spool when it died.
    in_victim_spool = [eid for eid, via, t in acked
                       if replica_of(via) == victim and tl["down"] <= t <= tl["kill"]]
    victim_spool_missing = [i for i in in_victim_spool if counts.get(i, 0) == 0]
    acked_while_down = sum(1 for _, _, t in acked if tl["down"] <= t <= tl["up"])
    acked_victim_dead = sum(1 for _, _, t in acked if tl["kill"] <= t <= tl["restart"])

    dur = load["ended"] - load["started"]
    failed = ", ".join(f"{k}: {v}" for k, v in sorted(load["failed"].items())) or "none"
    print(f"    client: {load['threads']} threads for {dur:.1f}s; {load['sent']} sent, "
          f"{len(acked)} acked (200 with the event's id), not acked: {failed}")
    print(f"    timeline (s from start): upstream down {tl['down'] - load['started']:.1f}, "
          f"kill -9 {victim} {tl['kill'] - load['started']:.1f}, "
          f"restart {tl['restart'] - load['started']:.1f} (ready {tl['ready'] - load['started']:.1f}), "
          f"upstream up {tl['up'] - load['started']:.1f}")
    print(f"    acked per replica (via nginx's X-Fleet-Upstream): "
          + ", ".join(f"{k} {v}" for k, v in sorted(per_replica.items()))
          + f"; {retried} acked after nginx retried on another replica; "
          f"{acked_while_down} acked while the upstream was down, {acked_victim_dead} while {victim} was dead")
    print(f"    {victim}: {len(in_victim_spool)} acked while the upstream was down and before the kill "
          f"(only in its spool at the kill), {len(in_victim_spool) - len(victim_spool_missing)} of them "
          f"received after its restart; spool after restart: {a.victim_spool_info}")
    print(f"    upstream: {len(ids) - len(missing)}/{len(ids)} acked ids received "
          f"(waited {waited:.1f}s after the client ended, all in "
          f"{all_in_at - tl['up']:.1f}s after the upstream came back); "
          f"{len(dup_ids)} ids delivered more than once ({extra} extra deliveries); "
          f"{len(got['leak'])} with the e-mail address")
    if missing:
        problems.append(f"{len(missing)} acknowledged events never reached the upstream "
                        f"within {a.timeout:.0f}s, e.g. {missing[:3]}")
    if got["leak"]:
        problems.append(f"{len(got['leak'])} events reached the upstream with the e-mail address")
    if len(acked) < a.min_acked:
        problems.append(f"only {len(acked)} events acked (fewer than {a.min_acked}): the load did not run")
    if not in_victim_spool:
        problems.append(f"{victim} acked nothing between the outage and the kill: its spool replay "
                        "was not exercised")
    ok = not problems
    line = (f"kill -9 under load: {len(acked)} acked, {len(missing)} lost, "
            f"{len(dup_ids)} duplicated ({extra} extra deliveries, allowed: at least once); "
            f"{len(in_victim_spool)} acked by {victim} only in its spool at the kill, "
            f"{len(in_victim_spool) - len(victim_spool_missing)} replayed after the restart")
    return verdict(ok, line, problems)


# --- check 3: wrk output ------------------------------------------------------------------

def parse_wrk(path):
    text = open(path).read()
    def ms(v):
        m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
        n, unit = float(m.group(1)), m.group(2)
        return n * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    total = int(re.search(r"(\d+) requests in", text).group(1))
    pct = {p: ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "rps": rps, "requests": total, "p50": pct.get("50"), "p99": pct.get("99"),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in sock.groups()) if sock else 0,
    }


def cmd_wrk_summary(a):
    one, three = parse_wrk(a.one), parse_wrk(a.three)
    share1 = json.loads(a.share_one)
    share3 = json.loads(a.share_three)
    problems = []
    for name, r, share, want, cpu in (("1 replica", one, share1, 1, a.cpu_one),
                                      ("3 replicas", three, share3, 3, a.cpu_three)):
        busy = [k for k, v in share.items() if v > 0]
        print(f"    {name}: {r['rps']:.0f} req/s ({r['requests']} requests), p50 {r['p50']:.2f} ms, "
              f"p99 {r['p99']:.2f} ms, non-2xx {r['non2xx']}, socket errors {r['socket_errors']}; "
              f"store requests per replica " + ", ".join(f"{k} {v}" for k, v in sorted(share.items())))
        if cpu:
            print(f"      {cpu_line(*cpu)}")
        if r["requests"] == 0:
            problems.append(f"{name}: no request completed")
        if r["non2xx"] or r["socket_errors"]:
            problems.append(f"{name}: {r['non2xx']} non-2xx answers, {r['socket_errors']} socket errors")
        if len(busy) != want:
            problems.append(f"{name}: {len(busy)} replicas took requests, expected {want}")
    ratio = three["rps"] / one["rps"] if one["rps"] else 0
    line = (f"throughput ({a.label}): 1 replica {one['rps']:.0f} req/s p50 {one['p50']:.2f} ms "
            f"p99 {one['p99']:.2f} ms; 3 replicas {three['rps']:.0f} req/s p50 {three['p50']:.2f} ms "
            f"p99 {three['p99']:.2f} ms ({ratio:.2f}x)")
    return verdict(not problems, line, problems)


def cmd_cpu(a):
    """Snapshot of CPU seconds used: per group of pids (threads included), and machine-wide."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for spec in a.group:
        name, pids = spec.split("=", 1)
        total = 0
        for pid in filter(None, pids.split(",")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
            except (OSError, IndexError, ValueError):
                pass
        out[name] = total / tick
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    out["_busy"] = (sum(cpu) - cpu[3] - cpu[4]) / tick   # all but idle and iowait
    out["_total"] = sum(cpu) / tick
    out["_time"] = time.time()
    print(json.dumps(out))
    return 0


def cpu_line(before_path, after_path, wrk_cpu_path=None):
    with open(before_path) as f:
        b = json.load(f)
    with open(after_path) as f:
        e = json.load(f)
    wall = e["_time"] - b["_time"]
    cores = (e["_total"] - b["_total"]) / wall if wall else 0
    used = {k: (e[k] - b[k]) / wall for k in b if not k.startswith("_")}
    if wrk_cpu_path and os.path.exists(wrk_cpu_path):
        with open(wrk_cpu_path) as f:
            used["wrk"] = sum(float(x) for x in f.read().split()[-2:]) / wall
    busy = (e["_busy"] - b["_busy"]) / wall
    parts = [f"{k} {v:.2f}" for k, v in used.items()]
    return (f"CPU in cores: " + ", ".join(parts)
            + f", everything else {max(0.0, busy - sum(used.values())):.2f}"
            + f" (machine busy {busy:.2f} of {cores:.0f})")


def cmd_metric(a):
    labels = dict(kv.split("=", 1) for kv in a.label)
    v = metric_sum(a.admin, a.name, **labels)
    print(int(v) if v == int(v) else v)
    return 0


def main():
    ap = argparse.ArgumentParser(description="fleet-test helper")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("rule-change")
    p.add_argument("--lb", required=True, help="nginx base URL")
    p.add_argument("--replica", action="append", required=True, help="name,ingest URL,admin URL")
    p.add_argument("--upstream", required=True)
    p.add_argument("--project", required=True, help="the shared project file to rewrite")
    p.add_argument("--tmp-dir", required=True, help="same filesystem as the project file")
    p.add_argument("--key", required=True)
    p.add_argument("--marker", default="fleetmarker-1234")
    p.add_argument("--replacement", default="[fleet-marker]")
    p.add_argument("--poll-interval", type=float, default=1.0)
    p.add_argument("--margin", type=float, default=3.0)
    p.add_argument("--events", type=int, default=30)
    p.add_argument("--events-after", type=int, default=60)
    p.set_defaults(fn=cmd_rule_change)

    p = sub.add_parser("load")
    p.add_argument("--lb", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--duration", type=float, default=14)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_load)

    p = sub.add_parser("reconcile")
    p.add_argument("--load", required=True, help="the load command's output")
    p.add_argument("--timeline", required=True, help="lines 'event epoch-seconds'")
    p.add_argument("--upstream", required=True)
    p.add_argument("--victim", required=True)
    p.add_argument("--victim-spool-info", default="?")
    p.add_argument("--replica-addr", action="append", default=[], help="host:port=name")
    p.add_argument("--timeout", type=float, default=90)
    p.add_argument("--min-acked", type=int, default=200)
    p.set_defaults(fn=cmd_reconcile)

    p = sub.add_parser("wrk-summary")
    p.add_argument("--one", required=True)
    p.add_argument("--three", required=True)
    p.add_argument("--share-one", required=True, help='JSON {"r1": n, ...}')
    p.add_argument("--share-three", required=True)
    p.add_argument("--label", default="")
    p.add_argument("--cpu-one", nargs=3, metavar=("BEFORE", "AFTER", "WRK_TIME"))
    p.add_argument("--cpu-three", nargs=3, metavar=("BEFORE", "AFTER", "WRK_TIME"))
    p.set_defaults(fn=cmd_wrk_summary)

    p = sub.add_parser("cpu")
    p.add_argument("--group", action="append", default=[], help="name=pid,pid,...")
    p.set_defaults(fn=cmd_cpu)

    p = sub.add_parser("metric")
    p.add_argument("--admin", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--label", action="append", default=[], help="key=value")
    p.set_defaults(fn=cmd_metric)

    a = ap.parse_args()
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
